"""Each message made ready while the relay reads the content of the one before
(`mailqueue.delivery_ahead`), against a real relay: the work overlaps the relay's, and what goes
wrong making a message ahead goes wrong at that message's turn, as it did without the overlap."""

import pytest

from mailqueue import delivery, delivery_ahead
from mailqueue import relay as relay_module
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import MessageStatus
from tests.factories import HostingFactory
from tests.mailqueue.test_delivery import counters, queue_message, relay, status_of  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_each_message_is_made_ready_while_the_relay_reads_the_one_before(relay, monkeypatch):  # noqa: F811
    hosting = HostingFactory()
    messages = [queue_message(hosting) for _ in range(4)]
    sending: list[int] = []  # the message whose content the relay is reading, if any
    made: list[tuple[int, list[int]]] = []
    real_send, real_ready = relay_module.SmtpRelay.send, delivery_ahead.message_ready

    def send(self, **arguments):
        sending.append(int(arguments["sender"].split("-")[1]))  # the return path names the message
        try:
            return real_send(self, **arguments)
        finally:
            sending.pop()

    def message_ready(message, **arguments):
        made.append((message.pk, list(sending)))
        return real_ready(message, **arguments)

    monkeypatch.setattr(relay_module.SmtpRelay, "send", send)
    monkeypatch.setattr(delivery, "message_ready", message_ready)

    result = delivery_run_batch()

    assert result.sent == 4
    ids = [message.pk for message in messages]
    # The first is made before anything is sent; each other one inside the send of the one before.
    assert made == [(ids[0], []), *[(ids[n], [ids[n - 1]]) for n in range(1, 4)]]
    assert sorted(relay.received_ids()) == sorted(message.message_id for message in messages)


def test_an_error_making_a_message_ahead_is_raised_at_its_turn(relay, monkeypatch):  # noqa: F811
    hosting = HostingFactory()
    first, second, third = (queue_message(hosting) for _ in range(3))
    real_bytes_of = delivery_ahead.Outgoing.bytes_of

    def bytes_of(self, message, raw):
        if message.pk == second.pk:
            raise RuntimeError("signing failed")
        return real_bytes_of(self, message, raw)

    monkeypatch.setattr(delivery_ahead.Outgoing, "bytes_of", bytes_of)

    with pytest.raises(RuntimeError, match="signing failed"):
        delivery_run_batch()

    # The first was delivered and recorded; the second and third never reached the relay and
    # stay claimed, to be recovered (retries.claims_recover) as after any crash of a worker.
    assert relay.received_ids() == [first.message_id]
    assert [status_of(message) for message in (first, second, third)] == [
        MessageStatus.SENT,
        MessageStatus.SENDING,
        MessageStatus.SENDING,
    ]
    assert counters(hosting).sent == 1
