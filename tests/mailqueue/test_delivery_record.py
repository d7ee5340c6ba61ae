"""A sent message's record in one statement, written while the next message is sent (SPEC §4.2,
§12; `mailqueue.delivery_record`), against a real relay (aiosmtpd) and PostgreSQL."""

import time

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailqueue import delivery_record
from mailqueue.claims import delivery_claim
from mailqueue.delivery import delivery_run_batch
from mailqueue.delivery_record import RecordFailed, sent_save
from mailqueue.models import Message, MessageStatus, RecipientStatus
from mailqueue.retries import claims_recover
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

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_at.append(time.monotonic())
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.ended_at.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


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
    token, (message_id,) = delivery_claim()
    message = sent_in_memory(Message.objects.get(pk=message_id))

    with CaptureQueriesContext(connection) as other_claim:
        assert sent_save(message, token.__class__(int=token.int + 1), day=timezone.localdate()) is False
    assert status_of(message) == MessageStatus.SENDING
    assert counters(hosting).sent == 0

    with CaptureQueriesContext(connection) as queries:
        assert sent_save(message, token, day=timezone.localdate()) is True

    assert (len(other_claim), len(queries)) == (1, 1)
    stored = Message.objects.get(pk=message_id)
    assert (stored.status, stored.claim_token, stored.claimed_at, stored.raw) == (MessageStatus.SENT, None, None, None)
    assert stored.recipients[0]["status"] == RecipientStatus.SENT
    assert stored.last_reply == "250 OK"
    assert counters(hosting).sent == 1


def test_the_next_message_is_sent_while_a_record_commits_and_ended_only_after_it(timed_relay, monkeypatch):
    """Message n+1's MAIL goes out while message n's record is being written; its final dot only
    once that record is committed: at most one message accepted by the relay and uncommitted."""
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(4)]
    committed_at: dict[int, float] = {}
    real_save = delivery_record.sent_save

    def slow_save(message, token, *, day):
        time.sleep(0.15)
        written = real_save(message, token, day=day)
        committed_at[message.pk] = time.monotonic()
        return written

    monkeypatch.setattr(delivery_record, "sent_save", slow_save)

    result = delivery_run_batch()

    assert (result.claimed, result.sent) == (4, 4)
    assert sorted(timed_relay.received_ids()) == sorted(message.message_id for message in messages)
    handler = timed_relay.handler
    for previous, number in zip(messages, range(1, 4), strict=False):
        assert handler.mail_at[number] < committed_at[previous.pk] < handler.ended_at[number]
    assert {status_of(message) for message in messages} == {MessageStatus.SENT}
    assert counters(hosting).sent == 4


def test_a_record_that_fails_leaves_the_next_message_unended_and_nothing_lost(timed_relay, monkeypatch):
    hosting = HostingFactory()
    first, second, third = (queue_message(hosting) for _ in range(3))
    real_save = delivery_record.sent_save

    def failing_save(message, token, *, day):
        if message.pk == second.pk:
            raise OperationalError("server closed the connection unexpectedly")
        return real_save(message, token, day=day)

    monkeypatch.setattr(delivery_record, "sent_save", failing_save)

    with pytest.raises(RecordFailed, match=f"message {second.pk}"):
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
    token, message_ids = delivery_claim()

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
