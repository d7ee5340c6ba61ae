"""Hourly limits under outages and concurrency, fairness between tenants, line ends on the wire."""

import datetime
import threading

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailqueue.claims import delivery_claim
from mailqueue.delivery import delivery_run_batch
from mailqueue.hourly_limit import mail_service_limit_set
from mailqueue.models import Message, MessageStatus
from mailqueue.state import Actor
from tests.conftest import requires_postgres
from tests.factories import HostingFactory, UserFactory
from tests.mailqueue.test_delivery import T0, queue_message, relay, status_of  # noqa: F401 (fixture)
from tests.support import free_port, handoffs_of

pytestmark = pytest.mark.django_db


def limit(hosting, value: int) -> None:
    mail_service_limit_set(hosting=hosting, actor=Actor.operator(UserFactory(is_staff=True)), limit=value)


def test_messages_never_handed_to_the_relay_give_their_hourly_quota_back(settings):
    settings.SMTP_RELAY_URL = f"smtp://127.0.0.1:{free_port()}"  # nothing listens: relay down
    hosting = HostingFactory()
    limit(hosting, 3)
    for _ in range(3):
        queue_message(hosting)

    result = delivery_run_batch()

    assert (result.claimed, result.deferred) == (3, 3)
    assert handoffs_of(hosting) == 0, "an outage must not eat the quota"


def test_a_backlog_over_its_limit_does_not_hide_other_tenants_mail(relay):  # noqa: F811
    busy, quiet = HostingFactory(), HostingFactory()
    limit(busy, 1)
    early = datetime.timedelta(minutes=5)
    for _ in range(250):  # more than two batches, all due before the quiet hosting's message
        queue_message(busy, next_attempt_at=Message._meta.get_field("created_at").default() - early)
    waiting = queue_message(quiet)

    token, taken = delivery_claim(limit=100)

    assert Message.objects.get(pk=waiting.pk).claim_token == token
    assert waiting.pk in [message.pk for message in taken]
    assert Message.objects.filter(hosting=busy, status=MessageStatus.SENDING).count() == 1


def test_bare_line_feeds_reach_the_relay_as_crlf_and_stay_as_submitted_in_storage(relay):  # noqa: F811
    hosting = HostingFactory()
    raw = b"From: a@site.example\nTo: someone@example.org\nSubject: lf\n\nline one\nline two\n"
    message = queue_message(hosting, raw=raw, size=len(raw))

    delivery_run_batch()

    assert Message.objects.get(pk=message.pk).status == MessageStatus.SENT
    content = relay.received[0].content
    assert b"line one\r\nline two" in content
    assert b"\n" not in content.replace(b"\r\n", b"")


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_exceed_the_hourly_limit():
    hosting = HostingFactory()
    limit(hosting, 5)
    for _ in range(40):
        queue_message(hosting)
    taken: list[int] = []
    barrier = threading.Barrier(4)

    def claim():
        try:
            barrier.wait()
            for _ in range(3):
                taken.extend(message.pk for message in delivery_claim(limit=4)[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(taken) == 5
    assert handoffs_of(hosting) == 5


@requires_postgres
def test_a_claim_walks_the_queue_in_its_order_whatever_the_backlog():
    """With statistics as autovacuum keeps them, the candidates come off the queue's
    (next_attempt_at, id) index, stopping at the batch's size: no sort of every due message, and
    no join through the hosting (without the service tables' statistics that join made PostgreSQL
    read and sort the whole backlog at each claim: bench/claim.py)."""
    from django.utils import timezone

    from mailqueue.claims import due_candidates

    hosting = HostingFactory()
    template = queue_message(hosting)
    fields = [field.attname for field in Message._meta.concrete_fields if not field.primary_key]
    rows = [Message(**{name: getattr(template, name) for name in fields}) for _ in range(3000)]
    Message.objects.bulk_create(rows, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mailqueue_message, mailqueue_mailservice, hosting_hosting")
    now = timezone.now()
    assert Message.objects.due(now).count() == 3001  # every one of them is due

    plan = due_candidates(now, 100).explain(format="json")

    assert "message_queued_due_id" in plan
    assert "Sort" not in plan and "hosting_hosting" not in plan


def test_a_claim_hands_back_its_messages_as_it_left_them_from_one_statement_on_the_queue():
    """The claimed rows come back from the claim's own UPDATE: no second read of the queue, the
    raw content left in the database (read a few at a time while delivering)."""
    hosting = HostingFactory()
    queued = [queue_message(hosting) for _ in range(3)]

    with CaptureQueriesContext(connection) as queries:
        token, taken = delivery_claim(limit=2)

    assert [message.pk for message in taken] == [message.pk for message in queued[:2]]
    for message in taken:
        stored = Message.objects.get(pk=message.pk)
        claimed = (MessageStatus.SENDING, token, 1)
        assert (message.status, message.claim_token, message.attempts) == claimed
        assert (stored.status, stored.claim_token, stored.attempts) == claimed
        assert message.claimed_at == stored.claimed_at is not None
        assert (message.recipients, message.subject, message.created_at) == (
            stored.recipients,
            stored.subject,
            stored.created_at,
        )
        assert "raw" in message.get_deferred_fields()
    assert status_of(queued[2]) == MessageStatus.QUEUED
    assert sum('"mailqueue_message"' in query["sql"] for query in queries.captured_queries) == 1


def test_candidates_over_their_hourly_limit_go_back_to_the_queue_as_they_were_an_hour_later():
    hosting = HostingFactory()
    limit(hosting, 2)
    with time_machine.travel(T0, tick=False):
        queued = [queue_message(hosting) for _ in range(5)]

        token, taken = delivery_claim(limit=10)

    assert len(taken) == 2 and handoffs_of(hosting) == 2
    waiting = Message.objects.filter(pk__in=[message.pk for message in queued]).exclude(claim_token=token)
    assert waiting.count() == 3
    for message in waiting:
        assert (message.status, message.claim_token, message.claimed_at, message.attempts) == (
            MessageStatus.QUEUED,
            None,
            None,
            0,
        )
        assert message.next_attempt_at == T0 + datetime.timedelta(hours=1)


def test_a_hosting_at_its_hourly_limit_sends_its_oldest_due_mail_first():
    """The claim's UPDATE returns its rows in no particular order: the limit is still applied in
    the queue's order, oldest due first, whatever the ids."""
    hosting = HostingFactory()
    limit(hosting, 2)
    with time_machine.travel(T0, tick=False):
        # Ids in one order, due times in the other: the last created are due first.
        queued = [queue_message(hosting, next_attempt_at=T0 - datetime.timedelta(minutes=n)) for n in range(6)]

        _token, taken = delivery_claim(limit=10)

    assert sorted(message.pk for message in taken) == sorted(message.pk for message in queued[-2:])
