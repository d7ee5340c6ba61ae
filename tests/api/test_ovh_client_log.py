"""The official `ovh` client against a live server: the delivery log's filters and pages, deleting
and retrying a message, the CSV exports through its raw_call(), and the webhook endpoints under
/me/webhooks, with the exceptions it raises for OVH's error statuses."""

import csv
import io

import ovh
import pytest
from ovh.exceptions import BadParametersError, NotGrantedCall, ResourceConflictError, ResourceNotFoundError

from api.services import api_credentials_create
from mailqueue.models import Event, Message, MessageStatus, WebhookEndpoint
from mailqueue.webhook_sending import webhooks_send_due
from tests.api.test_webhooks import public_dns  # noqa: F401 (autouse: names under .example resolve)
from tests.factories import DeliveryErrorFactory, HostingFactory, MessageFactory, WebhookEndpointFactory
from tests.mailqueue.test_webhooks import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(live_server, monkeypatch):
    hosting = HostingFactory(service_name="client-log.example")
    other = HostingFactory(service_name="someone-else.example")
    credentials = api_credentials_create(customer=hosting.customer)
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-test", f"{live_server.url}/1.0")

    def client(**overrides):
        settings = {
            "endpoint": "portal-test",
            "application_key": credentials.application_key,
            "application_secret": credentials.application_secret,
            "consumer_key": credentials.consumer_key,
        }
        return ovh.Client(**{**settings, **overrides})

    return client, hosting, other


def test_the_log_its_actions_and_exports_with_the_ovh_client(portal):
    make_client, hosting, other = portal
    client = make_client()
    base = f"/hosting/web/{hosting.service_name}/email"
    held = [MessageFactory(hosting=hosting, status=MessageStatus.HELD, subject=f"Held {n}") for n in range(3)]
    deferred = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED, subject="Later")
    sent = MessageFactory(hosting=hosting, status=MessageStatus.SENT, subject="Gone")
    foreign = MessageFactory(hosting=other, status=MessageStatus.HELD)
    DeliveryErrorFactory(hosting=hosting, recipient="gone@example.org")

    page = client.get(f"{base}/messages", status="held", pageSize=2)
    seen = [item["id"] for item in page["results"]]
    while page["next"]:
        page = client.get(page["next"].split("/1.0", 1)[1])  # the signed next URL, filters kept
        seen += [item["id"] for item in page["results"]]
    assert seen == [message.pk for message in reversed(held)]
    several = client.get(f"{base}/messages?status=deferred&status=sent", subject="e")["results"]
    assert [item["id"] for item in several] == [sent.pk, deferred.pk]
    with pytest.raises(BadParametersError):
        client.get(f"{base}/messages", since="2026-02-30")

    assert client.delete(f"{base}/messages/{held[0].pk}") is None
    with pytest.raises(ResourceConflictError, match="sent"):
        client.delete(f"{base}/messages/{sent.pk}")
    with pytest.raises(ResourceNotFoundError):
        client.delete(f"{base}/messages/{foreign.pk}")
    assert client.post(f"{base}/messages/{deferred.pk}/retry")["status"] == "queued"
    with pytest.raises(ResourceConflictError):
        client.post(f"{base}/messages/{deferred.pk}/retry")  # queued now
    assert sorted(Message.objects.filter(hosting=hosting).values_list("status", flat=True)) == [
        "held",
        "held",
        "queued",
        "sent",
    ]
    assert Message.objects.get(pk=foreign.pk).status == MessageStatus.HELD
    assert list(Event.objects.filter(hosting=hosting).values_list("action", "actor_kind").order_by("id")) == [
        ("delete_messages", "api"),
        ("retry_messages", "api"),
    ]

    export = client.raw_call("GET", f"{base}/messages/export?status=held")
    assert export.status_code == 200 and export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert export.headers["X-Ovh-Queryid"]
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert [row["subject"] for row in rows] == ["Held 2", "Held 1"]
    errors = client.raw_call("GET", f"{base}/bounces/export?since=&until=")
    assert "gone@example.org" in errors.text
    refused = client.raw_call("GET", f"/hosting/web/{other.service_name}/email/bounces/export")
    assert refused.status_code == 404 and set(refused.json()) == {"message"}
    unsigned = client.raw_call("GET", f"{base}/messages/export", need_auth=False)
    assert unsigned.status_code == 403 and unsigned.json()["errorCode"] == "NOT_CREDENTIAL"


def test_webhook_endpoints_with_the_ovh_client(portal, settings):
    make_client, hosting, other = portal
    client = make_client()
    theirs = WebhookEndpointFactory(customer=other.customer)
    hook = client.post("/me/webhooks", url="https://hooks.acme.example/portal", events=["message.failed"])
    assert hook["secret"].startswith("whsec_")
    assert client.get("/me/webhooks") == [hook["id"]]
    path = f"/me/webhooks/{hook['id']}"
    assert client.put(path, events=["message.failed", "message.bounced"], active=False) is None
    assert client.get(path)["events"] == ["message.failed", "message.bounced"]
    assert client.get(path)["active"] is False
    rotated = client.post(f"{path}/rotateSecret")["secret"]
    assert rotated != hook["secret"]

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(BadParametersError, match=r"public"):
        client.post("/me/webhooks", url="http://169.254.169.254/latest", events=["message.sent"])
    with pytest.raises(BadParametersError):
        client.put(path, url="http://127.0.0.1:9/x")
    for call in (client.get, client.delete):
        with pytest.raises(ResourceNotFoundError):
            call(f"/me/webhooks/{theirs.pk}")
    with pytest.raises(ResourceNotFoundError):
        client.post(f"/me/webhooks/{theirs.pk}/rotateSecret")

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver listens on loopback
    with Receiver() as receiver:
        client.put(path, url=receiver.url)
        delivery = client.post(f"{path}/test")
        assert (delivery["type"], delivery["status"]) == ("test", "pending")
        assert webhooks_send_due() == 1  # the worker's part
    [logged] = client.get(f"{path}/deliveries", limit=5)
    assert logged["status"] == "delivered" and logged["attempts"][0]["statusCode"] == 200
    assert client.delete(path) is None
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [theirs.pk]

    reader = api_credentials_create(customer=hosting.customer, access_rules=[{"method": "GET", "path": "/hosting/*"}])
    limited = make_client(
        application_key=reader.application_key,
        application_secret=reader.application_secret,
        consumer_key=reader.consumer_key,
    )
    with pytest.raises(NotGrantedCall):
        limited.get("/me/webhooks")
