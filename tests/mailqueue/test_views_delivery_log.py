"""The portal's « Suivi des envois » (SPEC §10.3): the delivery log of a hosting, filtered and paged
by key, its actions on a selection or a row (delete held or queued, retry deferred now), and one
message's page — as a customer sees them (English, the source language), for their hosting only."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone, translation

from mailqueue.blocking import mail_service_block
from mailqueue.message_log import PAGE_SIZE
from mailqueue.models import Action, ActorKind, Event, Message, MessageStatus, RecipientStatus
from mailqueue.state import Actor
from tests.factories import MessageFactory
from tests.portal.pages import dom, flash_messages, text

pytestmark = pytest.mark.django_db


def log_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/messages/"


def message_url(message) -> str:
    return f"/hostings/{message.hosting.service_name}/emails/messages/{message.pk}/"


def shown(value, format_name="SHORT_DATETIME_FORMAT") -> str:
    with translation.override("en"):
        return formats.date_format(timezone.localtime(value), format_name)


def message(hosting, status, *, minutes_ago=0, **fields):
    return MessageFactory(
        hosting=hosting, status=status, created_at=timezone.now() - datetime.timedelta(minutes=minutes_ago), **fields
    )


def rows(response) -> list[dict]:
    """The log's rows: the message's id and status, each cell's text by its column's label."""
    table = dom(response).find("table", id="log")
    found = []
    for row in table.find("tbody").find_all("tr"):
        if "data-message" not in row.attrs:
            continue
        cells = {cell.attrs["data-label"]: cell.text for cell in row.find_all("td") if "data-label" in cell.attrs}
        found.append({"pk": int(row.attrs["data-message"]), "status": row.attrs["data-status"], **cells})
    return found


def pks(response) -> list[int]:
    return [row["pk"] for row in rows(response)]


def next_link(response) -> str | None:
    link = dom(response).find("a", rel="next")
    return link.attrs["href"] if link else None


def statuses(hosting) -> dict[int, str]:
    return dict(Message.objects.filter(hosting=hosting).values_list("pk", "status"))


def newest_first(hosting, **filters) -> list[int]:
    return list(
        Message.objects.filter(hosting=hosting, **filters).order_by("-created_at", "-id").values_list("pk", flat=True)
    )


# --- what the page shows ----------------------------------------------------------------------------


def test_the_log_lists_the_hostings_messages_newest_first_without_their_content(owner, stranger):
    _user, hosting, client = owner
    now = timezone.now()
    sent = message(
        hosting,
        MessageStatus.SENT,
        minutes_ago=30,
        subject="Your invoice",
        sender="shop@acme.example",
        raw=b"Subject: Your invoice\r\n\r\nThe secret body of the invoice\r\n",
        recipients=[
            {"address": "ann@example.org", "status": RecipientStatus.SENT, "code": 250, "reply": "2.0.0 Ok"},
            {"address": "bob@example.org", "status": RecipientStatus.FAILED, "code": 550, "reply": "5.1.1 Unknown"},
        ],
        attempts=1,
    )
    held = message(hosting, MessageStatus.HELD, minutes_ago=20, subject="Held one")
    deferred = message(
        hosting, MessageStatus.DEFERRED, minutes_ago=10, next_attempt_at=now + datetime.timedelta(minutes=7)
    )
    queued = message(hosting, MessageStatus.QUEUED, next_attempt_at=now - datetime.timedelta(seconds=1))
    message(stranger[1], MessageStatus.HELD, subject="The stranger's message")

    response = client.get(log_url(hosting))

    assert response.status_code == 200
    assert dom(response).find("h1").text == "Delivery log"
    assert pks(response) == [queued.pk, deferred.pk, held.pk, sent.pk]
    by_pk = {row["pk"]: row for row in rows(response)}
    assert by_pk[sent.pk] == {
        "pk": sent.pk,
        "status": "sent",
        "Received": shown(sent.created_at),
        "Sender": "shop@acme.example",
        "Recipients": "ann@example.org sent bob@example.org failed",
        "Subject": "Your invoice",
        "Status": "sent",
        "Attempts": "1",
        "Next attempt or expiry": "—",
    }
    assert by_pk[held.pk]["Next attempt or expiry"] == f"expires {shown(held.held_until)}"
    assert by_pk[deferred.pk]["Next attempt or expiry"] == f"next attempt {shown(deferred.next_attempt_at)}"
    assert by_pk[queued.pk]["Next attempt or expiry"] == "as soon as the hourly limit allows"
    page = text(response)
    assert "The secret body" not in page
    assert "The stranger's message" not in page
    assert dom(response).find("a", href=message_url(sent)).text == "Your invoice"


def test_a_row_lists_three_recipients_and_links_to_the_others(owner):
    _user, hosting, client = owner
    recipients = [
        {"address": f"r{number}@example.org", "status": RecipientStatus.PENDING, "code": None, "reply": ""}
        for number in range(5)
    ]
    many = message(hosting, MessageStatus.QUEUED, recipients=recipients, recipient_count=5)

    row = rows(client.get(log_url(hosting)))[0]

    assert row["Recipients"] == ("r0@example.org pending r1@example.org pending r2@example.org pending and 2 more")
    assert many.pk == row["pk"]


def test_only_messages_that_can_be_acted_on_have_a_checkbox_and_buttons(owner):
    _user, hosting, client = owner
    kinds = {status: message(hosting, status) for status in MessageStatus}

    page = dom(client.get(log_url(hosting)))

    boxes = {int(box.attrs["value"]) for box in page.find_all("input", type="checkbox", name="message")}
    assert boxes == {kinds[s].pk for s in (MessageStatus.HELD, MessageStatus.QUEUED, MessageStatus.DEFERRED)}
    deletes = {int(button.attrs["value"]) for button in page.find_all("button", name="delete")}
    retries = {int(button.attrs["value"]) for button in page.find_all("button", name="retry")}
    assert deletes == {kinds[MessageStatus.HELD].pk, kinds[MessageStatus.QUEUED].pk}
    assert retries == {kinds[MessageStatus.DEFERRED].pk}


def test_a_page_with_nothing_to_act_on_has_no_selection_buttons(owner):
    _user, hosting, client = owner
    message(hosting, MessageStatus.SENT)
    message(hosting, MessageStatus.FAILED)

    page = dom(client.get(log_url(hosting)))

    assert page.find("input", type="checkbox", name="message") is None
    assert page.find("button", name="action") is None
    message(hosting, MessageStatus.HELD)
    buttons = dom(client.get(log_url(hosting))).find_all("button", name="action")
    assert [button.attrs["value"] for button in buttons] == ["delete"]  # no deferred e-mail to retry here


def test_the_scripts_email_page_links_to_the_log(owner):
    _user, hosting, client = owner

    link = dom(client.get(f"/hostings/{hosting.service_name}/emails/")).find("a", href=log_url(hosting))

    assert link is not None and link.text == "Delivery log"


def test_a_visitor_must_log_in_first(owner):
    _user, hosting, _client = owner
    held = message(hosting, MessageStatus.HELD)

    for url in (log_url(hosting), message_url(held)):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
        response = Client().post(url, {"delete": held.pk, "action": "delete"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert Message.objects.filter(pk=held.pk).exists()


# --- filters ------------------------------------------------------------------------------------------


def test_the_log_is_filtered_by_status_recipient_sender_subject_and_days(owner):
    _user, hosting, client = owner
    held = message(hosting, MessageStatus.HELD, subject="Order 1234 confirmed", minutes_ago=1)
    deferred = message(
        hosting,
        MessageStatus.DEFERRED,
        subject="Password reset",
        sender="noreply@acme.example",
        recipients=[{"address": "Jean.Dupont@Webmail.example", "status": "pending", "code": None, "reply": ""}],
    )
    sent = message(hosting, MessageStatus.SENT, subject="Order 99 shipped", minutes_ago=3 * 24 * 60)
    url = log_url(hosting)

    assert pks(client.get(url, {"status": ["held", "deferred"]})) == [deferred.pk, held.pk]
    assert pks(client.get(url, {"status": "sent"})) == [sent.pk]
    assert pks(client.get(url, {"recipient": "jean.dupont@webmail"})) == [deferred.pk]
    assert pks(client.get(url, {"sender": "NOREPLY"})) == [deferred.pk]
    assert pks(client.get(url, {"subject": "order"})) == [held.pk, sent.pk]
    two_days_ago = (timezone.localdate() - datetime.timedelta(days=2)).isoformat()
    assert pks(client.get(url, {"since": two_days_ago})) == [deferred.pk, held.pk]
    assert pks(client.get(url, {"until": two_days_ago})) == [sent.pk]
    response = client.get(url, {"subject": "nothing like it"})
    assert pks(response) == [] and "No e-mail matches these filters." in text(response)

    form = dom(client.get(url, {"status": "deferred", "subject": "Password"})).find("form", id="log-filters")
    checked = [box.attrs["value"] for box in form.find_all("input", name="status") if "checked" in box.attrs]
    assert checked == ["deferred"]
    assert form.find("input", name="subject").attrs["value"] == "Password"


@pytest.mark.parametrize(
    "query",
    [{"status": "bogus"}, {"since": "yesterday"}, {"until": "2025-13-45"}],
    ids=["status", "since", "until"],
)
def test_a_bad_filter_says_why_and_lists_nothing(owner, query):
    _user, hosting, client = owner
    message(hosting, MessageStatus.HELD)

    response = client.get(log_url(hosting), query)

    assert response.status_code == 400
    assert pks(response) == []
    assert dom(response).find("ul", role="alert") is not None


# --- pages by key -----------------------------------------------------------------------------------


def many(hosting, count, *, status=MessageStatus.SENT, start=None, step=datetime.timedelta(seconds=1)):
    """`count` messages, one `step` back from `start` each (number 0 the newest)."""
    start = start or timezone.now()
    Message.objects.bulk_create(
        (
            Message(
                hosting=hosting,
                message_id=f"<bulk-{status}-{number}@test.example>",
                recipients=[{"address": f"r{number}@example.org", "status": "pending", "code": None, "reply": ""}],
                recipient_count=1,
                subject=f"Bulk {number}",
                size=100,
                status=status,
                created_at=start - number * step,
            )
            for number in range(count)
        ),
        batch_size=2000,
    )


def test_pages_follow_one_another_by_key_keeping_the_filters(owner):
    _user, hosting, client = owner
    many(hosting, 2 * PAGE_SIZE + 7, status=MessageStatus.FAILED)
    many(hosting, 30, status=MessageStatus.SENT)
    # Two messages of the same instant on the edge of a page: the id decides, none is lost or repeated.
    ordered = newest_first(hosting, status=MessageStatus.FAILED)
    edge = Message.objects.get(pk=ordered[PAGE_SIZE])
    Message.objects.filter(pk=ordered[PAGE_SIZE - 1]).update(created_at=edge.created_at)

    seen, url, pages = [], f"{log_url(hosting)}?status=failed", 0
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        sql = " ".join(query["sql"].upper() for query in captured)
        assert "COUNT(" not in sql and "OFFSET" not in sql
        assert {row["status"] for row in rows(response)} == {"failed"}
        seen += pks(response)
        url, pages = next_link(response), pages + 1
        if url:
            assert parse_qs(urlsplit(url).query)["status"] == ["failed"]
        if pages > 1:
            first = dom(response).find("a", id="first-page")
            assert first.text == "First page" and first.attrs["href"] == f"{log_url(hosting)}?status=failed"

    assert pages == 3
    assert seen == newest_first(hosting, status=MessageStatus.FAILED)
    assert len(set(seen)) == 2 * PAGE_SIZE + 7


@pytest.mark.parametrize("cursor", ["x", "MjAyNS0wMS0wMQ", "!!", "9" * 3000])
def test_a_damaged_page_link_shows_the_first_page(owner, cursor):
    _user, hosting, client = owner
    many(hosting, 3)

    response = client.get(log_url(hosting), {"after": cursor})

    assert response.status_code == 200
    assert pks(response) == newest_first(hosting)
    assert dom(response).find("a", id="first-page") is None


def test_the_log_costs_the_same_few_queries_on_every_page(owner, django_assert_max_num_queries):
    _user, hosting, client = owner
    client.get(log_url(hosting))  # the URLconf and the session, loaded once
    with CaptureQueriesContext(connection) as empty:
        client.get(log_url(hosting))
    many(hosting, 5_000, status=MessageStatus.SENT)
    many(hosting, 1_000, status=MessageStatus.FAILED, start=timezone.now() - datetime.timedelta(days=1))

    # session, user, hosting, one page of messages (one more row than shown: is there a next page?)
    with django_assert_max_num_queries(4):
        first = client.get(log_url(hosting))
    assert len(rows(first)) == PAGE_SIZE
    deep = first
    for _page in range(20):
        deep = client.get(next_link(deep))
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as later:
        later_page = client.get(next_link(deep))
    assert len(rows(later_page)) == PAGE_SIZE
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as filtered:
        client.get(log_url(hosting), {"status": "failed", "recipient": "r99@", "since": "2020-01-01"})
    assert len(empty) == len(later) == len(filtered)


# --- actions on a selection and on a row ----------------------------------------------------------


def test_two_selected_messages_are_deleted_and_the_page_comes_back_with_its_filters(owner):
    user, hosting, client = owner
    first, second, kept = (message(hosting, MessageStatus.HELD, minutes_ago=minutes) for minutes in (1, 2, 3))
    queued = message(hosting, MessageStatus.QUEUED)
    query = "status=held&status=queued&subject=e&after=abc"

    response = client.post(f"{log_url(hosting)}?{query}", {"action": "delete", "message": [first.pk, second.pk]})

    assert response.status_code == 302
    assert response["Location"] == f"{log_url(hosting)}?{query}"
    assert statuses(hosting) == {kept.pk: "held", queued.pk: "queued"}
    event = Event.objects.get(hosting=hosting)
    assert (event.action, event.actor_kind, event.actor_user, event.message_count) == (
        Action.DELETE_MESSAGES,
        ActorKind.CUSTOMER,
        user,
        2,
    )
    assert flash_messages(client.get(response["Location"])) == ["2 e-mails deleted."]


def test_a_selection_with_messages_that_cannot_be_deleted_says_so(owner):
    _user, hosting, client = owner
    held = message(hosting, MessageStatus.HELD)
    sent = message(hosting, MessageStatus.SENT)
    deferred = message(hosting, MessageStatus.DEFERRED)

    response = client.post(log_url(hosting), {"action": "delete", "message": [held.pk, sent.pk, deferred.pk]})

    assert statuses(hosting) == {sent.pk: "sent", deferred.pk: "deferred"}
    assert flash_messages(client.get(response["Location"])) == [
        "1 e-mail deleted.",
        "2 e-mails were left as they were: only held or queued e-mails can be deleted.",
    ]
    client.post(log_url(hosting), {"action": "delete", "message": [sent.pk]})
    assert flash_messages(client.get(log_url(hosting))) == [
        "1 e-mail was left as it was: only held or queued e-mails can be deleted."
    ]
    assert Event.objects.filter(hosting=hosting).count() == 1


def test_a_rows_button_acts_on_its_message_only(owner):
    _user, hosting, client = owner
    target, ticked = message(hosting, MessageStatus.QUEUED), message(hosting, MessageStatus.HELD)

    client.post(log_url(hosting), {"delete": target.pk, "message": [ticked.pk]})

    assert statuses(hosting) == {ticked.pk: "held"}


def test_a_deferred_message_is_retried_now(owner):
    user, hosting, client = owner
    later = timezone.now() + datetime.timedelta(hours=2)
    deferred = message(hosting, MessageStatus.DEFERRED, next_attempt_at=later, attempts=3)
    other = message(hosting, MessageStatus.DEFERRED, next_attempt_at=later)

    before = timezone.now()
    response = client.post(f"{log_url(hosting)}?status=deferred", {"retry": deferred.pk})

    assert response["Location"] == f"{log_url(hosting)}?status=deferred"
    deferred.refresh_from_db()
    assert deferred.status == MessageStatus.QUEUED
    assert before <= deferred.next_attempt_at <= timezone.now()
    assert deferred.attempts == 3
    assert Message.objects.get(pk=other.pk).status == MessageStatus.DEFERRED
    event = Event.objects.get(hosting=hosting)
    assert (event.action, event.actor_user, event.message_count) == (Action.RETRY_MESSAGES, user, 1)
    assert flash_messages(client.get(response["Location"])) == ["1 e-mail put back in delivery now."]


def test_a_retry_on_a_blocked_service_is_refused_and_changes_nothing(owner):
    user, hosting, client = owner
    mail_service_block(hosting=hosting, actor=Actor.customer(user))
    deferred = message(hosting, MessageStatus.DEFERRED)  # e.g. one left by a worker as the block came
    events = Event.objects.filter(hosting=hosting).count()

    response = client.post(log_url(hosting), {"action": "retry", "message": [deferred.pk]})

    assert statuses(hosting) == {deferred.pk: "deferred"}
    assert Event.objects.filter(hosting=hosting).count() == events
    assert flash_messages(client.get(response["Location"])) == ["Sending is blocked: unblock it to retry the e-mails."]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"action": "delete"}, "Select at least one e-mail."),
        ({"action": "delete", "message": ["x", "-4", "0", str(2**70)]}, "Select at least one e-mail."),
        ({"action": "explode", "message": ["1"]}, "Choose an action."),
        ({}, "Choose an action."),
    ],
)
def test_a_post_without_a_usable_selection_says_why_and_changes_nothing(owner, data, error):
    _user, hosting, client = owner
    held = message(hosting, MessageStatus.HELD)

    response = client.post(log_url(hosting), data)

    assert response.status_code == 302
    assert statuses(hosting) == {held.pk: "held"}
    assert not Event.objects.filter(hosting=hosting).exists()
    assert flash_messages(client.get(response["Location"])) == [error]


def test_a_post_without_the_csrf_token_is_refused(owner):
    user, hosting, _client = owner
    held = message(hosting, MessageStatus.HELD)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    for url, data in ((log_url(hosting), {"delete": held.pk}), (message_url(held), {"action": "delete"})):
        assert client.post(url, data).status_code == 403

    assert statuses(hosting) == {held.pk: "held"}


# --- another customer's hosting or messages ----------------------------------------------------------


def test_another_customers_hosting_and_messages_are_a_404_and_change_nothing(owner, stranger):
    _user, _hosting, client = owner
    _other_user, victim, _other_client = stranger
    held = message(victim, MessageStatus.HELD, subject="Victim's secret subject")
    deferred = message(victim, MessageStatus.DEFERRED)
    before = statuses(victim)

    for url in (log_url(victim), message_url(held), message_url(deferred)):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Victim's secret subject" not in response.content.decode()
    for data in ({"action": "delete", "message": [held.pk]}, {"delete": held.pk}, {"retry": deferred.pk}):
        assert client.post(log_url(victim), data).status_code == 404
    for target, action in ((held, "delete"), (deferred, "retry")):
        assert client.post(message_url(target), {"action": action}).status_code == 404

    assert statuses(victim) == before
    assert not Event.objects.filter(hosting=victim).exists()


def test_another_customers_message_ids_on_ones_own_hosting_change_nothing(owner, stranger):
    _user, hosting, client = owner
    victim = stranger[1]
    held = message(victim, MessageStatus.HELD)
    deferred = message(victim, MessageStatus.DEFERRED)
    before = statuses(victim)

    # The message pages of one's own hosting do not know the other hosting's messages.
    for target, action in ((held, "delete"), (deferred, "retry")):
        url = f"/hostings/{hosting.service_name}/emails/messages/{target.pk}/"
        assert client.get(url).status_code == 404
        assert client.post(url, {"action": action}).status_code == 404
    # A forged selection on one's own log: the other hosting's messages are not found there.
    client.post(log_url(hosting), {"action": "delete", "message": [held.pk]})
    client.post(log_url(hosting), {"retry": deferred.pk})

    assert statuses(victim) == before
    assert not Event.objects.filter(hosting=victim).exists()
    assert not Event.objects.filter(hosting=hosting).exists()


# --- one message's page ------------------------------------------------------------------------------


def test_a_messages_page_shows_each_recipient_and_never_the_content(owner):
    _user, hosting, client = owner
    bounced_at = timezone.now() - datetime.timedelta(minutes=5)
    sent = message(
        hosting,
        MessageStatus.SENT,
        subject="Welcome",
        message_id="<welcome-1@acme.example>",
        raw=b"Subject: Welcome\r\n\r\nThe private welcome text\r\n",
        size=2048,
        attempts=2,
        completed_at=timezone.now(),
        recipients=[
            {"address": "ok@example.org", "status": "sent", "code": 250, "reply": "2.0.0 Ok: queued as 4F2"},
            {
                "address": "gone@example.org",
                "status": "failed",
                "code": 250,
                "reply": "2.0.0 Ok",
                "bounce": {"at": bounced_at.isoformat(), "status": "5.1.1", "diagnostic": "550 5.1.1 No such user"},
            },
            {
                "address": "slow@example.org",
                "status": "sent",
                "code": 250,
                "reply": "2.0.0 Ok",
                "delayed": {"at": bounced_at.isoformat(), "status": "4.4.7", "diagnostic": "Still trying"},
            },
        ],
        recipient_count=3,
    )

    response = client.get(message_url(sent))

    assert response.status_code == 200
    page = dom(response)
    assert page.find("h1").text == "Welcome"
    facts = {dt.text: dd.text for dt, dd in zip(page.find_all("dt"), page.find_all("dd"), strict=True)}
    assert facts["Status:"] == "sent"
    assert facts["Message-ID:"] == "<welcome-1@acme.example>"
    assert facts["Size:"] == "2.0\xa0KB"
    assert facts["Attempts:"] == "2"
    table = page.find("table", id="recipients").find("tbody")
    recipients = [[cell.text for cell in row.find_all("td")] for row in table.find_all("tr")]
    assert recipients[0] == ["ok@example.org", "sent", "250 2.0.0 Ok: queued as 4F2"]
    assert recipients[1][:2] == ["gone@example.org", "failed"]
    assert f"Bounced on {shown(bounced_at)} (5.1.1): 550 5.1.1 No such user" in recipients[1][2]
    assert f"Delayed, reported on {shown(bounced_at)} (4.4.7): Still trying" in recipients[2][2]
    assert "The private welcome text" not in response.content.decode()
    assert page.find("button", name="action") is None  # nothing to do with a sent message


@pytest.mark.parametrize(
    ("status", "buttons"),
    [
        (MessageStatus.HELD, ["delete"]),
        (MessageStatus.QUEUED, ["delete"]),
        (MessageStatus.DEFERRED, ["retry"]),
        (MessageStatus.SENDING, []),
        (MessageStatus.FAILED, []),
    ],
)
def test_a_messages_page_offers_the_actions_of_its_status(owner, status, buttons):
    _user, hosting, client = owner
    target = message(hosting, status)

    page = dom(client.get(message_url(target)))

    assert [button.attrs["value"] for button in page.find_all("button", name="action")] == buttons


def test_a_held_messages_page_says_when_it_expires_and_a_deferred_one_when_it_is_tried_again(owner):
    _user, hosting, client = owner
    held = message(hosting, MessageStatus.HELD)
    later = timezone.now() + datetime.timedelta(minutes=30)
    deferred = message(hosting, MessageStatus.DEFERRED, next_attempt_at=later)

    def due(target):
        page = dom(client.get(message_url(target)))
        return {dt.text: dd.text for dt, dd in zip(page.find_all("dt"), page.find_all("dd"), strict=True)}[
            "Next attempt or expiry:"
        ]

    assert due(held) == f"expires {shown(held.held_until)}"
    gives_up = deferred.created_at + datetime.timedelta(seconds=settings.RETRY_MAX_AGE_SECONDS)
    assert due(deferred) == (f"next attempt {shown(later)} (put in error if still not delivered on {shown(gives_up)})")


def test_deleting_from_a_messages_page_leads_back_to_the_log(owner):
    _user, hosting, client = owner
    held = message(hosting, MessageStatus.HELD)

    response = client.post(message_url(held), {"action": "delete"})

    assert response["Location"] == log_url(hosting)
    assert not Message.objects.filter(pk=held.pk).exists()
    assert flash_messages(client.get(response["Location"])) == ["1 e-mail deleted."]
    assert client.get(message_url(held)).status_code == 404


def test_retrying_from_a_messages_page_stays_on_it(owner):
    _user, hosting, client = owner
    deferred = message(hosting, MessageStatus.DEFERRED, next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    sent = message(hosting, MessageStatus.SENT)

    response = client.post(message_url(deferred), {"action": "retry"})

    assert response["Location"] == message_url(deferred)
    assert Message.objects.get(pk=deferred.pk).status == MessageStatus.QUEUED
    assert flash_messages(client.get(response["Location"])) == ["1 e-mail put back in delivery now."]
    response = client.post(message_url(sent), {"action": "delete"}, follow=True)
    assert flash_messages(response) == ["1 e-mail was left as it was: only held or queued e-mails can be deleted."]
    assert Message.objects.get(pk=sent.pk).status == MessageStatus.SENT
