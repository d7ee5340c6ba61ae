"""The portal's « Webhooks » page (SPEC §10.4): endpoints of the user's customers, created with the
secret shown once, changed, rotated, deleted, tested, with their attempt log; another customer's
endpoint is a 404 and changes nothing; every POST needs the CSRF token."""

import re

import pytest
from django.test import Client

from hosting.encryption import decrypt
from mailqueue.models import WebhookDelivery, WebhookEndpoint
from mailqueue.webhook_sending import webhooks_send_due
from tests.api.test_webhooks import HOOK, public_dns  # noqa: F401 (an autouse fixture: names resolve)
from tests.factories import MembershipFactory, WebhookAttemptFactory, WebhookDeliveryFactory, WebhookEndpointFactory
from tests.mailqueue.test_webhooks import Receiver, verify

pytestmark = pytest.mark.django_db

URL = "/webhooks/"


def secret_in(html: str) -> str | None:
    found = re.search(r'<code id="webhook-secret">([^<]+)</code>', html)
    return found and found.group(1)


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner[0])
    return client


@pytest.fixture
def endpoint(owner):
    return WebhookEndpointFactory(customer=owner[1])


@pytest.fixture
def foreign(other_hosting):
    endpoint = WebhookEndpointFactory(customer=other_hosting.customer, url="https://theirs.example/hook")
    WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=endpoint), reply="their secret reply")
    return endpoint


def snapshot(endpoint) -> tuple:
    return (
        WebhookEndpoint.objects.filter(pk=endpoint.pk).values().first(),
        sorted(WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).values_list("id", "status")),
    )


def test_create_shows_the_secret_once(logged_in, owner):
    page = logged_in.post(URL, {"url": HOOK, "events": ["message.sent", "message.bounced"], "customer": owner[1].pk})
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    secret = secret_in(page.content.decode())
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.customer, endpoint.url, endpoint.events) == (owner[1], HOOK, ["message.sent", "message.bounced"])
    assert secret.startswith("whsec_") and decrypt(endpoint.secret_encrypted) == secret
    later = logged_in.get(URL).content.decode()
    assert secret_in(later) is None and secret not in later
    assert HOOK in later
    assert secret not in logged_in.get(f"{URL}{endpoint.pk}/").content.decode()


def test_a_private_address_is_refused_with_the_reason(logged_in, owner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    page = logged_in.post(
        URL, {"url": "http://169.254.169.254/latest", "events": ["message.sent"], "customer": owner[1].pk}
    )
    assert page.status_code == 400
    assert "public servers only" in page.content.decode() or "publics" in page.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [{"url": HOOK}, {"url": HOOK, "events": ["test"]}, {"url": "not a url", "events": ["message.sent"]}],
)
def test_bad_input_is_400_and_creates_nothing(logged_in, owner, fields):
    assert logged_in.post(URL, {**fields, "customer": owner[1].pk}).status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_only_the_users_customers_can_be_chosen(logged_in, other_hosting):
    page = logged_in.post(URL, {"url": HOOK, "events": ["message.sent"], "customer": other_hosting.customer.pk})
    assert page.status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_the_list_shows_state_failing_since_and_last_attempts(logged_in, owner, foreign, django_assert_max_num_queries):
    failing = WebhookEndpointFactory(customer=owner[1], url="https://failing.example/hook")
    WebhookEndpoint.objects.filter(pk=failing.pk).update(failing_since="2026-11-30T10:00Z")
    disabled = WebhookEndpointFactory(customer=owner[1], active=False, url="https://disabled.example/hook")
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(disabled_at="2026-12-01T10:00Z")
    delivery = WebhookDeliveryFactory(endpoint=failing)
    for code in (200, 500, 502, 503):
        WebhookAttemptFactory(delivery=delivery, status_code=code, reply=f"reply {code}")
    WebhookAttemptFactory(delivery=delivery, status_code=None, reply="ConnectionRefusedError")
    with django_assert_max_num_queries(8):
        html = logged_in.get(URL).content.decode()
    assert "https://failing.example/hook" in html and "https://disabled.example/hook" in html
    assert "theirs.example" not in html and "their secret reply" not in html
    rows = html.split('id="webhook-endpoints"')[1].split("</table>")[0].split("<tr>")
    [failing_row] = [row for row in rows if "https://failing.example/hook" in row]
    [disabled_row] = [row for row in rows if "https://disabled.example/hook" in row]
    state = failing_row.split("<td")[4]
    assert "status-deferred" in state and "status-sent" not in state  # active, but failing: not green
    assert "ConnectionRefusedError" in failing_row and "HTTP 503" in failing_row and "HTTP 502" in failing_row
    assert "HTTP 200" not in failing_row and "HTTP 500" not in failing_row  # the last three only
    assert "status-failed" in disabled_row


def test_change_events_and_turn_off(logged_in, endpoint):
    response = logged_in.post(f"{URL}{endpoint.pk}/", {"url": endpoint.url, "events": ["message.held"]})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.events, endpoint.active) == (["message.held"], False)
    page = logged_in.get(f"{URL}{endpoint.pk}/").content.decode()
    assert 'value="message.held"' in page and "checked" in page.split('value="message.held"')[1][:40]


def test_a_refused_url_change_is_400_and_keeps_the_endpoint(logged_in, endpoint, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    before = snapshot(endpoint)
    fields = {"url": "http://10.0.0.7/hook", "events": ["message.sent"], "active": "on"}
    assert logged_in.post(f"{URL}{endpoint.pk}/", fields).status_code == 400
    assert snapshot(endpoint) == before


def test_rotate_asks_for_confirmation_then_shows_the_new_secret_once(logged_in, endpoint):
    confirm = logged_in.get(f"{URL}{endpoint.pk}/rotate/")
    assert confirm.status_code == 200
    assert f'action="{URL}{endpoint.pk}/rotate/"' in confirm.content.decode()
    old = endpoint.secret_encrypted
    page = logged_in.post(f"{URL}{endpoint.pk}/rotate/")
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = secret_in(page.content.decode())
    endpoint.refresh_from_db()
    assert endpoint.secret_encrypted != old and decrypt(endpoint.secret_encrypted) == secret
    assert secret not in logged_in.get(f"{URL}{endpoint.pk}/").content.decode()


def test_delete_asks_for_confirmation(logged_in, endpoint):
    assert logged_in.get(f"{URL}{endpoint.pk}/delete/").status_code == 200
    assert WebhookEndpoint.objects.exists()
    response = logged_in.post(f"{URL}{endpoint.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == URL
    assert not WebhookEndpoint.objects.exists()


def test_send_a_test_event_and_see_its_attempt_after_a_refresh(logged_in, owner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    with Receiver() as receiver:
        logged_in.post(URL, {"url": receiver.url, "events": ["message.sent"], "customer": owner[1].pk})
        endpoint = WebhookEndpoint.objects.get()
        assert logged_in.get(f"{URL}{endpoint.pk}/test/").status_code == 405
        response = logged_in.post(f"{URL}{endpoint.pk}/test/", follow=True)
        assert response.redirect_chain == [(f"{URL}{endpoint.pk}/", 302)]
        html = response.content.decode()
        assert "<code>test</code>" in html and "status-pending" in html
        assert webhooks_send_due() == 1  # the worker, when the kick arrives
    [(headers, body)] = receiver.requests
    assert verify(decrypt(endpoint.secret_encrypted), headers["X-Portal-Signature"], body)
    refreshed = logged_in.get(f"{URL}{endpoint.pk}/").content.decode()
    log = refreshed.split('id="webhook-deliveries"')[1]
    assert "HTTP 200" in log and "thanks" in log and " ms" in log


def test_the_attempt_log_shows_every_attempt(logged_in, endpoint, django_assert_max_num_queries):
    deliveries = [WebhookDeliveryFactory(endpoint=endpoint, event_type="message.failed") for _ in range(3)]
    for delivery in deliveries:
        WebhookAttemptFactory(delivery=delivery, status_code=500, reply="x" * 300)
        WebhookAttemptFactory(delivery=delivery, status_code=204, reply="")
    with django_assert_max_num_queries(8):
        html = logged_in.get(f"{URL}{endpoint.pk}/").content.decode()
    log = html.split('id="webhook-deliveries"')[1]
    assert log.count("HTTP 500") == 3 and log.count("HTTP 204") == 3
    assert "x" * 300 in log  # the whole stored excerpt


URLS = ["{pk}/", "{pk}/rotate/", "{pk}/delete/", "{pk}/test/"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_customers_endpoint_is_404_and_unchanged(logged_in, foreign, method):
    before = snapshot(foreign)
    for suffix in URLS:
        url = URL + suffix.format(pk=foreign.pk)
        response = getattr(logged_in, method)(url, {"url": HOOK, "events": ["message.sent"], "active": "on"})
        assert response.status_code in (404, 405), url
        if not (method == "get" and suffix.endswith("test/")):
            assert response.status_code == 404, url
    assert snapshot(foreign) == before


def test_anonymous_is_sent_to_login(client, endpoint):
    for suffix in ["", *URLS]:
        response = client.get(URL + suffix.format(pk=endpoint.pk))
        assert response.status_code in (302, 405)
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/")


def test_csrf_is_enforced(owner, endpoint):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner[0])
    before = snapshot(endpoint)
    assert client.post(URL, {"url": HOOK, "events": ["message.sent"], "customer": owner[1].pk}).status_code == 403
    for suffix in URLS:
        assert client.post(URL + suffix.format(pk=endpoint.pk), {"events": ["message.held"]}).status_code == 403
    assert snapshot(endpoint) == before
    assert WebhookEndpoint.objects.count() == 1


def test_a_user_of_two_customers_sees_both_and_chooses(logged_in, owner):
    second = MembershipFactory(user=owner[0]).customer
    WebhookEndpointFactory(customer=second, url="https://second.example/hook")
    html = logged_in.get(URL).content.decode()
    assert "https://second.example/hook" in html and second.name in html
    logged_in.post(URL, {"url": HOOK, "events": ["message.sent"], "customer": second.pk})
    assert WebhookEndpoint.objects.filter(customer=second).count() == 2
