"""The official `ovh` Python client against a live server: signing, time delta, results and errors."""

import ovh
import pytest
from ovh.exceptions import BadParametersError, ResourceConflictError, ResourceNotFoundError

from api.services import api_credentials_create
from mailqueue.models import Event, MailService
from tests.factories import DeliveryErrorFactory, HostingFactory

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
