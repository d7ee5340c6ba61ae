"""The delivery log in the API (SPEC §10.3): GET …/email/messages with the log's filters and keyset
pages, DELETE …/messages/{id}, POST …/messages/{id}/retry, and the CSV exports."""

import csv
import datetime
import io

import pytest
from django.utils import timezone

from api.services import api_credentials_create
from mailqueue.blocking import mail_service_block
from mailqueue.models import DeliveryError, Event, Message, MessageStatus
from mailqueue.state import Actor
from tests.api.conftest import READ_ONLY_HOSTINGS, ApiClient, email_path
from tests.factories import DeliveryErrorFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def received(days_ago: int, **fields) -> Message:
    when = timezone.now() - datetime.timedelta(days=days_ago)
    return MessageFactory(created_at=when, **fields)


def rows_of(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


# --- filters ---------------------------------------------------------------------------------


def test_filters_by_recipient_sender_subject_and_several_statuses(api, hosting, other_hosting):
    order = MessageFactory(hosting=hosting, subject="Your order 42", status=MessageStatus.SENT)
    held = MessageFactory(
        hosting=hosting,
        status=MessageStatus.HELD,
        sender="news@shop.example",
        recipients=[{"address": "Anna@Example.org", "status": "pending", "code": None, "reply": ""}],
    )
    deferred = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED)
    MessageFactory(hosting=other_hosting, subject="Your order 42", sender="news@shop.example")
    assert ids(api.get(email_path(hosting, "/messages?subject=order"))) == [order.pk]
    assert ids(api.get(email_path(hosting, "/messages?recipient=anna@example"))) == [held.pk]
    assert ids(api.get(email_path(hosting, "/messages?sender=NEWS@"))) == [held.pk]
    both = api.get(email_path(hosting, "/messages?status=held&status=deferred"))
    assert ids(both) == [deferred.pk, held.pk]
    assert ids(api.get(email_path(hosting, "/messages?status=held"))) == [held.pk]  # as before: one status


def test_filters_by_local_days(api, hosting):
    old = received(10, hosting=hosting)
    middle = received(5, hosting=hosting)
    today = received(0, hosting=hosting)
    day = (timezone.localdate() - datetime.timedelta(days=5)).isoformat()
    assert ids(api.get(email_path(hosting, f"/messages?since={day}"))) == [today.pk, middle.pk]
    assert ids(api.get(email_path(hosting, f"/messages?until={day}"))) == [middle.pk, old.pk]
    assert ids(api.get(email_path(hosting, f"/messages?since={day}&until={day}"))) == [middle.pk]


@pytest.mark.parametrize(
    "query",
    [
        "status=nonsense",
        "status=held&status=nonsense",
        "since=2026-13-01",
        "until=yesterday",
        "since=0001-01-01",
        "until=9999-12-31",
        "sender=" + "x" * 321,
    ],
)
def test_a_bad_filter_is_400_with_a_message(api, hosting, query):
    MessageFactory(hosting=hosting)
    for suffix in ("/messages", "/messages/export"):
        response = api.get(email_path(hosting, f"{suffix}?{query}"))
        assert response.status_code == 400, (suffix, response.content)
        assert set(response.json()) == {"message"}
        assert response["Content-Type"] == "application/json"


# --- keyset pages ----------------------------------------------------------------------------


def test_pages_forward_then_back_with_the_same_envelope(api, hosting):
    messages = [received(10 - n, hosting=hosting, status=MessageStatus.SENT) for n in range(7)]
    MessageFactory(hosting=hosting, status=MessageStatus.FAILED)  # filtered out
    newest_first = [message.pk for message in reversed(messages)]
    first = api.get(email_path(hosting, "/messages?status=sent&pageSize=3")).json()
    assert set(first) == {"next", "previous", "results"}
    assert first["previous"] is None
    pages, url = [first], first["next"]
    while url:
        assert "status=sent" in url and "pageSize=3" in url  # the filters and the size follow the links
        pages.append(api.get(url.removeprefix("http://testserver/1.0")).json())
        url = pages[-1]["next"]
    assert [[item["id"] for item in page["results"]] for page in pages] == [
        newest_first[:3],
        newest_first[3:6],
        newest_first[6:],
    ]
    back = api.get(pages[2]["previous"].removeprefix("http://testserver/1.0")).json()
    assert [item["id"] for item in back["results"]] == newest_first[3:6]
    first_again = api.get(back["previous"].removeprefix("http://testserver/1.0")).json()
    assert [item["id"] for item in first_again["results"]] == newest_first[:3]
    assert first_again["previous"] is None
    assert first_again["next"]


def test_a_page_costs_the_same_queries_first_or_later(api, hosting, django_assert_max_num_queries):
    for n in range(30):
        received(n, hosting=hosting)
    url = email_path(hosting, "/messages?pageSize=5&status=queued&subject=e")
    for _ in range(4):
        with django_assert_max_num_queries(4):  # the credential, the hosting, the page (+ the key's last use)
            body = api.get(url).json()
        url = body["next"].removeprefix("http://testserver/1.0")


@pytest.mark.parametrize(
    "cursor", ["b.", "b.garbage", "MjAyNi0wMS0wMVQwMDowMDowMHw1", "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHwx"]
)
def test_a_forged_cursor_is_400(api, hosting, cursor):
    MessageFactory(hosting=hosting)
    response = api.get(email_path(hosting, f"/messages?cursor={cursor}"))
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


# --- delete and retry ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [MessageStatus.HELD, MessageStatus.QUEUED])
def test_delete_a_held_or_queued_message(api, hosting, status):
    message = MessageFactory(hosting=hosting, status=status)
    response = api.call("DELETE", email_path(hosting, f"/messages/{message.pk}"))
    assert response.status_code == 204
    assert not Message.objects.filter(pk=message.pk).exists()
    event = Event.objects.get(hosting=hosting, action="delete_messages")
    assert (event.actor_kind, event.message_count, event.detail) == ("api", 1, str(message.pk))
    assert event.actor_label.startswith("api:")


@pytest.mark.parametrize("status", [MessageStatus.DEFERRED, MessageStatus.SENDING, MessageStatus.SENT])
def test_delete_in_another_status_is_409_and_changes_nothing(api, hosting, status):
    message = MessageFactory(hosting=hosting, status=status)
    response = api.call("DELETE", email_path(hosting, f"/messages/{message.pk}"), auth="bearer")
    assert response.status_code == 409
    assert status in response.json()["message"]
    assert Message.objects.get(pk=message.pk).status == status
    assert not Event.objects.filter(hosting=hosting).exists()


def test_retry_a_deferred_message_now(api, hosting):
    later = timezone.now() + datetime.timedelta(hours=2)
    message = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED, next_attempt_at=later, attempts=2)
    response = api.post(email_path(hosting, f"/messages/{message.pk}/retry"))
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["status"]) == (message.pk, "queued")
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at <= timezone.now()
    assert Event.objects.get(hosting=hosting, action="retry_messages").actor_kind == "api"


@pytest.mark.parametrize("status", [MessageStatus.QUEUED, MessageStatus.HELD, MessageStatus.FAILED])
def test_retry_in_another_status_is_409(api, hosting, status):
    message = MessageFactory(hosting=hosting, status=status)
    response = api.post(email_path(hosting, f"/messages/{message.pk}/retry"))
    assert response.status_code == 409
    assert status in response.json()["message"]
    assert Message.objects.get(pk=message.pk).status == status


def test_retry_while_blocked_is_409_with_the_states_reason(api, hosting):
    message = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED)
    mail_service_block(hosting=hosting, actor=Actor.customer(UserFactory()))
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.DEFERRED)  # one the block did not hold
    response = api.post(email_path(hosting, f"/messages/{message.pk}/retry"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 409
    assert response.json()["message"] == "Sending is blocked: unblock it to retry the e-mails."
    assert Message.objects.get(pk=message.pk).status == MessageStatus.DEFERRED


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_another_hostings_message_is_404_like_an_unknown_one(api, hosting, other_hosting, auth):
    foreign = MessageFactory(hosting=other_hosting, status=MessageStatus.DEFERRED)
    queued = MessageFactory(hosting=other_hosting, status=MessageStatus.QUEUED)
    for method, suffix in (("DELETE", ""), ("POST", "/retry")):
        for pk in (foreign.pk, queued.pk, 10**12, 2**70):
            response = api.call(method, email_path(hosting, f"/messages/{pk}{suffix}"), auth=auth)
            assert response.status_code == 404, (method, pk, response.content)
            assert set(response.json()) == {"message"}
    assert sorted(Message.objects.values_list("status", flat=True)) == ["deferred", "queued"]
    assert not Event.objects.exists()


# --- CSV exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_messages_export_streams_the_filtered_log(api, hosting, other_hosting, auth):
    received(3, hosting=hosting, subject="Old news", status=MessageStatus.SENT)
    MessageFactory(
        hosting=hosting,
        subject="=HYPERLINK(1)",
        status=MessageStatus.FAILED,
        recipients=[
            {"address": "a@example.org", "status": "failed", "code": 550, "reply": "5.1.1 unknown"},
            {"address": "b@example.org", "status": "sent", "code": 250, "reply": "OK"},
        ],
    )
    MessageFactory(hosting=other_hosting, subject="Not mine")
    response = api.get(email_path(hosting, f"/messages/export?since={timezone.localdate().isoformat()}"), auth=auth)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{hosting.service_name}-messages-')
    assert response["X-Ovh-Queryid"]
    rows = rows_of(response)
    assert [(row["subject"], row["recipient"], row["recipient_status"]) for row in rows] == [
        ("'=HYPERLINK(1)", "a@example.org", "failed"),
        ("'=HYPERLINK(1)", "b@example.org", "sent"),
    ]


def test_messages_export_answers_a_client_asking_for_csv(api, hosting):
    MessageFactory(hosting=hosting, subject="Hello")
    response = api.get(email_path(hosting, "/messages/export"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert [row["subject"] for row in rows_of(response)] == ["Hello"]
    refused = api.get(email_path(hosting, "/messages/export?status=nope"), HTTP_ACCEPT="text/csv")
    assert (refused.status_code, refused["Content-Type"]) == (400, "application/json")
    assert set(refused.json()) == {"message"}


def test_bounces_export_streams_the_errors_of_the_range(api, hosting, other_hosting):
    recent = DeliveryErrorFactory(hosting=hosting, recipient="gone@example.org", subject="Invoice")
    old = DeliveryErrorFactory(hosting=hosting, recipient="old@example.org")
    DeliveryError.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=20))
    DeliveryErrorFactory(hosting=other_hosting, recipient="theirs@example.org")
    since = (timezone.localdate() - datetime.timedelta(days=2)).isoformat()
    response = api.get(email_path(hosting, f"/bounces/export?since={since}&until="))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="{hosting.service_name}-errors-')
    rows = rows_of(response)
    assert [(row["recipient"], row["subject"], row["reply"]) for row in rows] == [
        (recent.recipient, "Invoice", recent.reply)
    ]
    everything = rows_of(api.get(email_path(hosting, "/bounces/export")))
    assert [row["recipient"] for row in everything] == ["gone@example.org", "old@example.org"]


@pytest.mark.parametrize("query", ["since=2026-02-30", "until=soon", "since=0001-01-01", "until=9999-12-31"])
def test_bounces_export_refuses_a_bad_day(api, hosting, query):
    response = api.get(email_path(hosting, f"/bounces/export?{query}"))
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


def test_exports_need_credentials_and_follow_access_rules(client, api, owner, hosting):
    for suffix in ("/messages/export", "/bounces/export"):
        anonymous = client.get("/1.0" + email_path(hosting, suffix))
        assert anonymous.status_code == 401
        assert set(anonymous.json()) == {"message"}
        forged = api.get(email_path(hosting, suffix), signature="$1$" + "0" * 40)
        assert forged.status_code == 400
        assert forged.json()["errorCode"] == "INVALID_SIGNATURE"
    bounces_only = [{"method": "GET", "path": "/hosting/web/*/email/bounces"}]
    reader = ApiClient(client, api_credentials_create(customer=owner[1], access_rules=bounces_only))
    assert reader.get(email_path(hosting, "/bounces")).status_code == 200
    for auth in ("sign", "bearer"):
        refused = reader.get(email_path(hosting, "/bounces/export"), auth=auth)
        assert (refused.status_code, refused.json()["errorCode"]) == (403, "NOT_GRANTED_CALL")


def test_read_only_rules_cannot_delete_or_retry(client, owner, hosting):
    message = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    reader = ApiClient(client, api_credentials_create(customer=owner[1], access_rules=READ_ONLY_HOSTINGS))
    assert reader.get(email_path(hosting, "/messages/export")).status_code == 200
    for method, suffix in (("DELETE", ""), ("POST", "/retry")):
        refused = reader.call(method, email_path(hosting, f"/messages/{message.pk}{suffix}"))
        assert (refused.status_code, refused.json()["errorCode"]) == (403, "NOT_GRANTED_CALL")
    assert Message.objects.get(pk=message.pk).status == MessageStatus.QUEUED


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_another_customers_exports_are_the_same_404_as_an_unknown_hostings(api, other_hosting, auth):
    MessageFactory(hosting=other_hosting, subject="Their secret")
    DeliveryErrorFactory(hosting=other_hosting, recipient="theirs@example.org")
    for suffix in ("/messages/export", "/bounces/export", "/messages?subject=secret"):
        foreign = api.get(f"/hosting/web/{other_hosting.service_name}/email{suffix}", auth=auth)
        unknown = api.get(f"/hosting/web/no-such-site.example/email{suffix}", auth=auth)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign["Content-Type"] == "application/json"
        assert b"secret" not in foreign.content and b"theirs" not in foreign.content
