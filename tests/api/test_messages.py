"""POST/GET …/email/messages and GET …/email/events (SPEC §7)."""

import pytest

from mailqueue.blocking import mail_service_block
from mailqueue.models import Event, Message, MessageStatus
from mailqueue.state import Actor
from tests.api.conftest import email_path
from tests.factories import EventFactory, MessageFactory, UserFactory
from tests.support import as_submitted

pytestmark = pytest.mark.django_db

RAW = "From: script@shop.example\r\nTo: client@example.org\r\nSubject: Votre commande\r\n\r\nMerci !\r\n"


def submission(**overrides):
    return {"sender": "script@shop.example", "recipients": ["client@example.org"], "message": RAW, **overrides}


def test_submit_queues_the_message(api, hosting):
    response = api.post(email_path(hosting, "/messages"), submission())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "messageId", "status"}
    assert body["status"] == "queued"
    message = Message.objects.get(pk=body["id"])
    assert (message.hosting, message.message_id, message.subject) == (hosting, body["messageId"], "Votre commande")
    assert as_submitted(message.raw) == RAW.encode()
    assert [recipient["address"] for recipient in message.recipients] == ["client@example.org"]


def test_submit_to_a_blocked_service_is_held(api, hosting):
    mail_service_block(hosting=hosting, actor=Actor.customer(UserFactory()))
    response = api.post(email_path(hosting, "/messages"), submission())
    assert response.status_code == 201
    assert response.json()["status"] == "held"
    assert Message.objects.get(pk=response.json()["id"]).status == MessageStatus.HELD


@pytest.mark.parametrize(
    "payload",
    [
        submission(recipients=["not an address"]),
        submission(recipients=["ok@example.org", "bad@@example.org"]),
        submission(recipients=[]),
        submission(recipients=None),
        {"sender": "script@shop.example", "message": RAW},
        submission(recipients=[f"r{n}@example.org" for n in range(101)]),
        submission(sender="not an address"),
        submission(recipients=["x@example.org\r\nRCPT TO:<y@example.org>"]),
        submission(message=None),
        submission(message=""),
        submission(message="\ud800 lone surrogate"),
        submission(recipients=["nul\x00@example.org"]),
        {"recipients": "client@example.org", "message": RAW},
    ],
    ids=[
        "bad-recipient",
        "one-bad-recipient",
        "no-recipient",
        "null-recipients",
        "missing-recipients",
        "too-many",
        "bad-sender",
        "injection",
        "null-message",
        "empty-message",
        "lone-surrogate",
        "nul",
        "recipients-string",
    ],
)
def test_bad_submission_is_400_and_stores_nothing(api, hosting, payload):
    response = api.post(email_path(hosting, "/messages"), payload)
    assert response.status_code == 400, response.content
    assert response.json()["message"]
    assert not Message.objects.exists()


def test_too_many_recipients_follows_the_setting(api, hosting, settings):
    settings.MAX_RECIPIENTS = 3
    too_many = api.post(email_path(hosting, "/messages"), submission(recipients=[f"r{n}@x.org" for n in range(4)]))
    assert too_many.status_code == 400
    assert "3" in too_many.json()["message"]
    ok = api.post(email_path(hosting, "/messages"), submission(recipients=[f"r{n}@x.org" for n in range(3)]))
    assert ok.status_code == 201
    assert Message.objects.count() == 1


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_too_big_message_is_400_and_stores_nothing(api, hosting, settings, auth):
    settings.MAX_MESSAGE_BYTES = 1000
    response = api.post(email_path(hosting, "/messages"), submission(message=RAW + "x" * 1000), auth=auth)
    assert response.status_code == 400
    assert response.json()["message"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_body_over_the_upload_limit_is_400_with_message(api, hosting, settings, auth):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = api.post(email_path(hosting, "/messages"), submission(message=RAW + "x" * 3000), auth=auth)
    assert response.status_code == 400
    assert set(response.json()) >= {"message"}
    assert not Message.objects.exists()


def test_list_messages_metadata_never_content(api, hosting, other_hosting):
    MessageFactory(hosting=hosting, status=MessageStatus.SENT, subject="Hello")
    MessageFactory(hosting=other_hosting)
    response = api.get(email_path(hosting, "/messages"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    [item] = body["results"]
    assert set(item) == {
        "id",
        "messageId",
        "sender",
        "recipients",
        "subject",
        "size",
        "status",
        "createdAt",
        "heldUntil",
        "attempts",
    }
    assert (item["subject"], item["status"], item["recipients"]) == ("Hello", "sent", ["someone@example.org"])
    assert "Hello\r\n" not in response.content.decode()  # the body of the raw message


def test_list_messages_status_filter(api, hosting):
    held = MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    MessageFactory(hosting=hosting, status=MessageStatus.SENT)
    response = api.get(email_path(hosting, "/messages?status=held"))
    assert [item["id"] for item in response.json()["results"]] == [held.pk]
    assert api.get(email_path(hosting, "/messages?status=nonsense")).status_code == 400


def test_list_messages_cursor_paging_newest_first(api, hosting):
    ids = [MessageFactory(hosting=hosting).pk for _ in range(7)]
    seen = []
    url = email_path(hosting, "/messages?pageSize=3")
    pages = 0
    while url:
        body = api.get(url).json()
        seen += [item["id"] for item in body["results"]]
        url = body["next"] and body["next"].removeprefix("http://testserver/1.0")
        pages += 1
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


@pytest.mark.parametrize("cursor", ["garbage", "cD1hYmM=", "cD0lMDA=", "%C3%A9", "cD0xJTAw"])
def test_forged_cursor_is_400(api, hosting, cursor):
    MessageFactory(hosting=hosting)
    for suffix in ("/messages", "/events"):
        response = api.get(email_path(hosting, f"{suffix}?cursor={cursor}"))
        assert response.status_code == 400, (suffix, response.content)
        assert set(response.json()) == {"message"}


def test_events_paging(api, hosting, other_hosting):
    for _ in range(5):
        EventFactory(hosting=hosting, action="block", actor_kind="customer", to_state="blocked")
    EventFactory(hosting=other_hosting)
    first = api.get(email_path(hosting, "/events?pageSize=2")).json()
    assert len(first["results"]) == 2
    assert set(first["results"][0]) == {
        "id",
        "date",
        "action",
        "fromState",
        "toState",
        "reason",
        "actor",
        "actorLabel",
        "messageCount",
        "detail",
    }
    rest = []
    url = first["next"]
    while url:
        page = api.get(url.removeprefix("http://testserver/1.0")).json()
        rest += page["results"]
        url = page["next"]
    ids = [item["id"] for item in first["results"] + rest]
    assert ids == sorted(Event.objects.filter(hosting=hosting).values_list("id", flat=True), reverse=True)


def test_events_record_api_actions(api, hosting):
    api.post(email_path(hosting, "/request"), {"action": "BLOCK"})
    [event] = api.get(email_path(hosting, "/events")).json()["results"]
    assert (event["action"], event["actor"], event["toState"], event["reason"]) == (
        "block",
        "api",
        "blocked",
        "customer",
    )


def test_submitting_as_another_tenants_domain_is_a_400(api, hosting, settings):
    from tests.factories import HostingFactory

    HostingFactory(service_name="globex.com")
    settings.SENDER_POLICY = "own-domains"
    raw = "From: ceo@globex.com\r\nTo: client@example.org\r\nSubject: Virement\r\n\r\nUrgent.\r\n"
    response = api.post(email_path(hosting, "/messages"), submission(sender="ceo@globex.com", message=raw))
    assert response.status_code == 400
    assert "globex.com" in response.json()["message"]
    assert not Message.objects.filter(hosting=hosting).exists()


def test_a_message_submitted_through_the_api_leaves_with_its_trace_header(api, hosting, settings, tmp_path):
    from mailqueue.delivery import delivery_run_batch

    settings.SMTP_RELAY_URL = f"file://{tmp_path}"
    response = api.post(email_path(hosting, "/messages"), submission(), REMOTE_ADDR="198.51.100.23")
    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.door, message.client_address) == ("api", "198.51.100.23")

    assert delivery_run_batch().sent == 1
    [delivered] = list(tmp_path.glob("*.eml"))
    trace = delivered.read_bytes().split(b"\r\n")[2:5]  # after the file relay's two envelope lines
    assert trace[0] == f"Received: from [198.51.100.23] (authenticated as {hosting.service_name})".encode()
    assert trace[1].startswith(b"\tby portal.localhost (portal API door) with HTTP id ")
