"""A sent message's record in one statement, written while the next message is sent (SPEC §4.2,
§12; `mailqueue.delivery_record`), against a real relay (aiosmtpd) and PostgreSQL."""

import time

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailqueue import sent_recorder
from mailqueue.claims import delivery_claim
from mailqueue.delivery import delivery_run_batch
from mailqueue.delivery_record import RecordFailed, sent_save
from mailqueue.models import Message, MessageStatus, RecipientStatus
from mailqueue.retries import claims_recover
from mailqueue.sent_recorder import SentRecorder
from tests.conftest import requires_postgres
from tests.factories import HostingFactory
from tests.mailqueue.test_delivery import LiveRelay, ScriptedHandler, counters, queue_message, status_of

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


class TimedHandler(ScriptedHandler):
    """The scripted relay, noting when each MAIL arrived and each message was ended (its dot)."""

    def __init__(self, *, pipelining: bool = False):
        super().__init__(pipelining=pipelining)
        self.mail_at: list[float] = []
        self.ended_at: list[float] = []
        self.sent_when_ended: list[int] = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_at.append(time.monotonic())
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.ended_at.append(time.monotonic())
        self.sent_when_ended.append(_sent_committed())
        return await super().handle_DATA(server, session, envelope)


def _sent_committed() -> int:
    """Messages committed as sent, read on a connection of its own (the relay's thread)."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None, port=settings["PORT"] or None
    ) as other:
        return other.execute("SELECT count(*) FROM mailqueue_message WHERE status = 'sent'").fetchone()[0]


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def timed_relay(settings, request):
    live = LiveRelay()
    live.handler = live.controller.handler = TimedHandler(pipelining=request.param)
    with live:
        settings.SMTP_RELAY_URL = live.url
        settings.SMTP_RELAY_TIMEOUT = 10
        yield live


def sent_in_memory(message: Message) -> Message:
    for recipient in message.recipients:
        recipient.update(status=RecipientStatus.SENT, code=250, reply="OK")
    message.status = MessageStatus.SENT
    message.completed_at = timezone.now()
    message.last_reply = "250 OK"
    return message


def test_a_sent_message_is_written_with_its_counter_in_one_statement_when_still_claimed():
    hosting = HostingFactory()
    queue_message(hosting)
    token, (claimed,) = delivery_claim()
    message = sent_in_memory(Message.objects.get(pk=claimed.pk))

    with CaptureQueriesContext(connection) as other_claim:
        assert sent_save(message, token.__class__(int=token.int + 1), day=timezone.localdate()) is False
    assert status_of(message) == MessageStatus.SENDING
    assert counters(hosting).sent == 0

    with CaptureQueriesContext(connection) as queries:
        assert sent_save(message, token, day=timezone.localdate()) is True

    assert (len(other_claim), len(queries)) == (1, 1)
    stored = Message.objects.get(pk=claimed.pk)
    assert (stored.status, stored.claim_token, stored.claimed_at, stored.raw) == (MessageStatus.SENT, None, None, None)
    assert stored.recipients[0]["status"] == RecipientStatus.SENT
    assert stored.last_reply == "250 OK"
    assert counters(hosting).sent == 1


def test_the_next_message_is_sent_while_a_record_commits_and_ended_only_after_it(timed_relay, monkeypatch):
    """Message n+1's MAIL goes out while message n's record is being written; its final dot only
    once that record is committed: at most one message accepted by the relay and uncommitted.
    The relay itself looks, when each message ends, at what the database holds."""
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(4)]
    committed_at: dict[int, float] = {}
    real_outcome = SentRecorder._outcome

    def slow_outcome(self):
        time.sleep(0.15)  # a slow commit: the recorder learns of it this much later
        written = real_outcome(self)
        committed_at[self.recording] = time.monotonic()
        return written

    real_submit = SentRecorder.submit

    def noted_submit(self, message, *, day):
        real_submit(self, message, day=day)
        self.recording = message.pk

    monkeypatch.setattr(SentRecorder, "_outcome", slow_outcome)
    monkeypatch.setattr(SentRecorder, "submit", noted_submit)

    result = delivery_run_batch()

    assert (result.claimed, result.sent) == (4, 4)
    assert sorted(timed_relay.received_ids()) == sorted(message.message_id for message in messages)
    handler = timed_relay.handler
    for previous, number in zip(messages, range(1, 4), strict=False):
        assert handler.mail_at[number] < committed_at[previous.pk] < handler.ended_at[number]
    # When message n+1 ended at the relay, messages 1..n were committed as sent.
    assert handler.sent_when_ended == [0, 1, 2, 3]
    assert {status_of(message) for message in messages} == {MessageStatus.SENT}
    assert counters(hosting).sent == 4


def test_a_record_that_fails_leaves_the_next_message_unended_and_nothing_lost(timed_relay, monkeypatch):
    """The second message's record fails on the server (here a statement that divides by zero in
    its place): the third message, under way, is never ended; both claims are recovered."""
    hosting = HostingFactory()
    first, second, third = (queue_message(hosting) for _ in range(3))
    real_submit, real_send = SentRecorder.submit, SentRecorder._send

    def noted_submit(self, message, *, day):
        self.failing = message.pk == second.pk
        real_submit(self, message, day=day)

    def failing_send(self, sql, params, many, context):
        if self.failing:
            self._database.connection.pgconn.send_query(b"SELECT 1/0")
            return
        real_send(self, sql, params, many, context)

    monkeypatch.setattr(SentRecorder, "submit", noted_submit)
    monkeypatch.setattr(SentRecorder, "_send", failing_send)

    with pytest.raises(RecordFailed, match=f"message {second.pk} failed: division by zero"):
        delivery_run_batch()

    # The third message reached DATA but never its end: the relay dropped it.
    assert timed_relay.received_ids() == [first.message_id, second.message_id]
    assert len(timed_relay.handler.mail_at) == 3
    assert [status_of(message) for message in (first, second, third)] == [
        MessageStatus.SENT,
        MessageStatus.SENDING,
        MessageStatus.SENDING,
    ]
    # The claim of the two not recorded is recovered: queued again, nothing lost.
    assert claims_recover(older_than=0) == 2
    assert [status_of(message) for message in (second, third)] == [MessageStatus.QUEUED] * 2
    assert counters(hosting).sent == 1


def test_the_record_statement_is_prepared_on_the_server_once_run_twice():
    """DATABASE_PREPARE_THRESHOLD (2 runs, then prepared at the third): Django turns psycopg's
    preparation off unless told."""
    hosting = HostingFactory()
    for _ in range(4):
        queue_message(hosting)
    token, claimed = delivery_claim()
    message_ids = [message.pk for message in claimed]

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["WITH written AS%"])
            return cursor.fetchone()[0]

    counts = []
    for message in Message.objects.filter(pk__in=message_ids):
        assert sent_save(sent_in_memory(message), token, day=timezone.localdate())
        counts.append(prepared())

    assert counts == [0, 0, 1, 1]
    assert counters(hosting).sent == 4


def _record_backend():
    """The recorder's connection kept for this thread's next batch (mailqueue.sent_recorder)."""
    return sent_recorder._kept.database.connection


def test_the_record_connection_is_kept_between_batches_and_replaced_once_the_server_dropped_it(timed_relay):
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(3)]

    assert delivery_run_batch(limit=1).sent == 1
    first = _record_backend().info.backend_pid
    assert delivery_run_batch(limit=1).sent == 1
    assert _record_backend().info.backend_pid == first  # kept: no new connection for the second batch
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    assert delivery_run_batch(limit=1).sent == 1  # a health check finds it gone: a new one

    assert _record_backend().info.backend_pid != first
    assert {status_of(message) for message in messages} == {MessageStatus.SENT}
    assert counters(hosting).sent == 3


def test_without_prepared_statements_for_a_pooler_the_record_is_sent_unprepared(timed_relay, monkeypatch):
    """DATABASE_PREPARE_THRESHOLD=0 (PgBouncer in transaction mode before 1.21): nothing prepared."""
    monkeypatch.setitem(connection.settings_dict.setdefault("OPTIONS", {}), "prepare_threshold", None)
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(3)]

    assert delivery_run_batch().sent == 3

    prepared = _record_backend().execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    assert prepared == 0
    assert {status_of(message) for message in messages} == {MessageStatus.SENT}
    assert counters(hosting).sent == 3
