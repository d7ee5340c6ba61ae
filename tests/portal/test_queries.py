"""The pages cost a fixed, small number of queries, however much mail a hosting has."""

import datetime
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone, translation

from mailqueue.blocking import mail_service_block
from mailqueue.models import DailyCounter, DeliveryError, Message, MessageStatus
from mailqueue.selectors import HELD_COUNT_CAP
from mailqueue.state import Actor
from tests.factories import HostingFactory
from tests.portal.pages import facts

pytestmark = pytest.mark.django_db

MESSAGES = 100_000
ERRORS = 10_000
# Measured: 3 on the list (session, user, hostings with customer and service) and 14 on the page
# (session, user, hosting, mail service, counters, volumes, held queue (2), queued and deferred
# counts, next retry, this hour's use, last events, errors), on both backends.
MAX_QUERIES = 14
STATUSES = [
    MessageStatus.HELD,
    MessageStatus.HELD,
    MessageStatus.HELD,
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.QUEUED,
    MessageStatus.DEFERRED,
]


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


SEED = 3_125  # rows built in Python; the database doubles them 5 times to 100,000


def _double(model, hosting) -> None:
    """Copy every row of the hosting in `model` once more, inside the database (portable SQL)."""
    columns = ", ".join(field.column for field in model._meta.concrete_fields if not field.primary_key)
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE hosting_id = %s", [hosting.pk]
        )


def fill(hosting) -> int:
    """100,000 messages of mixed statuses (many held), 10,000 errors, 60 days of counters."""
    now = timezone.now()
    rows = []
    for index in range(SEED):
        status = STATUSES[index % len(STATUSES)]
        is_held = status == MessageStatus.HELD
        rows.append(
            Message(
                hosting=hosting,
                message_id=f"<bulk-{index}@test.example>",
                recipients=[{"address": "a@example.org", "status": "pending", "code": None, "reply": ""}],
                recipient_count=1,
                size=100,
                status=status,
                created_at=now - datetime.timedelta(seconds=index),
                held_at=now - datetime.timedelta(seconds=index) if is_held else None,
                held_until=now + datetime.timedelta(hours=72, seconds=-index) if is_held else None,
            )
        )
    Message.objects.bulk_create(rows, batch_size=1000)
    DeliveryError.objects.bulk_create(
        [
            DeliveryError(
                hosting=hosting,
                recipient=f"bounce{index}@example.org",
                reply="550 5.1.1 User unknown",
                created_at=now - datetime.timedelta(seconds=index),
            )
            for index in range(ERRORS // 8)
        ],
        batch_size=1000,
    )
    for _doubling in range(5):
        _double(Message, hosting)
    for _doubling in range(3):
        _double(DeliveryError, hosting)
    assert Message.objects.filter(hosting=hosting).count() == MESSAGES
    assert DeliveryError.objects.filter(hosting=hosting).count() == ERRORS
    today = timezone.localdate()
    DailyCounter.objects.bulk_create(
        DailyCounter(hosting=hosting, day=today - datetime.timedelta(days=days), sent=1000 + days, errors=100)
        for days in range(60)
    )
    return Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count()


def test_query_counts_do_not_grow_with_the_mail_of_a_hosting(tenant):
    mail_service_block(hosting=tenant.hosting, actor=Actor.customer(tenant.user))
    emails = f"/hostings/{tenant.hosting.service_name}/emails/"
    tenant.client.get("/")  # loads the URLconf, whose import-time work is not the page's
    empty = {url: count_queries(tenant.client, url) for url in ("/", emails, f"{emails}?limit=100")}

    started = time.monotonic()
    held = fill(tenant.hosting)
    print(f"\nfilled in {time.monotonic() - started:.1f}s")
    for _more in range(5):  # more hostings on the list, each with its mail service
        HostingFactory(customer=tenant.customer)

    full = {url: count_queries(tenant.client, url) for url in empty}
    response = tenant.client.get(emails)
    print(f"\nqueries ({connection.vendor}) empty: {empty} full: {full}")

    assert full == empty
    assert max(full.values()) <= MAX_QUERIES
    # The data is really there; past HELD_COUNT_CAP the page says so instead of counting on.
    with translation.override("fr"):  # grouped as French writes it: « 10 000+ »
        shown = f"{formats.number_format(HELD_COUNT_CAP)}+" if held > HELD_COUNT_CAP else formats.number_format(held)
    assert facts(response)["E-mails en attente\u00a0:"].startswith(f"{shown} — ")
    assert len(tenant.client.get(f"{emails}?limit=100").context["errors"]) == 100
