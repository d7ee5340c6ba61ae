"""Who may call: OVH signing, bearer tokens, the session; what every refusal looks like (SPEC §7,
§9.2): no credentials at all is a 401 {"message"}; a refused credential is OVH's errorCode."""

import datetime
import time

import pytest
from django.utils import timezone
from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiApplication, ApiToken
from api.services import api_application_revoke, api_credentials_create, api_token_revoke
from api.window_counters import window_counter_clear
from mailqueue.models import Event, MailService, Message, Suppression
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
    """(what is wrong, the response, the status and errorCode OVH gives it)."""
    path = path.format(sn=hosting.service_name)
    yield "bad signature", api.call(method, path, data, signature="$1$" + "0" * 40), (400, "INVALID_SIGNATURE")
    yield "wrong secret", api.call(method, path, data, secret="not-the-secret"), (400, "INVALID_SIGNATURE")
    yield "no signature", api.call(method, path, data, signature=""), (400, "INVALID_SIGNATURE")
    stale = int(time.time()) - 3600
    yield "stale timestamp", api.call(method, path, data, timestamp=stale), (400, "QUERY_TIME_OUT")
    future = int(time.time()) + 3600
    yield "future timestamp", api.call(method, path, data, timestamp=future), (400, "QUERY_TIME_OUT")
    yield "bad timestamp", api.call(method, path, data, timestamp="yesterday"), (400, "QUERY_TIME_OUT")
    unknown_application = {"HTTP_X_OVH_APPLICATION": "no-such-application"}
    yield "unknown application", api.call(method, path, data, **unknown_application), (403, "INVALID_KEY")
    no_consumer = {"HTTP_X_OVH_CONSUMER": ""}
    yield "no consumer key", api.call(method, path, data, **no_consumer), (403, "NOT_CREDENTIAL")
    yield "unknown token", api.call(method, path, data, auth="bearer", token="nope"), (403, "INVALID_CREDENTIAL")
    yield "empty token", api.call(method, path, data, auth="bearer", token=""), (403, "INVALID_CREDENTIAL")


def assert_ovh_error(response, status: int, error_code: str, label=""):
    assert response.status_code == status, (label, response.content)
    body = response.json()
    assert set(body) == {"errorCode", "message"}, label
    assert body["errorCode"] == error_code, label
    assert body["message"], label
    assert response["X-Ovh-Queryid"].startswith("EU.ext-1."), label


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_no_credentials_is_401(api, hosting, method, path, data):
    response = api.call(method, path.format(sn=hosting.service_name), data, auth="none")
    assert response.status_code == 401
    assert set(response.json()) == {"message"}
    assert response.has_header("WWW-Authenticate")
    assert_unchanged(hosting)


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_bad_credentials_get_ovhs_error_codes(api, hosting, method, path, data):
    for label, response, (status, error_code) in refusals(api, hosting, method, path, data):
        assert_ovh_error(response, status, error_code, label)
    assert_unchanged(hosting)


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_revoked_application_is_invalid_key_and_revoked_token_invalid_credential(
    client, api, hosting, credentials, method, path, data
):
    path = path.format(sn=hosting.service_name)
    api_application_revoke(application=ApiApplication.objects.get(application_key=credentials.application_key))
    api_token_revoke(token=ApiToken.objects.get())
    assert_ovh_error(api.call(method, path, data, auth="sign"), 403, "INVALID_KEY")
    assert_ovh_error(api.call(method, path, data, auth="bearer"), 403, "INVALID_CREDENTIAL")
    assert_unchanged(hosting)


def test_revoking_the_token_leaves_signing_working_and_revoking_the_application_revokes_both(api, hosting, credentials):
    api_token_revoke(token=ApiToken.objects.get())
    assert api.get("/hosting/web", auth="bearer").status_code == 403
    assert api.get("/hosting/web", auth="sign").status_code == 200
    fresh = ApiClient(api.client, api_credentials_create(customer=hosting.customer))
    api_application_revoke(application=ApiApplication.objects.get(application_key=fresh.credentials.application_key))
    assert_ovh_error(fresh.get("/hosting/web", auth="sign"), 403, "INVALID_KEY")
    assert_ovh_error(fresh.get("/hosting/web", auth="bearer"), 403, "INVALID_CREDENTIAL")  # its token went with it


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
    assert_ovh_error(tampered, 400, "INVALID_SIGNATURE")
    other_method = api.call("POST", email_path(hosting, "/request"), {"action": "BLOCK"}, signature=good)
    assert_ovh_error(other_method, 400, "INVALID_SIGNATURE")
    assert MailService.objects.get(hosting=hosting).report_recipient == "a@example.org"
    assert MailService.objects.get(hosting=hosting).state == "active"


def test_timestamp_inside_the_window_is_accepted(api, settings):
    assert api.get("/hosting/web", timestamp=int(time.time()) - settings.API_SIGNATURE_WINDOW + 5).status_code == 200
    late = api.get("/hosting/web", timestamp=int(time.time()) - settings.API_SIGNATURE_WINDOW - 5)
    assert_ovh_error(late, 400, "QUERY_TIME_OUT")


@pytest.mark.parametrize(("method", "path", "data"), ALL_ENDPOINTS, ids=ALL_IDS)
def test_bearer_token_works(api, hosting, method, path, data):
    in_a_day = timezone.now() + datetime.timedelta(days=1)
    Suppression.objects.create(hosting=hosting, address="victim+news@example.org", expires_at=in_a_day)  # to delete
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
        assert api.get("/hosting/web", signature="$1$bad").status_code == 400
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
        assert api.get("/hosting/web", auth="bearer", token="revoked-long-ago").status_code == 403
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
        assert api.get("/hosting/web", auth=auth, **bad).status_code in (400, 403)
    assert api.get("/hosting/web", auth=auth, **bad).status_code == 429
    neighbour = neighbour_of(api, other_hosting.customer)
    response = neighbour.get("/hosting/web", auth=auth)
    assert response.status_code == 200
    assert response.json() == [other_hosting.service_name]


def test_failures_across_credentials_lock_the_address_at_its_own_cap(api, other_hosting, settings):
    settings.API_AUTH_MAX_FAILURES_PER_ADDRESS = 10
    for n in range(10):
        assert api.get("/hosting/web", auth="bearer", token=f"guess-{n}").status_code == 403
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
