"""The consumer-key flow of SPEC §9.3 through the API: an application asks for a key with rules
(POST /auth/credential), a user validates it for a customer, and the key makes only the calls its
rules grant, for that customer only; currentCredential and logout whatever the rules."""

import datetime
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.throttling import SimpleRateThrottle

from api import keys
from api.models import ConsumerKey, CredentialStatus
from api.services import (
    api_application_revoke,
    api_credentials_create,
    consumer_key_refuse,
    consumer_key_validate,
)
from api.window_counters import window_counter_clear
from mailqueue.models import Event, MailService
from tests.api.conftest import (
    READ_ONLY_HOSTINGS,
    ApiClient,
    email_path,
    next_address,
    record_of,
    request_key,
    signed,
)
from tests.api.test_auth import assert_ovh_error
from tests.factories import HostingFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def read_only(client, owner, application):
    """A key asked for read-only rules on /hosting/web/*, validated by the owner for their customer."""
    consumer_key = request_key(client, application.key).json()["consumerKey"]
    consumer_key_validate(consumer_key=record_of(consumer_key), user=owner[0], customer=owner[1], lifetime=None)
    return signed(client, application, consumer_key)


def test_a_request_answers_a_pending_key_and_a_validation_link(client, application):
    response = request_key(client, application.key, redirection="https://tool.example/done")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"consumerKey", "validationUrl", "state"}
    assert body["state"] == "pendingValidation"
    assert response["X-Ovh-Queryid"].startswith("EU.ext-1.")
    url = urlsplit(body["validationUrl"])
    assert (url.scheme, url.netloc) == ("http", "testserver")
    assert url.path.startswith("/api-credentials/validate/")
    token = url.path.split("/")[-2]
    stored = record_of(body["consumerKey"])
    assert (stored.application, stored.status, stored.customer) == (application.record, "pendingValidation", None)
    assert stored.access_rules == READ_ONLY_HOSTINGS
    assert stored.redirection == "https://tool.example/done"
    assert stored.validation_token_hash == keys.digest(token)
    assert body["consumerKey"] not in str(ConsumerKey.objects.values().get()), "only digests are stored"
    assert token not in str(ConsumerKey.objects.values().get())


def test_the_rules_are_cleaned(client, application):
    rules = [{"method": "GET", "path": "/hosting/web"}, {"method": "GET", "path": "/hosting/web"}]
    assert request_key(client, application.key, rules=rules).status_code == 200
    assert ConsumerKey.objects.get().access_rules == [{"method": "GET", "path": "/hosting/web"}]


@pytest.mark.parametrize(
    "body",
    [
        {"accessRules": []},
        {"accessRules": "GET /*"},
        {"accessRules": [{"method": "PATCH", "path": "/*"}]},
        {"accessRules": [{"method": "*", "path": "/*"}]},
        {"accessRules": [{"method": "GET"}]},
        {"accessRules": [{"method": "GET", "path": "hosting/web"}]},
        {"accessRules": [{"method": "GET", "path": "/hosting web"}]},
        {"accessRules": [{"method": "GET", "path": "/" + "x" * 300}]},
        {"accessRules": [{"method": "GET", "path": f"/p{n}"} for n in range(101)]},
        {"accessRules": READ_ONLY_HOSTINGS, "allowedIPs": ["192.0.2.0/24"]},
    ],
)
def test_bad_requests_are_400_and_store_nothing(client, application, body):
    response = request_key(client, application.key, **body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"message"}
    assert not ConsumerKey.objects.exists()


@pytest.mark.parametrize("application_key", ["", "no-such-key", "\x00", "k" * 500])
def test_an_unknown_application_is_invalid_key(client, application_key):
    assert_ovh_error(request_key(client, application_key), 403, "INVALID_KEY")
    assert not ConsumerKey.objects.exists()


def test_a_revoked_application_cannot_ask_for_keys(client, application):
    api_application_revoke(application=application.record)
    assert_ovh_error(request_key(client, application.key), 403, "INVALID_KEY")


def test_a_pending_key_grants_nothing(client, application, hosting):
    consumer_key = request_key(client, application.key).json()["consumerKey"]
    api = signed(client, application, consumer_key)
    assert_ovh_error(api.get(email_path(hosting)), 403, "INVALID_CREDENTIAL")
    assert_ovh_error(api.get("/auth/currentCredential"), 403, "INVALID_CREDENTIAL")
    assert_ovh_error(signed(client, application, "never-issued").get("/hosting/web"), 403, "INVALID_CREDENTIAL")


def test_a_refused_or_expired_key_is_invalid_credential(client, owner, application, hosting):
    refused = request_key(client, application.key).json()["consumerKey"]
    consumer_key_refuse(consumer_key=record_of(refused), user=owner[0])
    assert_ovh_error(signed(client, application, refused).get(email_path(hosting)), 403, "INVALID_CREDENTIAL")
    expiring = request_key(client, application.key).json()["consumerKey"]
    lifetime = datetime.timedelta(hours=1)
    consumer_key_validate(consumer_key=record_of(expiring), user=owner[0], customer=owner[1], lifetime=lifetime)
    api = signed(client, application, expiring)
    assert api.get(email_path(hosting)).status_code == 200
    ConsumerKey.objects.filter(pk=record_of(expiring).pk).update(expires_at=timezone.now() - datetime.timedelta(1))
    assert_ovh_error(api.get(email_path(hosting)), 403, "INVALID_CREDENTIAL")
    assert record_of(expiring).status_at(timezone.now()) == CredentialStatus.EXPIRED


def test_a_key_makes_only_the_calls_its_rules_grant(read_only, hosting):
    assert read_only.get(email_path(hosting)).json()["state"] == "ok"
    assert read_only.get(f"/hosting/web/{hosting.service_name}").status_code == 200
    assert read_only.get(email_path(hosting, "/bounces?limit=5")).status_code == 200
    assert_ovh_error(read_only.post(email_path(hosting, "/request"), {"action": "BLOCK"}), 403, "NOT_GRANTED_CALL")
    assert_ovh_error(read_only.put(email_path(hosting), {"email": "x@example.org"}), 403, "NOT_GRANTED_CALL")
    # "/hosting/web/*" is not "/hosting/web": OVH's rules, hence the client's add_recursive_rules
    assert_ovh_error(read_only.get("/hosting/web"), 403, "NOT_GRANTED_CALL")
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.report_recipient) == ("active", "")
    assert not Event.objects.exists()


def test_refused_calls_are_not_counted_as_failed_authentications(read_only, hosting, settings):
    settings.API_AUTH_MAX_FAILURES = 3
    for _ in range(5):
        assert read_only.post(email_path(hosting, "/request"), {"action": "BLOCK"}).status_code == 403
    assert read_only.get(email_path(hosting)).status_code == 200


def test_current_credential_and_logout_whatever_the_rules(client, owner, application, hosting):
    consumer_key = request_key(client, application.key, rules=[{"method": "GET", "path": "/nothing"}]).json()
    record = record_of(consumer_key["consumerKey"])
    consumer_key_validate(consumer_key=record, user=owner[0], customer=owner[1], lifetime=datetime.timedelta(days=30))
    api = signed(client, application, consumer_key["consumerKey"])
    described = api.get("/auth/currentCredential")
    assert described.status_code == 200, described.content
    body = described.json()
    assert set(body) == {
        "credentialId",
        "applicationId",
        "rules",
        "status",
        "creation",
        "expiration",
        "lastUse",
        "ovhSupport",
        "allowedIPs",
    }
    assert (body["credentialId"], body["applicationId"]) == (record.pk, application.record.pk)
    assert body["rules"] == [{"method": "GET", "path": "/nothing"}]
    assert (body["status"], body["ovhSupport"], body["allowedIPs"]) == ("validated", False, None)
    expiration = datetime.datetime.fromisoformat(body["expiration"])
    assert abs(expiration - (timezone.now() + datetime.timedelta(days=30))) < datetime.timedelta(minutes=1)
    assert body["lastUse"] is not None
    assert_ovh_error(api.get(email_path(hosting)), 403, "NOT_GRANTED_CALL")
    logout = api.post("/auth/logout")
    assert logout.status_code == 204
    assert record_of(consumer_key["consumerKey"]).status == CredentialStatus.REVOKED
    assert_ovh_error(api.get("/auth/currentCredential"), 403, "INVALID_CREDENTIAL")


def test_tokens_have_rules_too(api, owner, hosting):
    full = api.get("/auth/currentCredential", auth="bearer").json()
    assert full["rules"] == [{"method": "*", "path": "/*"}]
    reader = ApiClient(api.client, api_credentials_create(customer=owner[1], access_rules=READ_ONLY_HOSTINGS))
    assert reader.get(email_path(hosting), auth="bearer").status_code == 200
    refused = reader.post(email_path(hosting, "/request"), {"action": "BLOCK"}, auth="bearer")
    assert_ovh_error(refused, 403, "NOT_GRANTED_CALL")
    assert reader.post("/auth/logout", auth="bearer").status_code == 204
    assert_ovh_error(reader.get(email_path(hosting), auth="bearer"), 403, "INVALID_CREDENTIAL")
    assert reader.get(email_path(hosting)).status_code == 200, "the signed key of the same credentials stays"


def test_the_session_has_no_credential_to_describe(client, owner):
    client.force_login(owner[0])
    response = client.get("/1.0/auth/currentCredential")
    assert response.status_code == 403
    assert response.json()["errorCode"] == "NOT_CREDENTIAL"


def test_a_key_acts_for_the_customer_chosen_at_validation_only(client, owner, application, hosting):
    """The application is owner's customer's; a member of another customer validates a key for theirs."""
    stranger = MembershipFactory()
    theirs = HostingFactory(customer=stranger.customer)
    consumer_key = request_key(client, application.key, rules=[{"method": "GET", "path": "/*"}]).json()
    record = record_of(consumer_key["consumerKey"])
    consumer_key_validate(consumer_key=record, user=stranger.user, customer=stranger.customer, lifetime=None)
    api = signed(client, application, consumer_key["consumerKey"])
    assert api.get("/hosting/web").json() == [theirs.service_name]
    assert api.get(email_path(theirs)).status_code == 200
    mine = api.get(email_path(hosting))
    assert mine.status_code == 404, "the application's own customer is another customer here"
    assert set(mine.json()) == {"message"}


def test_credentials_made_whole_keep_every_call(api, hosting):
    """create_api_credentials / the portal's whole credentials: validated at once, every call."""
    assert api.post(email_path(hosting, "/request"), {"action": "BLOCK"}).status_code == 200
    assert api.get("/auth/currentCredential").json()["rules"] == [{"method": "*", "path": "/*"}]


def test_key_requests_are_throttled_per_address_apart_from_other_anonymous_calls(client, application, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "100/minute"})
    address = next_address()
    window_counter_clear(f"throttle-window:credential-request:{address}")
    window_counter_clear(f"throttle-window:anon:{address}")
    statuses = [request_key(client, application.key, address=address).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get("/1.0/auth/time", REMOTE_ADDR=address).status_code == 200
