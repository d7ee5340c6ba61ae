"""The caller's webhook endpoints in the API (SPEC §10.4): /1.0/me/webhooks[/{id}[/rotateSecret|/test|/deliveries]],
through the services the portal uses; another customer's endpoint is a 404 and changes nothing."""

import socket

import pytest
from django.test import Client

from api.services import api_credentials_create
from hosting.encryption import decrypt
from mailqueue.models import WebhookDelivery, WebhookEndpoint
from mailqueue.webhook_sending import webhooks_send_due
from tests.api.conftest import READ_ONLY_HOSTINGS, ApiClient
from tests.factories import MembershipFactory, WebhookAttemptFactory, WebhookDeliveryFactory, WebhookEndpointFactory
from tests.mailqueue.test_webhooks import Receiver, verify
from tests.support import silent_resolver

pytestmark = pytest.mark.django_db

PUBLIC_ADDRESS = "93.184.215.14"  # a global unicast address: what a real receiver's name resolves to
HOOK = "https://hooks.acme.example/portal"
EVENTS = ["message.failed", "message.bounced"]


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Names under .example resolve to a public address (no DNS in the tests); others as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def foreign(other_hosting):
    """Another customer's endpoint, with a delivery and its attempt."""
    endpoint = WebhookEndpointFactory(customer=other_hosting.customer)
    WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=endpoint))
    return endpoint


def state_of(endpoint) -> tuple:
    row = WebhookEndpoint.objects.filter(pk=endpoint.pk).values().first()
    return row, WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).count()


def test_create_shows_the_secret_once_and_lists_the_endpoint(api, owner):
    response = api.post("/me/webhooks", {"url": HOOK, "events": [*EVENTS, "message.failed"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "url", "events", "active", "createdAt", "failingSince", "disabledAt", "secret"}
    assert (body["url"], body["events"], body["active"], body["failingSince"]) == (HOOK, EVENTS, True, None)
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.customer == owner[1]
    assert body["secret"].startswith("whsec_")
    assert body["secret"] not in endpoint.secret_encrypted
    assert decrypt(endpoint.secret_encrypted) == body["secret"]
    assert api.get("/me/webhooks").json() == [endpoint.pk]
    read = api.get(f"/me/webhooks/{endpoint.pk}", auth="bearer").json()
    assert read == {key: value for key, value in body.items() if key != "secret"}


def test_a_name_the_resolver_does_not_answer_for_is_a_prompt_400_and_nothing_is_stored(api):
    """A silent resolver would hold the request for its own timeouts (10 s and more)."""
    import time

    started = time.monotonic()
    with silent_resolver(gives_up_after=0.3):
        response = api.post("/me/webhooks", {"url": HOOK, "events": EVENTS}, HTTP_ACCEPT_LANGUAGE="en")

    assert time.monotonic() - started < 3
    assert response.status_code == 400
    assert response.json() == {"message": "The host name of the address did not resolve in time; try again later."}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/", "http://[::1]/x"],
)
def test_a_url_on_a_private_address_is_400_with_the_reason(api, url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = api.post("/me/webhooks", {"url": url, "events": EVENTS}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert response.json() == {
        "message": "The address leads to a private, local or reserved network address: "
        "webhooks go to public servers only."
    }
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_are_allowed_when_the_setting_says_so(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    assert api.post("/me/webhooks", {"url": "http://127.0.0.1:8080/hook", "events": EVENTS}).status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        {"url": HOOK, "events": []},
        {"url": HOOK, "events": ["message.sent", "test"]},  # `test` is the button's, not a subscription
        {"url": HOOK, "events": "message.sent"},
        {"url": HOOK},
        {"url": "ftp://hooks.acme.example/x", "events": EVENTS},
        {"url": "https://user:pass@hooks.acme.example/x", "events": EVENTS},
        {"url": "https://nowhere.invalid/x", "events": EVENTS},
        {"url": "not a url", "events": EVENTS},
        {"url": "https://hooks.acme.example/" + "x" * 500, "events": EVENTS},
    ],
)
def test_bad_input_is_400_and_creates_nothing(api, payload):
    response = api.post("/me/webhooks", payload)
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"message"}
    assert not WebhookEndpoint.objects.exists()


def test_put_changes_events_url_and_active(api, owner):
    endpoint = WebhookEndpointFactory(customer=owner[1])
    assert api.put(f"/me/webhooks/{endpoint.pk}", {"events": ["message.sent"], "active": False}).status_code == 204
    endpoint.refresh_from_db()
    assert (endpoint.events, endpoint.active) == (["message.sent"], False)
    read_back = api.get(f"/me/webhooks/{endpoint.pk}").json()
    read_back.update(url="https://other.acme.example/hook", active=True)
    assert api.put(f"/me/webhooks/{endpoint.pk}", read_back).status_code == 204  # the object GET gives
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.active) == ("https://other.acme.example/hook", True)


def test_turning_an_endpoint_back_on_forgets_its_failures(api, owner):
    endpoint = WebhookEndpointFactory(customer=owner[1], active=False)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since="2026-01-01T00:00Z", disabled_at="2026-01-02T00:00Z"
    )
    assert api.get(f"/me/webhooks/{endpoint.pk}").json()["disabledAt"]
    assert api.put(f"/me/webhooks/{endpoint.pk}", {"active": True}).status_code == 204
    body = api.get(f"/me/webhooks/{endpoint.pk}").json()
    assert (body["active"], body["failingSince"], body["disabledAt"]) == (True, None, None)


@pytest.mark.parametrize(
    "payload",
    [{"events": []}, {"colour": "red"}, {"url": "http://127.0.0.1/x"}, {"active": "maybe"}, {"events": ["nope"]}],
)
def test_a_bad_put_is_400_and_changes_nothing(api, owner, payload, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    endpoint = WebhookEndpointFactory(customer=owner[1])
    before = state_of(endpoint)
    response = api.put(f"/me/webhooks/{endpoint.pk}", payload)
    assert response.status_code == 400
    assert set(response.json()) == {"message"}
    assert state_of(endpoint) == before


def test_rotate_gives_a_new_secret_once(api, owner):
    created = api.post("/me/webhooks", {"url": HOOK, "events": EVENTS}).json()
    response = api.post(f"/me/webhooks/{created['id']}/rotateSecret")
    assert response.status_code == 200
    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and secret != created["secret"]
    assert decrypt(WebhookEndpoint.objects.get().secret_encrypted) == secret
    assert secret not in api.get(f"/me/webhooks/{created['id']}").content.decode()


def test_send_a_test_event_then_read_its_attempt(api, owner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver listens on loopback
    with Receiver() as receiver:
        created = api.post("/me/webhooks", {"url": receiver.url, "events": EVENTS}).json()
        response = api.post(f"/me/webhooks/{created['id']}/test")
        assert response.status_code == 202
        delivery = response.json()
        assert set(delivery) == {"id", "eventId", "type", "createdAt", "status", "nextAttemptAt", "attempts"}
        assert (delivery["type"], delivery["status"], delivery["attempts"]) == ("test", "pending", [])
        assert webhooks_send_due() == 1  # what the worker does when the kick arrives
    [(headers, body)] = receiver.requests
    assert headers["X-Portal-Delivery"] == delivery["eventId"]
    assert verify(created["secret"], headers["X-Portal-Signature"], body)
    [logged] = api.get(f"/me/webhooks/{created['id']}/deliveries").json()
    assert (logged["id"], logged["status"], logged["nextAttemptAt"]) == (delivery["id"], "delivered", None)
    [attempt] = logged["attempts"]
    assert set(attempt) == {"at", "statusCode", "durationMs", "reply"}
    assert (attempt["statusCode"], attempt["reply"]) == (200, "thanks")
    assert attempt["durationMs"] >= 0


def test_deliveries_newest_first_with_their_attempts_and_a_limit(api, owner, django_assert_max_num_queries):
    endpoint = WebhookEndpointFactory(customer=owner[1])
    deliveries = [WebhookDeliveryFactory(endpoint=endpoint) for _ in range(4)]
    for code in (500, 502, 200):
        WebhookAttemptFactory(delivery=deliveries[0], status_code=code, reply=f"status {code}")
    with django_assert_max_num_queries(5):  # the credential, the endpoint, the deliveries, their attempts
        body = api.get(f"/me/webhooks/{endpoint.pk}/deliveries?limit=3").json()
    assert [item["id"] for item in body] == [delivery.pk for delivery in reversed(deliveries)][:3]
    everything = api.get(f"/me/webhooks/{endpoint.pk}/deliveries").json()
    assert [attempt["statusCode"] for attempt in everything[-1]["attempts"]] == [200, 502, 500]
    for limit in ("0", "101", "x"):
        assert api.get(f"/me/webhooks/{endpoint.pk}/deliveries?limit={limit}").status_code == 400


def test_delete_removes_the_endpoint_and_its_deliveries(api, owner):
    endpoint = WebhookEndpointFactory(customer=owner[1])
    WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=endpoint))
    assert api.call("DELETE", f"/me/webhooks/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert api.get(f"/me/webhooks/{endpoint.pk}").status_code == 404


ENDPOINT_CALLS = [
    ("GET", "", None),
    ("PUT", "", {"active": False, "url": "https://attacker.example/x"}),
    ("DELETE", "", None),
    ("POST", "/rotateSecret", None),
    ("POST", "/test", None),
    ("GET", "/deliveries", None),
]


@pytest.mark.parametrize("auth", ["sign", "bearer"])
@pytest.mark.parametrize(
    ("method", "suffix", "data"), ENDPOINT_CALLS, ids=[f"{m} {s or '/'}" for m, s, _ in ENDPOINT_CALLS]
)
def test_another_customers_endpoint_is_the_same_404_as_an_unknown_one(api, foreign, auth, method, suffix, data):
    before = state_of(foreign)
    found = api.call(method, f"/me/webhooks/{foreign.pk}{suffix}", data, auth=auth)
    unknown = api.call(method, f"/me/webhooks/{foreign.pk + 1000}{suffix}", data, auth=auth)
    huge = api.call(method, f"/me/webhooks/{2**70}{suffix}", data, auth=auth)
    assert found.status_code == unknown.status_code == huge.status_code == 404
    assert found.json()["message"].replace(str(foreign.pk), "N") == unknown.json()["message"].replace(
        str(foreign.pk + 1000), "N"
    )
    assert state_of(foreign) == before
    assert api.get("/me/webhooks", auth=auth).json() == []


def test_credentials_see_their_customers_endpoints_only(client, owner, foreign):
    user, customer, _hosting = owner
    second = MembershipFactory(user=user).customer  # the user belongs to two customers
    mine = WebhookEndpointFactory(customer=customer)
    theirs = WebhookEndpointFactory(customer=second)
    api = ApiClient(client, api_credentials_create(customer=customer))
    assert api.get("/me/webhooks").json() == [mine.pk]
    assert api.get(f"/me/webhooks/{theirs.pk}").status_code == 404
    created = api.post("/me/webhooks", {"url": HOOK, "events": EVENTS}).json()
    assert WebhookEndpoint.objects.get(pk=created["id"]).customer == customer


def test_a_session_lists_its_customers_and_creates_for_its_only_one(client, owner, foreign):
    user, customer, _hosting = owner
    client.force_login(user)
    mine = WebhookEndpointFactory(customer=customer)
    assert client.get("/1.0/me/webhooks").json() == [mine.pk]
    response = client.post("/1.0/me/webhooks", {"url": HOOK, "events": EVENTS}, content_type="application/json")
    assert response.status_code == 201
    MembershipFactory(user=user)  # now a member of two customers: which one would it be for?
    ambiguous = client.post("/1.0/me/webhooks", {"url": HOOK, "events": EVENTS}, content_type="application/json")
    assert ambiguous.status_code == 400
    assert set(ambiguous.json()) == {"message"}
    assert WebhookEndpoint.objects.filter(customer=customer).count() == 2


def test_session_writes_need_the_csrf_token(owner):
    user, customer, _hosting = owner
    endpoint = WebhookEndpointFactory(customer=customer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    before = state_of(endpoint)
    for method, suffix, _data in ENDPOINT_CALLS:
        if method != "GET":
            response = client.generic(method, f"/1.0/me/webhooks/{endpoint.pk}{suffix}", "{}", "application/json")
            assert response.status_code == 403, (method, suffix)
    refused = client.post("/1.0/me/webhooks", {"url": HOOK, "events": EVENTS}, content_type="application/json")
    assert refused.status_code == 403
    assert state_of(endpoint) == before
    assert WebhookEndpoint.objects.count() == 1


def test_access_rules_apply(client, owner):
    endpoint = WebhookEndpointFactory(customer=owner[1])
    hostings_only = ApiClient(client, api_credentials_create(customer=owner[1], access_rules=READ_ONLY_HOSTINGS))
    for method, suffix, data in ENDPOINT_CALLS:
        refused = hostings_only.call(method, f"/me/webhooks/{endpoint.pk}{suffix}", data)
        assert (refused.status_code, refused.json()["errorCode"]) == (403, "NOT_GRANTED_CALL")
    reader = ApiClient(
        client, api_credentials_create(customer=owner[1], access_rules=[{"method": "GET", "path": "/me/*"}])
    )
    assert reader.get(f"/me/webhooks/{endpoint.pk}/deliveries").status_code == 200
    assert reader.post(f"/me/webhooks/{endpoint.pk}/rotateSecret").json()["errorCode"] == "NOT_GRANTED_CALL"
    assert WebhookEndpoint.objects.get().secret_encrypted == endpoint.secret_encrypted
