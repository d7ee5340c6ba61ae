"""The CSV exports of the portal (SPEC §10.3): the delivery log with its filters and the error list
of a date range, streamed (never built in memory), as attachments, for one's own hosting only."""

import csv
import datetime
import io

import pytest
from django.conf import settings
from django.utils import timezone

from mailqueue.models import DeliveryError, ErrorKind, Message, MessageStatus
from tests.factories import DeliveryErrorFactory, MessageFactory
from tests.portal.pages import dom, flash_messages

pytestmark = pytest.mark.django_db

ROWS = 3_000
LOG_HEADER = ["received", "message_id", "sender", "subject", "status", "recipient", "recipient_status", "reply"]
ERRORS_HEADER = ["date", "recipient", "reply", "subject", "origin", "permanent", "status"]


def export_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/messages/export.csv"


def errors_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/errors/export.csv"


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.streaming  # rows are written as they are read, never held in memory
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def bulk_messages(hosting, count, *, start, status=MessageStatus.SENT):
    Message.objects.bulk_create(
        (
            Message(
                hosting=hosting,
                message_id=f"<export-{status}-{number}@test.example>",
                sender="shop@acme.example",
                recipients=[
                    {"address": f"a{number}@example.org", "status": "sent", "code": 250, "reply": "2.0.0 Ok"},
                    {"address": f"b{number}@example.org", "status": "failed", "code": 550, "reply": "5.1.1 Unknown"},
                ],
                recipient_count=2,
                subject=f"Order {number}",
                size=100,
                status=status,
                created_at=start - datetime.timedelta(seconds=number),
            )
            for number in range(count)
        ),
        batch_size=1000,
    )


# --- the delivery log ----------------------------------------------------------------------------------


def test_the_log_is_exported_streamed_one_line_per_recipient(owner, stranger):
    _user, hosting, client = owner
    start = timezone.now() - datetime.timedelta(minutes=1)
    bulk_messages(hosting, ROWS, start=start)
    bulk_messages(stranger[1], 10, start=start)

    response = client.get(export_url(hosting))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().strftime("%Y%m%d")
    assert response["Content-Disposition"] == f'attachment; filename="{hosting.service_name}-messages-{today}.csv"'
    assert "no-store" in response["Cache-Control"]
    lines = read_csv(response)
    assert lines[0] == LOG_HEADER
    assert len(lines) == 1 + 2 * ROWS
    first_at = timezone.localtime(start).isoformat()
    message_columns = [first_at, "<export-sent-0@test.example>", "shop@acme.example", "Order 0", "sent"]
    assert lines[1] == [*message_columns, "a0@example.org", "sent", "2.0.0 Ok"]
    assert lines[2][5:] == ["b0@example.org", "failed", "5.1.1 Unknown"]
    assert [line[1] for line in lines[1::2]] == [f"<export-sent-{number}@test.example>" for number in range(ROWS)]


def test_the_export_keeps_the_filters_of_the_log(owner):
    _user, hosting, client = owner
    start = timezone.now() - datetime.timedelta(minutes=1)
    bulk_messages(hosting, 40, start=start, status=MessageStatus.SENT)
    bulk_messages(hosting, 25, start=start, status=MessageStatus.FAILED)

    lines = read_csv(client.get(export_url(hosting), {"status": "failed", "subject": "Order 1", "after": "ignored"}))

    subjects = sorted({line[3] for line in lines[1:]})
    assert subjects == sorted(f"Order {n}" for n in range(25) if str(n).startswith("1"))
    assert {line[4] for line in lines[1:]} == {"failed"}


def test_the_log_page_links_to_the_export_of_its_filters(owner):
    _user, hosting, client = owner

    page = dom(client.get(f"/hostings/{hosting.service_name}/emails/messages/", {"status": "held", "after": "x"}))

    assert page.find("a", id="log-export").attrs["href"] == f"{export_url(hosting)}?status=held"


def test_without_a_start_date_the_export_covers_the_retention_period(owner):
    _user, hosting, client = owner
    today = timezone.localdate()
    first_day = today - datetime.timedelta(days=settings.RETENTION_DAYS)
    at_noon = timezone.make_aware(datetime.datetime.combine(first_day, datetime.time(12)))
    inside = MessageFactory(hosting=hosting, status=MessageStatus.SENT, created_at=at_noon)
    MessageFactory(hosting=hosting, status=MessageStatus.SENT, created_at=at_noon - datetime.timedelta(days=1))

    lines = read_csv(client.get(export_url(hosting)))

    assert [line[1] for line in lines[1:]] == [inside.message_id]
    older = read_csv(client.get(export_url(hosting), {"since": (first_day - datetime.timedelta(days=1)).isoformat()}))
    assert len(older) == 3


def test_a_date_range_limits_the_export(owner):
    _user, hosting, client = owner
    now = timezone.now()
    recent = MessageFactory(hosting=hosting, status=MessageStatus.SENT, created_at=now)
    MessageFactory(hosting=hosting, status=MessageStatus.SENT, created_at=now - datetime.timedelta(days=5))
    yesterday = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()

    since = read_csv(client.get(export_url(hosting), {"since": yesterday}))
    until = read_csv(client.get(export_url(hosting), {"until": yesterday}))

    assert [line[1] for line in since[1:]] == [recent.message_id]
    assert len(until) == 2 and until[1][1] != recent.message_id


def test_bad_filters_lead_back_to_the_log_which_says_why(owner):
    _user, hosting, client = owner

    response = client.get(export_url(hosting), {"since": "tomorrow", "status": "held"})

    assert response.status_code == 302
    assert response["Location"] == f"/hostings/{hosting.service_name}/emails/messages/?status=held&since=tomorrow"
    assert client.get(response["Location"]).status_code == 400


# --- the error list -----------------------------------------------------------------------------------


def test_the_error_list_is_exported_streamed(owner, stranger):
    _user, hosting, client = owner
    now = timezone.now()
    DeliveryError.objects.bulk_create(
        DeliveryError(
            hosting=hosting,
            recipient=f"gone{number}@example.org",
            reply="550 5.1.1 User unknown",
            subject=f"Newsletter {number}",
            kind=ErrorKind.DSN if number % 2 else ErrorKind.RELAY,
            permanent=True,
            status="5.1.1",
            created_at=now - datetime.timedelta(seconds=number),
        )
        for number in range(ROWS)
    )
    DeliveryErrorFactory(hosting=stranger[1], recipient="stranger@example.org")

    response = client.get(errors_url(hosting))

    today = timezone.localdate().strftime("%Y%m%d")
    assert response["Content-Disposition"] == f'attachment; filename="{hosting.service_name}-errors-{today}.csv"'
    lines = read_csv(response)
    assert lines[0] == ERRORS_HEADER
    assert len(lines) == 1 + ROWS
    assert lines[1] == [
        timezone.localtime(now).isoformat(),
        "gone0@example.org",
        "550 5.1.1 User unknown",
        "Newsletter 0",
        "relay",
        "yes",
        "5.1.1",
    ]
    assert [line[1] for line in lines[1:]] == [f"gone{number}@example.org" for number in range(ROWS)]
    assert lines[2][4] == "dsn"


def test_the_error_export_honours_its_dates(owner):
    _user, hosting, client = owner
    now = timezone.now()
    recent = DeliveryErrorFactory(hosting=hosting, created_at=now)
    old = DeliveryErrorFactory(hosting=hosting, created_at=now - datetime.timedelta(days=10))
    DeliveryErrorFactory(hosting=hosting, created_at=now - datetime.timedelta(days=settings.RETENTION_DAYS + 2))
    week_ago = (timezone.localdate() - datetime.timedelta(days=7)).isoformat()

    assert [line[1] for line in read_csv(client.get(errors_url(hosting), {"since": week_ago}))[1:]] == [
        recent.recipient
    ]
    assert [line[1] for line in read_csv(client.get(errors_url(hosting), {"until": week_ago}))[1:]] == [old.recipient]
    assert len(read_csv(client.get(errors_url(hosting), {"since": "", "until": ""}))) == 3  # the retention period


def test_the_scripts_email_page_offers_the_error_export_for_the_retention_period(owner):
    _user, hosting, client = owner

    form = dom(client.get(f"/hostings/{hosting.service_name}/emails/")).find("form", id="errors-export")

    assert form.attrs["action"] == errors_url(hosting)
    today = timezone.localdate()
    since = today - datetime.timedelta(days=settings.RETENTION_DAYS)
    assert form.find("input", name="since").attrs["value"] == since.isoformat()
    assert form.find("input", name="until").attrs["value"] == today.isoformat()


def test_bad_dates_lead_back_to_the_page_with_a_message(owner):
    _user, hosting, client = owner

    response = client.get(errors_url(hosting), {"since": "31/02/2025"})

    assert response.status_code == 302
    assert response["Location"] == f"/hostings/{hosting.service_name}/emails/#errors"
    assert flash_messages(client.get(response["Location"])) == [
        "Enter valid dates (from, to) for the export of the e-mails in error."
    ]


def test_another_customers_exports_are_a_404(owner, stranger):
    _user, _hosting, client = owner
    victim = stranger[1]
    MessageFactory(hosting=victim, subject="Victim's subject")
    DeliveryErrorFactory(hosting=victim)

    for url in (export_url(victim), errors_url(victim), f"{export_url(victim)}?status=queued"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert not response.streaming
        assert b"Victim's subject" not in response.content


@pytest.mark.parametrize("query", ["until=9999-12-31", "since=0001-01-01"])
def test_an_export_of_days_out_of_range_is_refused_not_a_server_error(owner, query):
    _user, hosting, client = owner
    response = client.get(f"{errors_url(hosting)}?{query}")
    assert response.status_code in (302, 400)
