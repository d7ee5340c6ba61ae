"""The door's store in one round trip (SPEC §12): on PostgreSQL, outside a transaction, a batch of
small messages on a connection that answered within TRUSTED_IDLE_SECONDS goes in one simple
query from BEGIN to COMMIT; any other batch in three round trips (BEGIN and the checks, the
INSERTs bound on the server, COMMIT).

The values are written into the SQL text by psycopg on the client there: every byte of a raw
message and every awkward character of its texts must come back as it was stored.
"""

import psycopg
import pytest
from django.db import connection

from mailqueue import message_insert
from mailqueue.blocking import mail_service_block
from mailqueue.models import Message, MessageStatus
from mailqueue.state import Actor
from mailqueue.submission import message_prepare, messages_store
from tests.conftest import requires_postgres
from tests.factories import HostingFactory
from tests.support import shared_database_url

pytestmark = [requires_postgres, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RAW = b"From: shop@example.net\r\nTo: a@example.org\r\nSubject: %s\r\n\r\nHello.\r\n"


@pytest.fixture
def paths(monkeypatch) -> list[str]:
    """Which way each batch was stored outside a transaction: "one" round trip or "three"."""
    taken: list[str] = []
    one, three = message_insert._one_round_trip, message_insert._three_round_trips

    def in_one(*args, **kwargs):
        taken.append("one")
        return one(*args, **kwargs)

    def in_three(*args, **kwargs):
        taken.append("three")
        return three(*args, **kwargs)

    monkeypatch.setattr(message_insert, "_one_round_trip", in_one)
    monkeypatch.setattr(message_insert, "_three_round_trips", in_three)
    return taken


def submissions(hosting, count: int = 2, *, raw: bytes = RAW % b"s"):
    return [
        message_prepare(hosting=hosting, sender="shop@example.net", recipients=["a@example.org"], raw=raw)
        for _ in range(count)
    ]


def test_a_connection_that_just_answered_stores_the_next_small_batch_in_one_round_trip(paths):
    hosting = HostingFactory()
    first = messages_store(submissions(hosting))  # a connection not yet seen to answer: three round trips
    second = messages_store(submissions(hosting, 3))

    assert paths == ["three", "one"]
    stored = Message.objects.filter(hosting=hosting)
    assert sorted(stored.values_list("pk", flat=True)) == sorted(message.pk for message in first + second)
    assert set(stored.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # committed


@pytest.mark.parametrize(("copies", "path"), [(1, "one"), (200, "three")])
def test_every_byte_and_awkward_text_comes_back_as_stored(paths, copies, path):
    """Through the simple query (bound on the client) and, large, through the three round trips."""
    hosting = HostingFactory()
    messages_store(submissions(hosting, 1))
    every_byte = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"")  # NUL included
    body = b"\r\n".join([every_byte] * copies)  # lines of 254 octets
    subject = "l'été; DROP TABLE x; -- %s %(a)s $1 \\ \" 😀".encode()
    raw = b"From: shop@example.net\r\nSubject: " + subject + b"\r\nMessage-ID: <a'b\\c@x>\r\n\r\n" + body + b"\r\n"
    [submission] = [
        message_prepare(hosting=hosting, sender="o'brien@example.net", recipients=["d'arc@example.org"], raw=raw)
    ]
    [message] = messages_store([submission])

    assert paths == ["three", path]
    stored = Message.objects.get(pk=message.pk)
    assert bytes(stored.raw) == submission.raw
    assert (stored.subject, stored.message_id, stored.sender) == (
        submission.subject,
        "<a'b\\c@x>",
        "o'brien@example.net",
    )
    assert stored.subject.startswith("l'été; DROP TABLE x; -- %s %(a)s $1 \\")
    assert [recipient["address"] for recipient in stored.recipients] == ["d'arc@example.org"]


def test_a_large_batch_takes_three_round_trips_even_on_a_connection_that_just_answered(paths):
    hosting = HostingFactory()
    messages_store(submissions(hosting, 1))
    line = b"A line of a large message, as long as a quoted-printable line may be at most here.\r\n"
    large = RAW % b"large" + line * (message_insert.SIMPLE_QUERY_MAX_BYTES // len(line))
    messages_store(submissions(hosting, 1, raw=large))
    messages_store(submissions(hosting, 1))

    assert paths == ["three", "three", "one"]
    assert Message.objects.filter(hosting=hosting).count() == 3


def test_a_connection_idle_longer_than_the_trusted_time_takes_three_round_trips(paths, monkeypatch):
    hosting = HostingFactory()
    monkeypatch.setattr(message_insert, "TRUSTED_IDLE_SECONDS", 0.0)
    messages_store(submissions(hosting))
    messages_store(submissions(hosting))

    assert paths == ["three", "three"]


def test_in_one_round_trip_a_blocked_services_check_refuses_and_its_mail_is_held(paths):
    active, blocked = HostingFactory(), HostingFactory()
    mail_service_block(hosting=blocked, actor=Actor.api("test"))
    messages_store(submissions(active, 1))
    messages = messages_store(submissions(active) + submissions(blocked))

    # The one round trip refused (its check divided by zero); the transaction reading the states
    # stored them (`messages_insert`), the blocked service's held.
    assert paths == ["three", "one"]
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    statuses = {message.pk: message.status for message in Message.objects.filter(pk__in=[m.pk for m in messages])}
    assert [statuses[message.pk] for message in messages] == [
        MessageStatus.QUEUED,
        MessageStatus.QUEUED,
        MessageStatus.HELD,
        MessageStatus.HELD,
    ]


def test_a_connection_the_server_ended_within_the_trusted_second_is_replaced_before_its_batch(paths, monkeypatch):
    """The server said it ended the session (FATAL, then the end of the stream): that is read
    before the one round trip, so the batch takes the three, whose first is refused on the dead
    connection and sent again on a new one."""
    monkeypatch.setattr(message_insert, "TRUSTED_IDLE_SECONDS", 60.0)  # however slow this machine
    hosting = HostingFactory()
    messages_store(submissions(hosting, 1))
    batch = submissions(hosting, 2, raw=RAW % b"after")  # checked first (the sender policy reads the database)
    dead = connection.connection.info.backend_pid
    with psycopg.connect(shared_database_url(), autocommit=True) as other:  # as an operator or a failover
        other.execute("SELECT pg_terminate_backend(%s, 10000)", [dead])  # returns once the backend has gone

    messages_store(batch)

    assert paths == ["three", "three"]
    assert connection.connection.info.backend_pid != dead
    assert list(Message.objects.filter(hosting=hosting).order_by("pk").values_list("subject", flat=True)) == [
        "s",
        "after",
        "after",
    ]
