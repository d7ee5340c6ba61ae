"""Delivery by real Celery workers to a real SMTP relay: a worker thread end to end, and a worker
process killed with SIGKILL in the middle of a batch (SPEC §4.2: no message lost; a duplicate only
for the message that was in flight; the dead claim recovered once its heartbeat stops)."""

import collections
import os
import signal
import threading
import time

import pytest

from mailqueue import tasks
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import Message, MessageStatus
from mailqueue.retries import claims_recover
from mailqueue.submission import message_accept
from tests.factories import HostingFactory
from tests.mailqueue.test_delivery import LiveRelay, counters, queue_message
from tests.support import as_stored, as_submitted, handoffs_of, return_path_of, wait_until, worker_process


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_an_accepted_message_to_the_relay(celery_worker_live, settings):
    hosting = HostingFactory()
    raw = b"From: app@shop.example\r\nTo: buyer@example.org\r\nSubject: Order 42\r\n\r\nThanks!\r\n"
    with LiveRelay() as relay:
        settings.SMTP_RELAY_URL = relay.url

        message = message_accept(hosting=hosting, sender="app@shop.example", recipients=["buyer@example.org"], raw=raw)

        assert wait_until(lambda: Message.objects.get(pk=message.pk).status == MessageStatus.SENT, timeout=20)
    [received] = relay.received
    # The envelope sender is the message's return path (SPEC §10.1); the From: header is untouched.
    assert (received.mail_from, received.rcpt_tos, as_submitted(as_stored(received.content))) == (
        return_path_of(message),
        ["buyer@example.org"],
        raw,
    )
    message.refresh_from_db()
    assert message.raw is None
    assert counters(hosting).sent == 1


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing(settings, _isolated_celery_queue, tmp_path):
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(12)]
    log = tmp_path / "worker.log"
    settings.DELIVERY_CLAIM_TIMEOUT = 3  # the worker beats every second
    with LiveRelay() as relay:
        settings.SMTP_RELAY_URL = relay.url
        relay.handler.hold_data_after = 7  # batches of 5: the 2nd batch hangs at its 3rd DATA
        with worker_process(
            queue=_isolated_celery_queue,
            log=log,
            SMTP_RELAY_URL=relay.url,
            DELIVERY_BATCH_SIZE="5",
            DELIVERY_BATCH_SIZE_MAX="5",  # every batch of 5, however fast the relay
            DELIVERY_CLAIM_HEARTBEAT="1",
        ) as worker:
            tasks.delivery_run.delay()
            assert relay.handler.waiting.wait(40), log.read_text()
            # Each outcome is committed after the relay's reply: 7 sent, the 8th in flight, 2 not handed over.
            assert wait_until(
                lambda: Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count() == 7, timeout=10
            )
            in_flight = set(
                Message.objects.filter(hosting=hosting, status=MessageStatus.SENDING).values_list(
                    "message_id", flat=True
                )
            )
            # A live worker stuck on a slow relay keeps its claim alive past the timeout.
            time.sleep(settings.DELIVERY_CLAIM_TIMEOUT + 1.5)
            assert claims_recover() == 0
            os.killpg(worker.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            worker.wait(10)
        assert len(in_flight) == 3
        relay.handler.hold_data_after = None
        relay.handler.release.set()

        # The dead claim stops beating: it is recovered once DELIVERY_CLAIM_TIMEOUT has passed.
        recovered = []
        assert wait_until(lambda: recovered.append(claims_recover()) or sum(recovered) == 3, timeout=10, interval=0.2)
        assert time.monotonic() - killed_at <= settings.DELIVERY_CLAIM_TIMEOUT + 2
        while delivery_run_batch().claimed:
            pass

    assert {m.status for m in Message.objects.filter(hosting=hosting)} == {MessageStatus.SENT}
    copies = collections.Counter(relay.received_ids())
    assert set(copies) == {message.message_id for message in messages}
    duplicated = {message_id for message_id, count in copies.items() if count > 1}
    assert duplicated <= in_flight
    assert len(duplicated) <= 1  # at most the message in flight when the worker died
    # The recovered messages gave their places in the hourly limit back: one slot per message.
    assert handoffs_of(hosting) == len(messages)
    assert counters(hosting).sent == 12


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_stalled_worker_whose_claim_was_recovered_stops_sending_and_gives_no_slot_back_twice(settings):
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(4)]
    settings.DELIVERY_CLAIM_HEARTBEAT = 0.2
    with LiveRelay() as relay:
        settings.SMTP_RELAY_URL = relay.url
        relay.handler.hold_data_after = 0  # the first DATA hangs: the worker stalls
        results = []
        worker = threading.Thread(target=lambda: results.append(delivery_run_batch()))
        worker.start()
        assert relay.handler.waiting.wait(20)
        # Its heartbeat stopped (say): the sweep takes the claim back, with its 4 slots.
        assert claims_recover(older_than=0) == 4
        assert handoffs_of(hosting) == 0
        time.sleep(3 * settings.DELIVERY_CLAIM_HEARTBEAT)  # the stall goes on: the heartbeat sees its claim gone
        relay.handler.hold_data_after = None
        relay.handler.release.set()
        worker.join(20)
        [stalled] = results
        # The message in flight went out; the stalled worker noticed its claim was gone and sent no more.
        assert len(relay.received_ids()) == 1
        assert stalled.sent == 0
        assert handoffs_of(hosting) == 0  # nothing given back twice
        while delivery_run_batch().claimed:
            pass

    assert {m.status for m in Message.objects.filter(hosting=hosting)} == {MessageStatus.SENT}
    copies = collections.Counter(relay.received_ids())
    assert set(copies) == {message.message_id for message in messages}
    assert sum(copies.values()) == 5  # the one in flight, twice
    assert handoffs_of(hosting) == 4
