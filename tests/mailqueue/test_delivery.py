"""Delivery through a real SMTP relay (aiosmtpd on a free port): SPEC §3 (block/unblock) and §4.2.

`LiveRelay` is a scripted relay: per recipient and per phase it answers 250, 4xx or 5xx, it counts
the SMTP sessions (EHLO/HELO) and it keeps the exact bytes of every message it accepted.
"""

import asyncio
import dataclasses
import datetime
import threading
import time

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from hosting.models import Plan
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.delivery import delivery_run_batch
from mailqueue.hourly_limit import mail_service_limit_set
from mailqueue.models import DailyCounter, DeliveryError, Message, MessageStatus, RecipientStatus
from mailqueue.retries import claims_recover, deferred_requeue
from mailqueue.state import Actor
from tests.conftest import requires_postgres
from tests.factories import HostingFactory, MessageFactory, UserFactory
from tests.support import as_stored, free_port, return_path_of

T0 = datetime.datetime(2025, 3, 10, 9, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class ScriptedHandler:
    """aiosmtpd handler answering as scripted; replies not scripted are 250."""

    def __init__(self, *, pipelining: bool = False):
        self.pipelining = pipelining  # offered in the EHLO reply (RFC 2920)
        self.connections = 0
        self.rcpt_replies: dict[str, list[str]] = {}  # per address, one reply per attempt
        self.data_replies: list[str] = []  # one per DATA
        self.received: list[Received] = []
        self.data_seen = 0
        self.hold_data_after: int | None = None  # DATA number n+1 and later wait for `release`
        self.hold_rcpt: set[str] = set()  # RCPT of these addresses waits for `release`
        self.waiting = threading.Event()  # set while a command is held
        self.release = threading.Event()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads pipelined commands one after the other, offered or not
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.connections += 1
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def _hold(self):
        self.waiting.set()
        while not self.release.is_set():
            await asyncio.sleep(0.02)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.hold_rcpt:
            await self._hold()
        replies = self.rcpt_replies.get(address)
        reply = replies.pop(0) if replies else "250 OK"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        self.data_seen += 1
        if self.hold_data_after is not None and self.data_seen > self.hold_data_after:
            await self._hold()
        reply = self.data_replies.pop(0) if self.data_replies else "250 OK"
        if reply.startswith("2"):
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return reply


class LiveRelay:
    """A real SMTP relay in a thread, on a port of its own (chosen free unless given)."""

    def __init__(self, port: int | None = None, *, pipelining: bool = False):
        self.port = port or free_port()
        self.handler = ScriptedHandler(pipelining=pipelining)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def received_ids(self) -> list[str]:
        """Message-IDs of what the relay accepted, in order (with repeats)."""
        ids = []
        for item in self.received:
            for line in item.content.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    ids.append(line.split(b":", 1)[1].strip().decode())
        return ids

    def __enter__(self) -> "LiveRelay":
        self.controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.handler.release.set()
        self.controller.stop()


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def relay(settings, request):
    """The relay, offering PIPELINING or not: every delivery test runs against both."""
    with LiveRelay(pipelining=request.param) as live:
        settings.SMTP_RELAY_URL = live.url
        settings.SMTP_RELAY_TIMEOUT = 10
        yield live


def queue_message(hosting, *, recipients=("someone@example.org",), **fields) -> Message:
    """A queued message as message_accept stores it, with a unique Message-ID in its raw bytes."""
    message = MessageFactory.build(hosting=hosting)
    raw = (
        f"From: www-data@test.example\r\nTo: {', '.join(recipients)}\r\nMessage-ID: {message.message_id}\r\n"
        f"Subject: {message.subject}\r\n\r\nHello from {hosting.service_name}\r\n"
    ).encode()
    defaults = {
        "recipients": [
            {"address": address, "status": RecipientStatus.PENDING, "code": None, "reply": ""} for address in recipients
        ],
        "recipient_count": len(recipients),
        "raw": raw,
        "size": len(raw),
        "message_id": message.message_id,
        "subject": message.subject,
    }
    return MessageFactory(hosting=hosting, **(defaults | fields))


def counters(hosting) -> DailyCounter:
    return DailyCounter.objects.filter(hosting=hosting, day=timezone.localdate()).first() or DailyCounter(
        hosting=hosting
    )


def status_of(message: Message) -> str:
    return Message.objects.values_list("status", flat=True).get(pk=message.pk)


# --- delivery -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_of_several_hostings_is_delivered_over_one_connection(relay):
    hostings = HostingFactory.create_batch(3)
    messages = [queue_message(hostings[index % 3]) for index in range(10)]
    raws = {message.message_id: bytes(message.raw) for message in messages}

    result = delivery_run_batch()

    assert (result.claimed, result.sent, result.deferred, result.failed) == (10, 10, 0, 0)
    assert relay.handler.connections == 1
    assert result.connections == 1
    assert sorted(relay.received_ids()) == sorted(raws)
    for item in relay.received:
        message_id = next(key for key in raws if key.encode() in item.content)
        assert as_stored(item.content) == raws[message_id]  # the stored bytes, under a Received: header
        assert item.content.startswith(b"Received: from ")
        # Each recipient's own return path (SPEC §10.1), naming this message; From: is untouched.
        assert item.mail_from == return_path_of(Message.objects.get(message_id=message_id))
        assert b"From: www-data@test.example" in item.content
        assert item.rcpt_tos == ["someone@example.org"]
    for message in Message.objects.filter(pk__in=[m.pk for m in messages]):
        assert message.status == MessageStatus.SENT
        assert message.raw is None
        assert message.completed_at is not None
        assert message.claim_token is None
        assert [(r["status"], r["code"]) for r in message.recipients] == [(RecipientStatus.SENT, 250)]
    assert [counters(hosting).sent for hosting in hostings] == [4, 3, 3]
    assert DeliveryError.objects.count() == 0
    assert delivery_run_batch().claimed == 0
    assert len(relay.received) == 10


@pytest.mark.django_db
def test_one_recipient_accepted_and_one_refused_for_good(relay):
    hosting = HostingFactory()
    message = queue_message(hosting, recipients=("good@example.org", "gone@example.org"))
    relay.handler.rcpt_replies["gone@example.org"] = ["550 5.1.1 <gone@example.org>: user unknown"]

    delivery_run_batch()

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.raw is None
    assert [(r["address"], r["status"], r["code"]) for r in message.recipients] == [
        ("good@example.org", RecipientStatus.SENT, 250),
        ("gone@example.org", RecipientStatus.FAILED, 550),
    ]
    [received] = relay.received
    assert received.rcpt_tos == ["good@example.org"]
    [error] = DeliveryError.objects.filter(hosting=hosting)
    assert (error.recipient, error.message_id, error.subject) == ("gone@example.org", message.pk, message.subject)
    assert error.reply == "550 5.1.1 <gone@example.org>: user unknown"
    assert (counters(hosting).sent, counters(hosting).errors) == (1, 1)


@pytest.mark.django_db
def test_temporary_refusals_are_retried_with_exponential_backoff_then_delivered(relay, settings):
    settings.RETRY_BASE_SECONDS = 60
    hosting = HostingFactory()
    with time_machine.travel(T0, tick=False) as clock:
        message = queue_message(hosting, created_at=T0)
        raw = bytes(message.raw)
        relay.handler.rcpt_replies["someone@example.org"] = ["451 4.7.1 greylisted", "452 4.2.2 mailbox full"]

        assert delivery_run_batch().deferred == 1
        message.refresh_from_db()
        assert (message.status, message.attempts) == (MessageStatus.DEFERRED, 1)
        assert message.next_attempt_at == T0 + datetime.timedelta(seconds=60)
        assert message.last_reply == "451 4.7.1 greylisted"
        assert message.raw is not None

        clock.shift(59)
        assert deferred_requeue() == 0
        assert delivery_run_batch().claimed == 0

        clock.shift(1)
        assert deferred_requeue() == 1
        assert delivery_run_batch().deferred == 1
        message.refresh_from_db()
        assert (message.status, message.attempts) == (MessageStatus.DEFERRED, 2)
        assert message.next_attempt_at == T0 + datetime.timedelta(seconds=60 + 120)

        clock.shift(120)
        assert deferred_requeue() == 1
        assert delivery_run_batch().sent == 1
        assert (counters(hosting).sent, counters(hosting).errors) == (1, 0)

    message.refresh_from_db()
    assert (message.status, message.attempts, message.raw) == (MessageStatus.SENT, 3, None)
    assert relay.received_ids() == [message.message_id]
    assert as_stored(relay.received[0].content) == raw  # kept intact while deferred
    assert relay.handler.connections == 3
    assert not DeliveryError.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("phase", ["RCPT", "DATA"])
def test_a_permanent_refusal_fails_the_message_at_once(relay, phase):
    hosting = HostingFactory()
    message = queue_message(hosting, recipients=("a@example.org", "b@example.org"))
    other = queue_message(hosting)
    if phase == "RCPT":
        relay.handler.rcpt_replies = {
            "a@example.org": ["550 5.1.1 a: no such user"],
            "b@example.org": ["553 5.1.3 b: bad address"],
        }
        expected = {"a@example.org": "550 5.1.1 a: no such user", "b@example.org": "553 5.1.3 b: bad address"}
    else:
        relay.handler.data_replies = ["554 5.7.1 rejected as spam"] * 2  # one transaction per recipient
        expected = dict.fromkeys(["a@example.org", "b@example.org"], "554 5.7.1 rejected as spam")

    result = delivery_run_batch()

    assert (result.failed, result.sent) == (1, 1)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert (message.raw, message.next_attempt_at) == (None, None)
    assert message.completed_at is not None
    assert {r["address"]: r["status"] for r in message.recipients} == dict.fromkeys(expected, RecipientStatus.FAILED)
    errors = DeliveryError.objects.filter(hosting=hosting, message_id=message.pk)
    assert {error.recipient: error.reply for error in errors} == expected
    # The session survives the refusal: the next message goes over the same connection.
    assert status_of(other) == MessageStatus.SENT
    assert relay.received_ids() == [other.message_id]
    assert relay.handler.connections == 1
    assert (counters(hosting).sent, counters(hosting).errors) == (1, 2)


@pytest.mark.django_db
def test_a_421_at_rcpt_defers_that_recipient_only(relay):
    """Each recipient has its own transaction (its return path): a 421 closes the session, the
    recipient is deferred, the next transaction reopens a session."""
    hosting = HostingFactory()
    message = queue_message(hosting, recipients=("a@example.org", "b@example.org", "c@example.org"))
    after = queue_message(hosting)
    relay.handler.rcpt_replies["b@example.org"] = ["421 4.3.2 shutting down"]

    result = delivery_run_batch()

    assert (result.deferred, result.sent) == (1, 1)
    message.refresh_from_db()
    assert message.status == MessageStatus.DEFERRED
    assert {r["address"]: r["status"] for r in message.recipients} == {
        "a@example.org": RecipientStatus.SENT,
        "b@example.org": RecipientStatus.PENDING,
        "c@example.org": RecipientStatus.SENT,
    }
    assert [item.rcpt_tos for item in relay.received] == [["a@example.org"], ["c@example.org"], ["someone@example.org"]]
    assert status_of(after) == MessageStatus.SENT


@pytest.mark.django_db
def test_an_internationalised_domain_is_delivered_in_idna(relay):
    hosting = HostingFactory()
    message = queue_message(hosting, recipients=("jose@café.example", "plain@example.org"))
    other = queue_message(hosting)

    result = delivery_run_batch()

    assert result.sent == 2
    assert [item.rcpt_tos for item in relay.received[:2]] == [["jose@xn--caf-dma.example"], ["plain@example.org"]]
    assert status_of(message) == status_of(other) == MessageStatus.SENT


@pytest.mark.django_db
def test_relay_down_defers_and_relay_back_delivers(settings):
    port = free_port()
    settings.SMTP_RELAY_URL = f"smtp://127.0.0.1:{port}"
    hosting = HostingFactory()
    with time_machine.travel(T0, tick=False) as clock:
        messages = [queue_message(hosting) for _ in range(3)]

        result = delivery_run_batch()

        assert (result.claimed, result.deferred, result.connections) == (3, 3, 0)
        for message in Message.objects.filter(hosting=hosting):
            assert message.status == MessageStatus.DEFERRED
            assert message.next_attempt_at == T0 + datetime.timedelta(seconds=settings.RETRY_BASE_SECONDS)
            assert message.last_reply.startswith("421 relay unavailable")
        assert not DeliveryError.objects.exists()

        with LiveRelay(port) as relay:
            clock.shift(settings.RETRY_BASE_SECONDS)
            assert deferred_requeue() == 3
            assert delivery_run_batch().sent == 3

    assert sorted(relay.received_ids()) == sorted(message.message_id for message in messages)
    assert relay.handler.connections == 1
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


@pytest.mark.django_db
@pytest.mark.parametrize("relay_up", [True, False], ids=["relay-4xx", "relay-down"])
def test_retries_exhausted_fail_the_message(settings, relay_up):
    settings.RETRY_MAX_AGE_SECONDS = 5 * 24 * 3600
    hosting = HostingFactory()
    old = timezone.now() - datetime.timedelta(seconds=settings.RETRY_MAX_AGE_SECONDS - 30)
    message = queue_message(hosting, created_at=old, attempts=12)
    young = queue_message(hosting)
    with LiveRelay() as relay:
        relay.handler.rcpt_replies["someone@example.org"] = ["451 4.3.0 try again later"] * 2
        settings.SMTP_RELAY_URL = relay.url if relay_up else f"smtp://127.0.0.1:{free_port()}"

        result = delivery_run_batch()

    assert (result.failed, result.deferred) == (1, 1)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.raw is None
    [error] = DeliveryError.objects.filter(message_id=message.pk)
    assert "retries exhausted" in error.reply
    assert error.reply.startswith("451 4.3.0 try again later" if relay_up else "421 relay unavailable")
    assert status_of(young) == MessageStatus.DEFERRED
    assert relay.received == []
    assert counters(hosting).errors == 1


# --- block / unblock --------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_claim_after_a_block_commits(relay):
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(5)]
    mail_service_block(hosting=hosting, actor=Actor.system(), reason="spam")

    result = delivery_run_batch()

    assert result.claimed == 0
    assert relay.handler.connections == 0
    assert relay.received == []
    assert {status_of(message) for message in messages} == {MessageStatus.HELD}


@pytest.mark.django_db(transaction=True)
def test_block_and_unblock_with_messages_in_every_status(relay):
    """Block holds queued and deferred mail only; a 4xx for mail in flight during the block
    makes it held, not deferred; unblock sends all held mail back to delivery."""
    owner = UserFactory()
    hosting = HostingFactory()
    in_flight = queue_message(hosting, recipients=("slow@example.org",))
    relay.handler.hold_rcpt = {"slow@example.org"}
    relay.handler.rcpt_replies["slow@example.org"] = ["451 4.4.2 timeout, try later"]
    results = []
    batch = threading.Thread(target=lambda: results.append(delivery_run_batch()) or connection.close())
    batch.start()
    try:
        assert relay.handler.waiting.wait(10)
        assert status_of(in_flight) == MessageStatus.SENDING
        queued = queue_message(hosting)
        deferred = queue_message(
            hosting, status=MessageStatus.DEFERRED, next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
        )
        held_before = queue_message(hosting, status=MessageStatus.HELD, next_attempt_at=None)
        sent = queue_message(hosting, status=MessageStatus.SENT, raw=None, completed_at=timezone.now())
        failed = queue_message(hosting, status=MessageStatus.FAILED, raw=None, completed_at=timezone.now())

        mail_service_block(hosting=hosting, actor=Actor.customer(owner))

        assert {m.message_id: m.status for m in Message.objects.filter(hosting=hosting)} == {
            in_flight.message_id: MessageStatus.SENDING,
            queued.message_id: MessageStatus.HELD,
            deferred.message_id: MessageStatus.HELD,
            held_before.message_id: MessageStatus.HELD,
            sent.message_id: MessageStatus.SENT,
            failed.message_id: MessageStatus.FAILED,
        }
    finally:
        relay.handler.release.set()
        batch.join(30)
    assert results[0].held == 1
    in_flight.refresh_from_db()
    assert in_flight.status == MessageStatus.HELD
    assert in_flight.held_until == in_flight.held_at + datetime.timedelta(hours=72)
    assert in_flight.claim_token is None
    assert relay.received == []

    mail_service_unblock(hosting=hosting, actor=Actor.customer(owner))
    assert delivery_run_batch().sent == 4

    released = [in_flight, queued, deferred, held_before]
    assert sorted(relay.received_ids()) == sorted(message.message_id for message in released)
    assert {status_of(message) for message in released} == {MessageStatus.SENT}
    assert (status_of(sent), status_of(failed)) == (MessageStatus.SENT, MessageStatus.FAILED)
    assert counters(hosting).sent == 4


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_block_racing_delivery_batches(relay):
    """Two workers deliver while the customer blocks: no batch claimed after the block commits
    takes anything, nothing reaches the relay after the batches in flight, nothing is lost."""
    hosting = HostingFactory(plan=Plan.PERFORMANCE)
    messages = [queue_message(hosting) for _ in range(120)]
    batches: list[tuple[float, int]] = []  # (claim started at, claimed)
    relay_count_at_block: list[int] = []

    def worker():
        try:
            while True:
                started = time.monotonic()
                result = delivery_run_batch(limit=10)
                batches.append((started, result.claimed))
                if not result.claimed:
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(relay.received) < 30 and time.monotonic() < deadline:
        time.sleep(0.005)
    mail_service_block(hosting=hosting, actor=Actor.system(), reason="spam")
    blocked_at = time.monotonic()
    relay_count_at_block.append(len(relay.received))
    for thread in threads:
        thread.join(30)

    assert 30 <= relay_count_at_block[0] < 120
    assert all(claimed == 0 for started, claimed in batches if started > blocked_at)
    # At most the two batches in flight (10 each) reached the relay after the block.
    assert len(relay.received) - relay_count_at_block[0] <= 20
    statuses = dict(Message.objects.filter(hosting=hosting).values_list("message_id", "status"))
    assert len(statuses) == len(messages)
    assert set(statuses.values()) <= {MessageStatus.SENT, MessageStatus.HELD, MessageStatus.QUEUED}
    received = relay.received_ids()
    assert len(received) == len(set(received))
    assert set(received) == {key for key, status in statuses.items() if status == MessageStatus.SENT}


@pytest.mark.django_db
def test_stale_claims_are_recovered_to_the_queue_or_the_held_mail(relay, settings):
    active, blocked = HostingFactory.create_batch(2)
    stale_at = timezone.now() - datetime.timedelta(seconds=settings.DELIVERY_CLAIM_TIMEOUT + 1)
    claimed = {"status": MessageStatus.SENDING, "claimed_at": stale_at, "claim_token": "0" * 32, "attempts": 1}
    stale_active = queue_message(active, **claimed)
    fresh = queue_message(active, **(claimed | {"claimed_at": timezone.now() - datetime.timedelta(seconds=5)}))
    stale_blocked = queue_message(blocked, **claimed)
    mail_service_block(hosting=blocked, actor=Actor.system(), reason="spam")

    assert claims_recover() == 2

    stale_active.refresh_from_db()
    assert (stale_active.status, stale_active.claim_token, stale_active.claimed_at) == (
        MessageStatus.QUEUED,
        None,
        None,
    )
    stale_blocked.refresh_from_db()
    assert stale_blocked.status == MessageStatus.HELD
    assert stale_blocked.held_until == stale_blocked.held_at + datetime.timedelta(hours=72)
    assert status_of(fresh) == MessageStatus.SENDING
    assert counters(blocked).held == 1

    assert delivery_run_batch().sent == 1
    assert relay.received_ids() == [stale_active.message_id]

    # A dead worker known for sure (older_than=0) gives its claims back at once.
    assert claims_recover(older_than=0) == 1
    assert status_of(fresh) == MessageStatus.QUEUED


@pytest.mark.django_db
def test_the_hourly_limit_delays_messages_without_rejecting_them(relay):
    operator = UserFactory(is_staff=True)
    hosting = HostingFactory()
    mail_service_limit_set(hosting=hosting, actor=Actor.operator(operator), limit=3)
    with time_machine.travel(T0, tick=False) as clock:
        messages = [queue_message(hosting) for _ in range(10)]

        result = delivery_run_batch()

        assert (result.claimed, result.sent) == (3, 3)
        assert len(relay.received) == 3
        waiting = Message.objects.filter(hosting=hosting, status=MessageStatus.QUEUED)
        assert waiting.count() == 7
        assert set(waiting.values_list("next_attempt_at", flat=True)) == {T0 + datetime.timedelta(hours=1)}
        clock.shift(datetime.timedelta(minutes=59))
        assert delivery_run_batch().claimed == 0

        clock.shift(datetime.timedelta(minutes=1))
        assert delivery_run_batch().sent == 3

    assert len(relay.received) == 6
    assert len(set(relay.received_ids())) == 6
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.QUEUED).count() == 4
    assert not DeliveryError.objects.exists()
    assert {status_of(message) for message in messages} == {MessageStatus.SENT, MessageStatus.QUEUED}
