"""The Scripts e-mail page's queue figures and short history, and the service's full history page
(SPEC §10.3): queued and deferred counts with the next attempt, this hour's use beside the day's,
the last Events (who, what, when, how many e-mails), every Event paged by key — for one's own
hosting only."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone, translation

from mailqueue import selectors, views
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.message_log import PAGE_SIZE
from mailqueue.models import Event, MailService, MessageStatus, RelayHandoff
from mailqueue.purge import mail_service_purge_request, purge_run
from mailqueue.state import Actor
from tests.factories import EventFactory, MembershipFactory, MessageFactory
from tests.portal.pages import dom, facts

pytestmark = pytest.mark.django_db


def emails_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/"


def history_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/history/"


def shown(value) -> str:
    with translation.override("en"):
        return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")


def event_lines(response, table_id: str) -> list[list[str]]:
    table = dom(response).find("table", id=table_id)
    return [[cell.text for cell in row.find_all("td")] for row in table.find("tbody").find_all("tr")]


# --- the queue on the Scripts e-mail page ---------------------------------------------------------------


def test_the_page_shows_queued_and_deferred_mail_with_the_next_attempt(owner, stranger):
    _user, hosting, client = owner
    now = timezone.now()
    for _ in range(3):
        MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    MessageFactory(hosting=hosting, status=MessageStatus.SENDING)  # claimed, not yet handed over
    soon, later = now + datetime.timedelta(minutes=4), now + datetime.timedelta(hours=1)
    MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED, next_attempt_at=later)
    MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED, next_attempt_at=soon)
    MessageFactory(hosting=hosting, status=MessageStatus.SENT)
    MessageFactory(hosting=stranger[1], status=MessageStatus.DEFERRED, next_attempt_at=now)

    shown_facts = facts(client.get(emails_url(hosting)))

    assert shown_facts["Queued e-mails:"] == "4 (waiting for delivery within the hourly limit)"
    assert shown_facts["Deferred e-mails:"] == f"2 — next attempt on {shown(soon)}"
    assert shown_facts["Held e-mails:"] == "none"


def test_an_empty_queue_says_none(owner):
    _user, hosting, client = owner

    shown_facts = facts(client.get(emails_url(hosting)))

    assert shown_facts["Queued e-mails:"] == "none"
    assert shown_facts["Deferred e-mails:"] == "none"


def test_this_hours_use_is_shown_beside_the_days_count(owner, stranger):
    _user, hosting, client = owner
    now = timezone.now()
    RelayHandoff.objects.bulk_create(
        [RelayHandoff(hosting=hosting, at=now - datetime.timedelta(minutes=minutes)) for minutes in range(37)]
    )
    RelayHandoff.objects.create(hosting=hosting, at=now - datetime.timedelta(minutes=61))  # out of the hour
    RelayHandoff.objects.create(hosting=stranger[1], at=now)

    response = client.get(emails_url(hosting))

    labels = [dt.text for dt in dom(response).find("dl", class_="facts").find_all("dt")]
    assert labels.index("Hourly limit:") == labels.index("E-mails sent today:") + 1
    assert facts(response)["Hourly limit:"] == "37 / 100 this hour"
    MailService.objects.filter(hosting=hosting).update(hourly_limit_override=2000)
    assert facts(client.get(emails_url(hosting)))["Hourly limit:"] == "37 / 2,000 this hour"  # English grouping


def test_counts_past_the_cap_say_so(owner, monkeypatch):
    _user, hosting, client = owner
    monkeypatch.setattr(selectors, "HELD_COUNT_CAP", 2)
    monkeypatch.setattr(views, "HELD_COUNT_CAP", 2)
    for _ in range(3):
        MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED)

    shown_facts = facts(client.get(emails_url(hosting)))

    assert shown_facts["Queued e-mails:"].startswith("2+ ")
    assert shown_facts["Deferred e-mails:"].startswith("1 — ")


# --- the short history ------------------------------------------------------------------------------


def test_the_page_shows_the_last_five_events_and_links_to_the_full_history(owner, stranger):
    user, hosting, client = owner
    customer = Actor.customer(user)
    for _ in range(2):
        MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=customer)
    mail_service_unblock(hosting=hosting, actor=Actor.operator(MembershipFactory().user), comment="Checked, fine")
    mail_service_block(hosting=hosting, actor=customer)
    for _ in range(3):
        MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    mail_service_purge_request(hosting=hosting, actor=customer)
    MailService.objects.filter(hosting=hosting).update(purge_due_at=timezone.now())
    purge_run(hosting_id=hosting.pk)
    EventFactory(hosting=stranger[1], action="block", actor_kind="customer", actor_label="stranger-user")
    events = list(Event.objects.filter(hosting=hosting).order_by("-created_at", "-id"))
    assert len(events) == 5

    response = client.get(emails_url(hosting))

    lines = event_lines(response, "recent-events")
    whom = user.get_username()
    assert [line[1:] for line in lines] == [
        ["system", "Purge completion — Purging → Active", "5 e-mails deleted"],
        [f"customer ({whom})", "Purge request — Blocked → Purging", "—"],
        [f"customer ({whom})", "Block — Active → Blocked (blocked by the customer)", "2 e-mails held"],
        [
            f"operator ({events[3].actor_label})",
            "Unblock — Blocked → Active Checked, fine",
            "2 e-mails put back in delivery",
        ],
        [f"customer ({whom})", "Block — Active → Blocked (blocked by the customer)", "2 e-mails held"],
    ]
    assert [line[0] for line in lines] == [shown(event.created_at) for event in events]
    assert "stranger-user" not in response.content.decode()
    link = dom(response).find("a", href=history_url(hosting))
    assert link is not None and link.text == "Full history"

    EventFactory(hosting=hosting, action="change_recipient", actor_kind="api", actor_label="my-script")
    lines = event_lines(client.get(emails_url(hosting)), "recent-events")
    assert len(lines) == 5 and lines[0][1] == "API (my-script)"


def test_a_service_without_events_says_so(owner):
    _user, hosting, client = owner

    assert event_lines(client.get(emails_url(hosting)), "recent-events") == [
        ["Nothing has happened to the service yet."]
    ]


@pytest.mark.parametrize(
    ("fields", "what", "count"),
    [
        (
            {"action": "expire", "message_count": 1, "detail": "held more than 72 h"},
            "Expiry of held e-mails",
            "1 held e-mail expired",
        ),
        (
            {"action": "delete_messages", "message_count": 2, "detail": "12, 13"},
            "Deletion of e-mails",
            "2 e-mails deleted",
        ),
        (
            {"action": "retry_messages", "message_count": 1, "detail": "14"},
            "Immediate retry of deferred e-mails",
            "1 e-mail retried",
        ),
        ({"action": "unsuppress", "message_count": 3}, "Suppressed address removal", "3 addresses removed"),
        (
            {"action": "unblock", "message_count": 0, "detail": "force", "from_state": "blocked", "to_state": "active"},
            "Unblock — Blocked → Active error tolerance doubled",
            "0 e-mails put back in delivery",
        ),
    ],
)
def test_each_event_says_what_it_did_to_how_many_e_mails(owner, fields, what, count):
    _user, hosting, client = owner
    EventFactory(hosting=hosting, actor_kind="system", actor_label="system", **fields)

    [line] = event_lines(client.get(history_url(hosting)), "history")

    assert line[1:] == ["system", what, count]


# --- the full history -------------------------------------------------------------------------------


def test_the_history_lists_every_event_newest_first_by_key(owner, stranger):
    _user, hosting, client = owner
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            hosting=hosting,
            action="change_recipient",
            actor_kind="customer",
            actor_label=f"user{number}",
            created_at=now - datetime.timedelta(minutes=number),
        )
        for number in range(2 * PAGE_SIZE + 3)
    )
    EventFactory(hosting=stranger[1], actor_label="stranger-user")

    seen, url, pages = [], history_url(hosting), 0
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        sql = " ".join(query["sql"].upper() for query in captured)
        assert "COUNT(" not in sql and "OFFSET" not in sql
        assert len(captured) == 4  # session, user, hosting, one page of events
        seen += [line[1] for line in event_lines(response, "history")]
        link = dom(response).find("a", rel="next")
        url, pages = (link.attrs["href"] if link else None), pages + 1
        if pages > 1:
            assert dom(response).find("a", id="first-page").attrs["href"] == history_url(hosting)

    assert pages == 3
    assert seen == [f"customer (user{number})" for number in range(2 * PAGE_SIZE + 3)]


def test_a_damaged_history_link_shows_the_first_page(owner):
    _user, hosting, client = owner
    EventFactory(hosting=hosting, actor_label="someone")

    response = client.get(history_url(hosting), {"after": "not-a-cursor"})

    assert response.status_code == 200
    assert len(event_lines(response, "history")) == 1
    assert dom(response).find("a", id="first-page") is None


def test_another_customers_history_is_a_404(owner, stranger):
    _user, _hosting, client = owner
    EventFactory(hosting=stranger[1], actor_label="stranger-user")

    response = client.get(history_url(stranger[1]))

    assert response.status_code == 404
    assert b"stranger-user" not in response.content
    assert client.post(history_url(stranger[1])).status_code == 404
