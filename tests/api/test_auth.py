"""Who may call: OVH signing, bearer tokens, the session; what every refusal looks like (SPEC §7)."""

import time

import pytest
from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiApplication, ApiToken
from api.services import api_application_revoke, api_credentials_create, api_token_revoke
from api.window_counters import window_counter_clear
from mailqueue.models import Event, MailService, Message
from tests.api.conftest import ApiClient, email_path
from tests.api.test_tenancy import ENDPOINT_IDS, HOSTING_ENDPOINTS

pytestmark = pytest.mark.django_db

ALL_ENDPOINTS = [("GET", "/hosting/web", None)] + [
    (method, f"/hosting/web/{{sn}}{suffix}", data) for method, suffix, data in HOSTING_ENDPOINTS
]
ALL_IDS = ["GET /hosting/web", *ENDPOINT_IDS]


def assert_unchanged(hosting):
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.report_recipient) == ("active", "")
    assert not Message.objects.exists()
    assert not Event.objects.exists()


def refusals(api, hosting, method, path, data):
    path = path.format(sn=hosting.service_name)
    yield "anonymous", api.call(method, path, data, auth="none")
    yield "bad signature", api.call(method, path, data, signature="$1$" + "0" * 40)
    yield "wrong secret", api.call(method, path, data, secret="not-the-secret")
    yield "stale timestamp", api.call(method, path, data, timestamp=int(time.time()) - 3600)
    yield "future timestamp", api.call(method, path, data, timestamp=int(time.time()) + 3600)
    yield "bad timestamp", api.call(method, path, data, timestamp="yesterday")
    yield "unknown token", api.call(method, path, data, auth="bearer", token="nope")
    yield "empty token", api.call(method, path, data, auth="bearer", token="")


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_unauthenticated_and_bad_credentials_are_401(api, hosting, method, path, data):
    for label, response in refusals(api, hosting, method, path, data):
        assert response.status_code == 401, label
        assert set(response.json()) == {"message"}, label
        assert response.json()["message"], label
        assert response.has_header("WWW-Authenticate"), label
    assert_unchanged(hosting)


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_revoked_application_and_token_are_401(client, api, hosting, credentials, method, path, data):
    path = path.format(sn=hosting.service_name)
    api_application_revoke(application=ApiApplication.objects.get(application_key=credentials.application_key))
    api_token_revoke(token=ApiToken.objects.get())
    for auth in ("sign", "bearer"):
        response = api.call(method, path, data, auth=auth)
        assert response.status_code == 401, auth
        assert set(response.json()) == {"message"}
    assert_unchanged(hosting)


def test_revoking_the_token_leaves_signing_working_and_revoking_the_application_revokes_both(api, hosting, credentials):
    api_token_revoke(token=ApiToken.objects.get())
    assert api.get("/hosting/web", auth="bearer").status_code == 401
    assert api.get("/hosting/web", auth="sign").status_code == 200
    fresh = ApiClient(api.client, api_credentials_create(customer=hosting.customer))
    api_application_revoke(application=ApiApplication.objects.get(application_key=fresh.credentials.application_key))
    assert fresh.get("/hosting/web", auth="sign").status_code == 401
    assert fresh.get("/hosting/web", auth="bearer").status_code == 401  # its token went with it


def test_signature_covers_body_method_and_url(api, hosting):
    path = email_path(hosting)
    signed_for_a = api.call("PUT", path, {"email": "a@example.org"})
    assert signed_for_a.status_code == 204
    timestamp = str(int(time.time()))
    from tests.api.conftest import BASE, ovh_signature

    good = ovh_signature(
        secret=api.credentials.application_secret,
        consumer_key=api.credentials.consumer_key,
        method="PUT",
        url=BASE + path,
        body='{"email":"a@example.org"}',
        timestamp=timestamp,
    )
    tampered = api.call("PUT", path, {"email": "evil@example.org"}, timestamp=timestamp, signature=good)
    assert tampered.status_code == 401
    other_method = api.call("POST", email_path(hosting, "/request"), {"action": "BLOCK"}, signature=good)
    assert other_method.status_code == 401
    assert MailService.objects.get(hosting=hosting).report_recipient == "a@example.org"
    assert MailService.objects.get(hosting=hosting).state == "active"


def test_timestamp_inside_the_window_is_accepted(api, settings):
    assert api.get("/hosting/web", timestamp=int(time.time()) - settings.API_SIGNATURE_WINDOW + 5).status_code == 200
    assert api.get("/hosting/web", timestamp=int(time.time()) - settings.API_SIGNATURE_WINDOW - 5).status_code == 401


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_bearer_token_works(api, hosting, method, path, data):
    response = api.call(method, path.format(sn=hosting.service_name), data, auth="bearer")
    assert response.status_code in (200, 201, 204), response.content


def test_session_works_in_the_browsable_api(client, owner):
    user, _customer, hosting = owner
    client.force_login(user)
    page = client.get(f"/1.0/hosting/web/{hosting.service_name}/email", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert "text/html" in page["Content-Type"]
    assert hosting.service_name in page.content.decode()


def test_session_writes_need_csrf(owner):
    from django.test import Client

    user, _customer, hosting = owner
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = client.post(
        f"/1.0/hosting/web/{hosting.service_name}/email/request", {"action": "BLOCK"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert set(refused.json()) == {"message"}
    assert MailService.objects.get(hosting=hosting).state == "active"
    client.get("/api-credentials/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        f"/1.0/hosting/web/{hosting.service_name}/email/request",
        {"action": "BLOCK"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert accepted.status_code == 200
    event = Event.objects.get(hosting=hosting)
    assert (event.actor_kind, event.actor_user) == ("api", user)


def test_repeated_auth_failures_lock_that_credential_from_that_address(api, settings):
    settings.API_AUTH_MAX_FAILURES = 5
    for _ in range(5):
        assert api.get("/hosting/web", signature="$1$bad").status_code == 401
    throttled = api.get("/hosting/web", signature="$1$bad")
    assert throttled.status_code == 429
    assert set(throttled.json()) == {"message"}
    assert 0 < int(throttled["Retry-After"]) <= settings.API_AUTH_FAILURE_WINDOW
    # even the good signature of that application waits; its token, or another address, does not
    assert api.get("/hosting/web").status_code == 429
    assert api.get("/hosting/web", auth="bearer").status_code == 200
    assert ApiClient(api.client, api.credentials).get("/hosting/web").status_code == 200


def test_failures_of_bearer_tokens_count_too(api, settings):
    settings.API_AUTH_MAX_FAILURES = 3
    for _ in range(3):
        assert api.get("/hosting/web", auth="bearer", token="revoked-long-ago").status_code == 401
    assert api.get("/hosting/web", auth="bearer", token="revoked-long-ago").status_code == 429
    assert api.get("/hosting/web", auth="bearer").status_code == 200


def neighbour_of(api, customer) -> ApiClient:
    """Another customer's client calling from the same address (a shared web server, a NAT)."""
    neighbour = ApiClient(api.client, api_credentials_create(customer=customer))
    neighbour.address = api.address
    return neighbour


@pytest.mark.parametrize("auth", ["bearer", "sign"])
def test_one_customers_failures_do_not_lock_out_another_customer_on_the_same_address(
    api, other_hosting, settings, auth
):
    assert settings.API_AUTH_MAX_FAILURES == 20
    for _ in range(20):
        bad = {"bearer": {"token": "a-revoked-token"}, "sign": {"signature": "$1$" + "0" * 40}}[auth]
        assert api.get("/hosting/web", auth=auth, **bad).status_code == 401
    assert api.get("/hosting/web", auth=auth, **bad).status_code == 429
    neighbour = neighbour_of(api, other_hosting.customer)
    response = neighbour.get("/hosting/web", auth=auth)
    assert response.status_code == 200
    assert response.json() == [other_hosting.service_name]


def test_failures_across_credentials_lock_the_address_at_its_own_cap(api, other_hosting, settings):
    settings.API_AUTH_MAX_FAILURES_PER_ADDRESS = 10
    for n in range(10):
        assert api.get("/hosting/web", auth="bearer", token=f"guess-{n}").status_code == 401
    locked = neighbour_of(api, other_hosting.customer).get("/hosting/web", auth="bearer")
    assert (locked.status_code, set(locked.json())) == (429, {"message"})
    assert ApiClient(api.client, api.credentials).get("/hosting/web", auth="bearer").status_code == 200


@pytest.fixture
def low_rates(monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/minute", "user": "4/minute"})


def clear_throttle(*idents):
    for scope, ident in idents:
        window_counter_clear(f"throttle-window:{scope}:{ident}")


def test_rate_throttle_for_anonymous_callers(client, low_rates):
    address = ApiClient(client, None).address
    clear_throttle(("anon", address))
    statuses = [client.get("/1.0/auth/time", REMOTE_ADDR=address).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = client.get("/1.0/auth/time", REMOTE_ADDR=address)
    assert throttled.status_code == 429
    assert set(throttled.json()) == {"message"}
    assert int(throttled["Retry-After"]) > 0


def test_rate_throttle_is_per_customer_across_credentials(api, credentials, owner, other_hosting, low_rates):
    second = ApiClient(api.client, api_credentials_create(customer=owner[1]))
    stranger = ApiClient(api.client, api_credentials_create(customer=other_hosting.customer))
    clear_throttle(("user", f"customer-{owner[1].pk}"), ("user", f"customer-{other_hosting.customer.pk}"))
    assert [api.get("/hosting/web").status_code for _ in range(2)] == [200, 200]
    assert [second.get("/hosting/web", auth="bearer").status_code for _ in range(2)] == [200, 200]
    throttled = second.get("/hosting/web")
    assert throttled.status_code == 429
    assert set(throttled.json()) == {"message"}
    assert stranger.get("/hosting/web").status_code == 200  # another customer has a bucket of its own
