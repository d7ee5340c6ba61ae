"""The official `ovh` Python client against a live server: signing, time delta, results and errors;
consumer keys asked for with its new_consumer_key_request(), and OVH's authentication errors as it
raises them (the validation page itself is driven in Chromium, tests/browser/)."""

import datetime
from types import SimpleNamespace

import ovh
import pytest
from django.utils import timezone
from ovh.exceptions import (
    BadParametersError,
    InvalidCredential,
    InvalidKey,
    NotCredential,
    NotGrantedCall,
    ResourceConflictError,
    ResourceNotFoundError,
)

from api import keys
from api.models import ConsumerKey
from api.services import api_application_create, api_application_revoke, api_credentials_create, consumer_key_validate
from mailqueue.models import Event, MailService
from tests.factories import DeliveryErrorFactory, HostingFactory, MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ovh_setup(live_server, monkeypatch):
    hosting = HostingFactory(service_name="client-shop.example")
    DeliveryErrorFactory(hosting=hosting, recipient="gone@example.org")
    other = HostingFactory(service_name="someone-else.example")
    credentials = api_credentials_create(customer=hosting.customer)
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-test", f"{live_server.url}/1.0")
    client = ovh.Client(
        endpoint="portal-test",
        application_key=credentials.application_key,
        application_secret=credentials.application_secret,
        consumer_key=credentials.consumer_key,
    )
    return client, hosting, other


def test_ovh_client_end_to_end(ovh_setup):
    client, hosting, other = ovh_setup
    base = f"/hosting/web/{hosting.service_name}/email"
    assert client.get("/hosting/web") == [hosting.service_name]
    assert client.get(f"/hosting/web/{hosting.service_name}")["serviceName"] == hosting.service_name
    assert client.get(base)["state"] == "ok"
    assert MailService.objects.get(hosting=other).state == "active"
    assert not Event.objects.filter(hosting=other).exists()
    assert client.put(base, email="ops@example.org") is None
    assert client.get(base)["email"] == "ops@example.org"
    assert isinstance(client.post(f"{base}/request", action="BLOCK"), str)
    assert client.get(base)["state"] == "ko"
    assert isinstance(client.post(f"{base}/request", action="PURGE"), str)
    assert client.get(base)["state"] == "purging"
    bounces = client.get(f"{base}/bounces", limit=5)
    assert [bounce["to"] for bounce in bounces] == ["gone@example.org"]
    volumes = client.get(f"{base}/volumes")
    assert len(volumes) == 30
    events = client.get(f"{base}/events")["results"]
    assert [event["action"] for event in events][:3] == ["purge", "block", "change_recipient"]
    assert {event["actor"] for event in events[:3]} == {"api"}


def test_ovh_client_errors(ovh_setup):
    client, hosting, other = ovh_setup
    base = f"/hosting/web/{hosting.service_name}/email"
    with pytest.raises(ResourceConflictError, match=r"pas bloqué|not blocked"):
        client.post(f"{base}/request", action="UNBLOCK")
    with pytest.raises(ResourceNotFoundError):
        client.get(f"/hosting/web/{other.service_name}/email")
    with pytest.raises(ResourceNotFoundError):
        client.post(f"/hosting/web/{other.service_name}/email/request", action="BLOCK")
    with pytest.raises(BadParametersError):
        client.put(base, email="not an address")
    with pytest.raises(BadParametersError):
        client.get(f"{base}/bounces", limit=101)
    assert client.get(f"{base}/bounces", limit=0) == []  # the manager allows 0
    assert client.get(base)["state"] == "ok"
    assert MailService.objects.get(hosting=other).state == "active"
    assert not Event.objects.filter(hosting=other).exists()


# --- the consumer-key flow and OVH's authentication errors, as the client raises them ------------


@pytest.fixture
def developer(live_server, monkeypatch):
    """An application of acme (which alice belongs to), and an `ovh.Client` with its key and secret only."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer, service_name="acme-flow.example")
    created = api_application_create(customer=membership.customer, name="Dashboard")
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-test", f"{live_server.url}/1.0")

    def client(**overrides):
        settings = {
            "endpoint": "portal-test",
            "application_key": created.application_key,
            "application_secret": created.application_secret,
        }
        return ovh.Client(**{**settings, **overrides})

    return SimpleNamespace(user=membership.user, customer=membership.customer, hosting=hosting, client=client)


def validate(consumer_key: str, developer, lifetime=None) -> ConsumerKey:
    record = ConsumerKey.objects.get(key_hash=keys.digest(consumer_key))
    consumer_key_validate(consumer_key=record, user=developer.user, customer=developer.customer, lifetime=lifetime)
    return record


def read_only_key(developer):
    client = developer.client()
    request = client.new_consumer_key_request()
    request.add_rules(ovh.API_READ_ONLY, "/hosting/web/*")
    return client, request.request()


def test_a_read_only_key_reads_and_is_not_granted_writes(developer):
    client, validation = read_only_key(developer)
    assert validation["state"] == "pendingValidation"
    email = f"/hosting/web/{developer.hosting.service_name}/email"
    with pytest.raises(InvalidCredential) as pending:
        client.get(email)
    assert pending.value.query_id.startswith("EU.ext-1.")
    validate(validation["consumerKey"], developer)
    assert client.get(email)["state"] == "ok"
    assert client.get(f"{email}/bounces", limit=5) == []
    with pytest.raises(NotGrantedCall) as refused:
        client.post(f"{email}/request", action="BLOCK")
    assert refused.value.query_id.startswith("EU.ext-1.") and "EU.ext-1." in str(refused.value)
    with pytest.raises(NotGrantedCall):
        client.get("/hosting/web")  # "/hosting/web/*" does not match it
    assert MailService.objects.get(hosting=developer.hosting).state == "active"
    described = client.get("/auth/currentCredential")
    assert described["rules"] == [{"method": "GET", "path": "/hosting/web/*"}]
    assert (described["status"], described["expiration"]) == ("validated", None)


def test_an_expired_key_is_an_invalid_credential(developer):
    client, validation = read_only_key(developer)
    record = validate(validation["consumerKey"], developer, lifetime=datetime.timedelta(hours=1))
    email = f"/hosting/web/{developer.hosting.service_name}/email"
    assert client.get(email)["state"] == "ok"
    ConsumerKey.objects.filter(pk=record.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    with pytest.raises(InvalidCredential):
        client.get(email)


def test_a_revoked_applications_key_is_an_invalid_key(developer):
    client, validation = read_only_key(developer)
    record = validate(validation["consumerKey"], developer)
    api_application_revoke(application=record.application)
    with pytest.raises(InvalidKey):
        client.get(f"/hosting/web/{developer.hosting.service_name}/email")
    with pytest.raises(InvalidKey):
        read_only_key(developer)  # nor can it ask for new keys


def test_a_bad_signature_and_a_stale_clock_are_bad_parameters_as_on_ovh(developer):
    _client, validation = read_only_key(developer)
    validate(validation["consumerKey"], developer)
    email = f"/hosting/web/{developer.hosting.service_name}/email"
    wrong_secret = developer.client(application_secret="not-the-secret", consumer_key=validation["consumerKey"])
    with pytest.raises(BadParametersError, match=r"Invalid signature|Signature invalide") as bad:
        wrong_secret.get(email)
    assert bad.value.response.json()["errorCode"] == "INVALID_SIGNATURE"
    late = developer.client(consumer_key=validation["consumerKey"])
    late._time_delta = -3600  # as if the client had computed a wrong server time
    with pytest.raises(BadParametersError) as stale:
        late.get(email)
    assert stale.value.response.json()["errorCode"] == "QUERY_TIME_OUT"


def test_no_consumer_key_is_not_credential(developer):
    with pytest.raises(NotCredential):
        developer.client().get("/hosting/web", _need_auth=False)  # the application key alone


def test_logout_revokes_the_key(developer):
    client, validation = read_only_key(developer)
    validate(validation["consumerKey"], developer)
    assert client.post("/auth/logout") is None
    with pytest.raises(InvalidCredential):
        client.get("/auth/currentCredential")
