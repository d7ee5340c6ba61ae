"""Every hosting endpoint: another customer's service and an unknown one are the same 404, and change nothing."""

import datetime

import pytest
from django.utils import timezone

from mailqueue.models import Event, MailService, Message, Suppression
from tests.api.conftest import ApiClient
from tests.factories import DeliveryErrorFactory, HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db

RAW = "From: a@shop.example\r\nSubject: hi\r\n\r\nhello\r\n"
HOSTING_ENDPOINTS = [
    ("GET", "", None),
    ("GET", "/email", None),
    ("PUT", "/email", {"email": "attacker@example.org"}),
    ("POST", "/email/request", {"action": "BLOCK"}),
    ("GET", "/email/bounces", None),
    ("GET", "/email/volumes", None),
    ("POST", "/email/messages", {"sender": "app@example.net", "recipients": ["victim@example.org"], "message": RAW}),
    ("GET", "/email/messages", None),
    ("GET", "/email/events", None),
    ("GET", "/email/suppressions", None),
    ("DELETE", "/email/suppressions/victim+news@example.org", None),
]
ENDPOINT_IDS = [f"{method} {suffix or '/'}" for method, suffix, _ in HOSTING_ENDPOINTS]


def snapshot(hosting):
    return (
        MailService.objects.filter(hosting=hosting).values().get(),
        list(Message.objects.filter(hosting=hosting).values_list("id", "status")),
        Event.objects.filter(hosting=hosting).count(),
        list(Suppression.objects.filter(hosting=hosting).values_list("address", flat=True)),
    )


@pytest.mark.parametrize("auth", ["sign", "bearer"])
@pytest.mark.parametrize(("method", "suffix", "data"), HOSTING_ENDPOINTS, ids=ENDPOINT_IDS)
def test_other_customers_service_is_the_same_404_as_an_unknown_one(api, other_hosting, auth, method, suffix, data):
    MessageFactory(hosting=other_hosting)
    DeliveryErrorFactory(hosting=other_hosting)
    Suppression.objects.create(
        hosting=other_hosting, address="victim+news@example.org", expires_at=timezone.now() + datetime.timedelta(days=1)
    )
    before = snapshot(other_hosting)
    foreign = api.call(method, f"/hosting/web/{other_hosting.service_name}{suffix}", data, auth=auth)
    unknown = api.call(method, f"/hosting/web/no-such-site.example{suffix}", data, auth=auth)
    assert foreign.status_code == unknown.status_code == 404
    assert set(foreign.json()) == set(unknown.json()) == {"message"}
    assert foreign.json()["message"].replace(other_hosting.service_name, "X") == unknown.json()["message"].replace(
        "no-such-site.example", "X"
    )
    assert snapshot(other_hosting) == before
    assert other_hosting.service_name not in api.get("/hosting/web", auth=auth).content.decode()


def test_session_is_tenant_scoped(client, owner, other_hosting):
    user, _customer, hosting = owner
    client.force_login(user)
    assert client.get("/1.0/hosting/web").json() == [hosting.service_name]
    assert client.get(f"/1.0/hosting/web/{hosting.service_name}/email").status_code == 200
    assert client.get(f"/1.0/hosting/web/{other_hosting.service_name}/email").status_code == 404


def test_credentials_act_for_their_customer_only(client, owner, credentials):
    """Credentials of one customer see that customer's hostings, even when the creator belongs to several."""
    user, _customer, hosting = owner
    second = HostingFactory()
    second.customer.memberships.create(user=user)
    api = ApiClient(client, credentials)
    assert api.get("/hosting/web").json() == [hosting.service_name]
    assert api.get(f"/hosting/web/{second.service_name}").status_code == 404
