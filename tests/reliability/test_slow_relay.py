"""Slow and flapping relays (SPEC §4.2): with a short SMTP_RELAY_TIMEOUT, a delivery batch never
hangs, and every message ends sent or deferred: none lost, none left in `sending`."""

import asyncio
import collections
import socket
import time

import pytest

from mailqueue import delivery_runs
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import Message, MessageStatus
from mailqueue.retries import deferred_requeue
from portal import settings as configured  # the values as configured, not as a test overrides them
from portal.celery import app as celery_app
from tests.factories import HostingFactory
from tests.mailqueue.test_delivery import LiveRelay, Received, ScriptedHandler, queue_message

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

TIMEOUT = 2  # seconds: SMTP_RELAY_TIMEOUT in these tests
SLOW = TIMEOUT + 2  # a relay this slow is given up on


class MoodyHandler(ScriptedHandler):
    """A relay whose DATA (or RCPT) does what `moods` says, one mood per message, then "ok":
    "ok" accepts, "slow" accepts after SLOW seconds, "drop" closes the connection without a reply,
    "421" answers 421 (and smtplib closes), "rcpt-slow" stalls RCPT for SLOW seconds."""

    def __init__(self, moods=()):
        super().__init__()
        self.moods = collections.deque(moods)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.moods and self.moods[0] == "rcpt-slow":
            self.moods.popleft()
            await asyncio.sleep(SLOW)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        mood = self.moods.popleft() if self.moods else "ok"
        if mood == "slow":
            await asyncio.sleep(SLOW)  # cancelled by aiosmtpd when the client hangs up first
        elif mood == "drop":
            server.transport.close()
            return "250 OK"  # never reaches the client
        elif mood == "421":
            return "421 4.3.2 Shutting down, come back later"
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def moody_relay(moods=(), port=None) -> LiveRelay:
    relay = LiveRelay(port)
    relay.handler = relay.controller.handler = MoodyHandler(moods)
    return relay


@pytest.fixture(autouse=True)
def short_timeouts(settings):
    settings.SMTP_RELAY_TIMEOUT = TIMEOUT
    settings.RETRY_BASE_SECONDS = 0  # deferred messages are due again at once
    settings.DELIVERY_BATCH_SIZE = 20


def statuses(hosting) -> collections.Counter:
    return collections.Counter(Message.objects.filter(hosting=hosting).values_list("status", flat=True))


def timed_batch() -> tuple[float, object]:
    started = time.monotonic()
    result = delivery_run_batch()
    return time.monotonic() - started, result


def test_a_relay_slower_than_the_timeout_defers_and_a_faster_one_delivers(settings):
    hosting = HostingFactory()
    queue_message(hosting)
    with moody_relay(["slow"]) as relay:
        settings.SMTP_RELAY_URL = relay.url

        elapsed, result = timed_batch()

        assert elapsed < TIMEOUT + 2, elapsed
        assert (result.claimed, result.deferred) == (1, 1)
        assert statuses(hosting) == {MessageStatus.DEFERRED: 1}
        assert deferred_requeue() == 1
        elapsed, result = timed_batch()  # the relay is quick again
        assert result.sent == 1
    assert statuses(hosting) == {MessageStatus.SENT: 1}


def test_a_relay_stalling_at_rcpt_defers(settings):
    hosting = HostingFactory()
    queue_message(hosting)
    with moody_relay(["rcpt-slow"]) as relay:
        settings.SMTP_RELAY_URL = relay.url
        elapsed, _result = timed_batch()
    assert elapsed < TIMEOUT + 2, elapsed
    assert statuses(hosting) == {MessageStatus.DEFERRED: 1}


def test_a_relay_that_never_greets_makes_the_batch_give_up_after_the_timeout(settings):
    hosting = HostingFactory()
    for _ in range(5):
        queue_message(hosting)
    with socket.socket() as silent:  # accepts connections (backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings.SMTP_RELAY_URL = f"smtp://127.0.0.1:{silent.getsockname()[1]}"

        elapsed, result = timed_batch()

    assert elapsed < TIMEOUT + 2, elapsed
    assert (result.claimed, result.deferred) == (5, 5)
    assert statuses(hosting) == {MessageStatus.DEFERRED: 5}


def test_a_relay_stalling_on_every_message_costs_the_batch_one_timeout_not_one_per_message(settings):
    hosting = HostingFactory()
    for _ in range(5):
        queue_message(hosting)
    with moody_relay(["slow"] * 5) as relay:
        settings.SMTP_RELAY_URL = relay.url

        elapsed, _result = timed_batch()

    assert statuses(hosting) == {MessageStatus.DEFERRED: 5}  # this part holds
    assert elapsed < 2 * TIMEOUT + 2, f"one batch took {elapsed:.1f} s"


def test_a_flapping_relay_loses_nothing_and_leaves_nothing_in_sending(settings):
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(8)]
    port = None
    # Up: accepts, answers 421 (smtplib closes; the next message reconnects), accepts, then drops
    # the connection: the batch stops there and defers the rest instead of trying each in turn.
    with moody_relay(["ok", "421", "ok", "ok", "drop", "ok", "ok", "ok"]) as relay:
        settings.SMTP_RELAY_URL = relay.url
        port = relay.port

        elapsed, result = timed_batch()

        assert elapsed < 2 * TIMEOUT, elapsed
        assert (result.claimed, result.sent, result.deferred) == (8, 3, 5)
        assert statuses(hosting) == {MessageStatus.SENT: 3, MessageStatus.DEFERRED: 5}
        received = list(relay.received_ids())

    # Down: nothing listens on the port.
    assert deferred_requeue() == 5
    elapsed, result = timed_batch()
    assert elapsed < TIMEOUT + 2
    assert (result.claimed, result.deferred) == (5, 5)
    assert statuses(hosting) == {MessageStatus.SENT: 3, MessageStatus.DEFERRED: 5}

    # Back again, on the same port.
    with moody_relay(port=port) as relay:
        assert deferred_requeue() == 5
        elapsed, result = timed_batch()
        assert result.sent == 5
        received += relay.received_ids()

    assert statuses(hosting) == {MessageStatus.SENT: 8}
    assert not Message.objects.filter(status=MessageStatus.SENDING).exists()
    assert set(received) == {message.message_id for message in messages}
    assert len(received) == len(set(received)), "each message accepted once"


def test_task_time_limits_bound_every_worker_and_the_relay_timeout_fits_under_them():
    hard = configured.CELERY_TASK_TIME_LIMIT
    soft = configured.CELERY_TASK_SOFT_TIME_LIMIT
    assert hard and soft and 0 < soft < hard
    assert celery_app.conf.task_time_limit == hard and celery_app.conf.task_soft_time_limit == soft
    assert 0 < configured.SMTP_RELAY_TIMEOUT < soft
    assert soft > delivery_runs.DELIVERY_TASK_BUDGET_SECONDS + configured.SMTP_RELAY_TIMEOUT
    # A live worker renews its claim several times within the timeout, so a claim is only
    # recovered once its worker has stopped beating (dead, or killed at the hard limit).
    assert 0 < 3 * configured.DELIVERY_CLAIM_HEARTBEAT <= configured.DELIVERY_CLAIM_TIMEOUT


def test_the_worst_batch_fits_under_the_soft_time_limit():
    # A batch stops at its first lost connection or timeout, and sends nothing new after its
    # deadline: at worst the deadline, plus the message in flight answering each of its commands
    # (EHLO, MAIL, RCPT, DATA, the data) just under the timeout.
    worst_batch = configured.DELIVERY_BATCH_DEADLINE + 5 * configured.SMTP_RELAY_TIMEOUT
    assert delivery_runs.DELIVERY_TASK_BUDGET_SECONDS + worst_batch < configured.CELERY_TASK_SOFT_TIME_LIMIT
