"""The summary and the bounces cost a fixed number of queries, however many messages and errors there are."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailqueue.models import DailyCounter, DeliveryError, Event, Message, MessageStatus
from tests.api.conftest import email_path

pytestmark = pytest.mark.django_db


def fill(hosting, count):
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            hosting=hosting,
            message_id=f"<m{n}@test>",
            sender="a@shop.example",
            recipients=[{"address": "b@example.org", "status": "pending", "code": None, "reply": ""}],
            recipient_count=1,
            subject="s",
            size=10,
            raw=b"x",
            status=MessageStatus.HELD if n % 2 else MessageStatus.SENT,
            held_at=now,
            held_until=now + datetime.timedelta(hours=72),
        )
        for n in range(count)
    )
    DeliveryError.objects.bulk_create(
        DeliveryError(hosting=hosting, recipient=f"r{n}@example.org", reply="550 no", subject="s") for n in range(count)
    )
    DailyCounter.objects.bulk_create(
        (
            DailyCounter(hosting=hosting, day=timezone.localdate() - datetime.timedelta(days=n), sent=n)
            for n in range(min(count, 60))
        ),
        ignore_conflicts=True,
    )
    Event.objects.bulk_create(
        Event(hosting=hosting, action="block", actor_kind="api", from_state="active", to_state="blocked")
        for _ in range(count)
    )


def queries(api, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert api.get(path).status_code == 200
    return len(captured)


SUFFIXES = ["", "/bounces", "/bounces?limit=100", "/volumes", "/messages", "/events"]


def test_query_counts_do_not_grow_with_rows(api, hosting):
    fill(hosting, 10)
    api.get(email_path(hosting))  # the first call may create the mail service row
    small = {suffix: queries(api, email_path(hosting, suffix)) for suffix in SUFFIXES}
    fill(hosting, 5000)
    large = {suffix: queries(api, email_path(hosting, suffix)) for suffix in SUFFIXES}
    assert small == large
    assert max(large.values()) <= 8
