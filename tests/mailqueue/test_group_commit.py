"""Group commit at the SMTP door (SPEC §12): concurrent sessions' messages share a transaction,
and none is answered 250 before that transaction has committed."""

import concurrent.futures
import smtplib
import threading
import time

import psycopg
import pytest
from aiosmtpd.smtp import SMTP
from django.db import DatabaseError, connection
from hypothesis import given, settings
from hypothesis import strategies as st

from mailqueue import group_commit, message_insert
from mailqueue.blocking import mail_service_block
from mailqueue.counters import submitted_today
from mailqueue.locks import mail_service_lock_shared_statements
from mailqueue.message_insert import messages_insert
from mailqueue.models import DailyCounter, Door, Message, MessageStatus, State, held_fields, queued_fields
from mailqueue.sender_policy import domain_of
from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from mailqueue.smtpd_protocol import SubmissionSMTP
from mailqueue.state import Actor
from mailqueue.submission import _message_row, message_prepare, messages_store
from tests.factories import HostingFactory
from tests.support import SubmissionDoor

RAW = b"From: shop@example.net\r\nTo: a@example.org\r\nSubject: %s\r\n\r\nHello.\r\n"


@pytest.fixture
def one_in_flight(settings):
    """One transaction at a time: a batch gathers every message that arrived during the last one."""
    settings.SMTP_GROUP_COMMIT_IN_FLIGHT = 1


@pytest.fixture
def door():
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=3, window=60), db_threads=4)
    with SubmissionDoor(addr="127.0.0.1:0", handler=handler) as running:
        yield running


class Gate:
    """Wraps messages_store: the first batch waits at the gate (inside the thread, before its
    transaction) until `open()`; every batch's size is recorded."""

    def __init__(self, monkeypatch, store=messages_store):
        self.sizes: list[int] = []
        self.first_waiting = threading.Event()
        self._open = threading.Event()
        self._store_really = store
        monkeypatch.setattr(group_commit, "messages_store", self._store)

    def _store(self, submissions, **kwargs):
        self.sizes.append(len(submissions))
        if len(self.sizes) == 1:
            self.first_waiting.set()
            assert self._open.wait(10)
        return self._store_really(submissions, **kwargs)

    def open(self):
        self._open.set()


def send(door, hosting, subject: str) -> tuple[int, bytes]:
    with smtplib.SMTP(door.host, door.port, timeout=20) as client:
        client.login(hosting.service_name, hosting.smtp_password)
        client.mail("shop@example.net")
        client.rcpt("a@example.org")
        return client.data(RAW % subject.encode())


@pytest.mark.django_db(transaction=True)
def test_messages_arriving_during_a_commit_share_the_next_one_and_get_their_250_after_it(
    one_in_flight, door, monkeypatch
):
    hosting = HostingFactory()
    gate = Gate(monkeypatch)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = pool.submit(send, door, hosting, "first")
        assert gate.first_waiting.wait(10)
        others = [pool.submit(send, door, hosting, f"other {n}") for n in range(5)]
        concurrent.futures.wait(others, timeout=1.5)
        # The first message is not committed yet: no client has its answer, nothing is stored.
        assert not first.done() and not any(future.done() for future in others)
        assert Message.objects.filter(hosting=hosting).count() == 0
        gate.open()
        replies = [future.result(timeout=20) for future in [first, *others]]

    assert [code for code, _text in replies] == [250] * 6
    stored = dict(Message.objects.filter(hosting=hosting).values_list("pk", "subject"))
    assert sorted(stored.values()) == ["first", *[f"other {n}" for n in range(5)]]
    for (_code, text), subject in zip(replies, ["first", *[f"other {n}" for n in range(5)]], strict=True):
        assert stored[int(text.decode().rsplit(" ", 1)[1])] == subject  # each 250 names its own message
    assert gate.sizes == [1, 5]  # the five that came during the first commit: one transaction


@pytest.mark.django_db(transaction=True)
def test_with_two_in_flight_a_message_is_stored_while_another_transaction_waits(door, monkeypatch, settings):
    assert settings.SMTP_GROUP_COMMIT_IN_FLIGHT == 2  # the default
    hosting = HostingFactory()
    gate = Gate(monkeypatch)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(send, door, hosting, "first")
        assert gate.first_waiting.wait(10)
        second = send(door, hosting, "second")  # its own transaction, committed while the first waits
        assert second[0] == 250
        assert not first.done()
        assert list(Message.objects.filter(hosting=hosting).values_list("subject", flat=True)) == ["second"]
        gate.open()
        assert first.result(timeout=20)[0] == 250
    assert gate.sizes == [1, 1]
    assert sorted(Message.objects.filter(hosting=hosting).values_list("subject", flat=True)) == ["first", "second"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["three round trips", "transaction reading the states"])
def test_no_250_while_the_stored_message_is_not_committed(door, monkeypatch, path):
    """(The one round trip commits in the query that inserts: nothing to wait between.)"""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    hosting = HostingFactory()
    inserted, release = threading.Event(), threading.Event()
    insert_name = "_rows_insert" if path == "three round trips" else "_pipeline_run"
    insert = getattr(message_insert, insert_name)

    def insert_then_wait(*args, **kwargs):
        results = insert(*args, **kwargs)
        inserted.set()
        assert release.wait(10)  # the INSERT is done, the COMMIT not yet
        return results

    def not_this_path(*args, **kwargs):
        raise AssertionError("stored by the other path")

    monkeypatch.setattr(message_insert, insert_name, insert_then_wait)
    if path == "three round trips":
        monkeypatch.setattr("mailqueue.submission.messages_insert", not_this_path)
    else:  # as inside an outer transaction
        monkeypatch.setattr("mailqueue.submission.messages_insert_committed_possible", lambda: False)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply = pool.submit(send, door, hosting, "waits for its commit")
        assert inserted.wait(10)
        concurrent.futures.wait([reply], timeout=1)
        assert not reply.done()
        assert not Message.objects.filter(hosting=hosting).exists()  # not visible: not committed
        release.set()
        assert reply.result(timeout=10)[0] == 250
    assert Message.objects.filter(hosting=hosting).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_refused_message_and_a_failing_one_cost_the_others_nothing(one_in_flight, door, monkeypatch):
    hosting = HostingFactory()

    def store_failing_on_poison(submissions, **kwargs):
        if any(b"poison" in submission.raw for submission in submissions):
            raise DatabaseError("the poison message cannot be stored")
        return messages_store(submissions, **kwargs)

    gate = Gate(monkeypatch, store=store_failing_on_poison)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(send, door, hosting, "first")
        assert gate.first_waiting.wait(10)
        good = pool.submit(send, door, hosting, "good")
        poison = pool.submit(send, door, hosting, "poison")
        too_long = pool.submit(send, door, hosting, "x" * 1200)  # a header line no whitespace can fold
        concurrent.futures.wait([good, poison, too_long], timeout=1.5)
        gate.open()
        codes = {
            name: future.result(timeout=20)[0]
            for name, future in [("first", first), ("good", good), ("poison", poison), ("too long", too_long)]
        }

    assert codes == {"first": 250, "good": 250, "poison": 451, "too long": 554}
    assert gate.sizes[:2] == [1, 2]  # the refused one never reached the transaction; then each alone
    assert sorted(gate.sizes[2:]) == [1, 1]
    assert sorted(Message.objects.filter(hosting=hosting).values_list("subject", flat=True)) == ["first", "good"]


@pytest.mark.django_db
def test_one_transaction_holds_the_mail_of_a_blocked_service_and_queues_the_others():
    active, blocked = HostingFactory(), HostingFactory()
    mail_service_block(hosting=blocked, actor=Actor.api("test"))
    submissions = [
        message_prepare(hosting=hosting, sender="shop@example.net", recipients=["a@example.org"], raw=RAW % b"s")
        for hosting in (active, blocked, active)
    ]
    messages = messages_store(submissions)
    assert [message.status for message in messages] == [MessageStatus.QUEUED, MessageStatus.HELD, MessageStatus.QUEUED]
    assert [message.hosting_id for message in messages] == [active.pk, blocked.pk, active.pk]
    stored = Message.objects.in_bulk([message.pk for message in messages])
    fields = ["status", "held_at", "held_until", "next_attempt_at", "claim_token", "claimed_at"]
    for message, submission in zip(messages, submissions, strict=True):
        # Inserted as queued, then made held before commit: stored exactly as the state says.
        expected = (held_fields if message.hosting_id == blocked.pk else queued_fields)(submission.created_at)
        assert {name: getattr(stored[message.pk], name) for name in fields} == expected
        assert {name: getattr(message, name) for name in fields} == expected
    assert DailyCounter.objects.get(hosting=blocked).held == 1
    assert not DailyCounter.objects.filter(hosting=active).exists()


@pytest.mark.django_db
def test_the_fast_insert_stores_exactly_what_the_orm_would():
    hosting = HostingFactory()
    submission = message_prepare(
        hosting=hosting,
        sender="shop@example.net",
        recipients=["a@example.org", "b@example.org"],
        raw=RAW % "Caf\u00e9 \u2014 r\u00e9servation".encode(),
        door=Door.API,
        client_address="2001:db8::1",
    )
    fast, orm = _message_row(submission), _message_row(submission)
    for message in (fast, orm):  # every kind of field: datetimes, NULLs, JSON, bytes, an address
        for name, value in held_fields(submission.created_at).items():
            setattr(message, name, value)
    messages_insert([fast])
    Message.objects.bulk_create([orm])
    fields = [field.attname for field in Message._meta.concrete_fields if not field.primary_key]
    stored = Message.objects.filter(pk__in=[fast.pk, orm.pk]).in_bulk()
    assert fast.pk != orm.pk
    assert {name: getattr(stored[fast.pk], name) for name in fields} == {
        name: getattr(stored[orm.pk], name) for name in fields
    }
    assert bytes(stored[fast.pk].raw) == submission.raw
    assert connection.vendor in ("postgresql", "sqlite")


@pytest.mark.django_db
def test_the_fast_insert_runs_the_statements_before_it_and_counts_in_the_query_log(django_assert_num_queries):
    hosting = HostingFactory()
    submissions = [
        message_prepare(hosting=hosting, sender="shop@example.net", recipients=["a@example.org"], raw=RAW % b"s")
        for _ in range(3)
    ]
    messages = [_message_row(submission) for submission in submissions]
    statements = mail_service_lock_shared_statements(hosting_ids=[hosting.pk])
    # PostgreSQL: the share lock, the read of the state and one INSERT a row (one round trip);
    # SQLite: the read, then bulk_create's one INSERT.
    expected = len(statements) + (3 if connection.vendor == "postgresql" else 1)
    with django_assert_num_queries(expected):  # in the test's transaction
        results = messages_insert(messages, first=statements)
    assert results[-1] == [(hosting.pk, State.ACTIVE)]
    assert len(results) == len(statements)
    assert sorted(Message.objects.filter(hosting=hosting).values_list("pk", flat=True)) == sorted(
        message.pk for message in messages
    )


def _submissions(hosting, count: int = 2):
    return [
        message_prepare(hosting=hosting, sender="shop@example.net", recipients=["a@example.org"], raw=RAW % b"s")
        for _ in range(count)
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_active_services_are_stored_and_committed_in_three_round_trips(
    django_assert_num_queries,
):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    first, second = HostingFactory(), HostingFactory()
    submissions = _submissions(first) + _submissions(second)
    # On a connection that has not answered yet: BEGIN, two share locks, the check (one round
    # trip); four INSERTs (the second); COMMIT (the third). The same statements in one round trip
    # on a connection that just answered (test_message_insert).
    with django_assert_num_queries(1 + 2 + 1 + 4 + 1) as queries:
        messages = messages_store(submissions)
    assert queries.captured_queries[0]["sql"] == "BEGIN" and queries.captured_queries[-1]["sql"] == "COMMIT"
    assert {message.status for message in Message.objects.filter(pk__in=[m.pk for m in messages])} == {
        MessageStatus.QUEUED
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_blocked_service_refuses_the_check_and_its_mail_is_held(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    active, blocked = HostingFactory(), HostingFactory()
    mail_service_block(hosting=blocked, actor=Actor.api("test"))
    answers = []
    committed = message_insert.messages_insert_committed

    def spy(*args, **kwargs):
        answers.append(committed(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr("mailqueue.submission.messages_insert_committed", spy)
    messages = messages_store(_submissions(active) + _submissions(blocked))
    assert answers == [False]  # refused, rolled back: stored by the transaction reading the states
    statuses = dict(Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("hosting_id", "status"))
    assert statuses == {active.pk: MessageStatus.QUEUED, blocked.pk: MessageStatus.HELD}
    assert Message.objects.count() == 4
    assert DailyCounter.objects.get(hosting=blocked).held == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_and_the_messages_stored_once():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    submissions = _submissions(HostingFactory(), 3)
    connection.ensure_connection()
    dead = connection.connection.info.backend_pid
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dead])
    time.sleep(0.2)
    messages = messages_store(submissions)
    assert connection.connection.info.backend_pid != dead
    assert Message.objects.filter(hosting=submissions[0].hosting).count() == 3
    assert all(message.pk for message in messages)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_error_while_the_rows_are_made_leaves_no_transaction_open(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    submissions = _submissions(HostingFactory(), 2)

    def broken_row(message, plan, db):
        raise RuntimeError("a value the row cannot hold")

    monkeypatch.setattr("mailqueue.message_insert._row", broken_row)  # after BEGIN and the locks
    with pytest.raises(RuntimeError):
        messages_store(submissions)
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert not Message.objects.exists()


def _dsn() -> str:
    settings_dict = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        password=settings_dict["PASSWORD"],
    )


dot_atom = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\.[A-Za-z0-9_-]{1,5}){0,2}", fullmatch=True)
host = st.from_regex(r"[A-Za-z0-9-]{1,8}(\.[A-Za-z0-9-]{1,6}){0,3}", fullmatch=True)
parameters = st.sampled_from(["", " SIZE=1000", "  BODY=8BITMIME", " SIZE=12 BODY=7BIT", "X", " (comment) SIZE=1"])


@settings(max_examples=400)
@given(local=dot_atom, domain=host, rest=parameters, space=st.sampled_from(["", " "]))
def test_the_quick_address_reading_gives_what_aiosmtpd_gives(local, domain, rest, space):
    protocol = SubmissionSMTP.__new__(SubmissionSMTP)  # its _getaddr needs no connection
    arg = f"{space}<{local}@{domain}>{rest}"
    assert SubmissionSMTP._getaddr(protocol, arg) == SMTP._getaddr(protocol, arg)


def _slow_domain_of(address: str) -> str:
    from hosting.names import ServiceNameError, service_name_normalize

    domain = address.strip().strip("<>").rpartition("@")[2]
    try:
        return service_name_normalize(domain) if domain else ""
    except ServiceNameError:
        return domain.lower()


@settings(max_examples=500)
@given(domain=st.text(alphabet="abXY09-.", max_size=30) | st.sampled_from(["xn--bcher-kva.fr", "ab--cd.com", "a.123"]))
def test_the_ascii_domain_shortcut_gives_the_canonical_domain(domain):
    assert domain_of(f"me@{domain}") == _slow_domain_of(f"me@{domain}")


@pytest.mark.django_db(transaction=True)
def test_the_door_counts_its_messages_in_the_days_submitted_counter_after_answering(door):
    hosting = HostingFactory()
    before = submitted_today()
    assert send(door, hosting, "one")[0] == 250
    assert send(door, hosting, "two")[0] == 250
    deadline = time.monotonic() + 5
    while submitted_today() < before + 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # counted in the database thread once the session has its 250
    assert submitted_today() == before + 2


def counting(monkeypatch) -> list[int]:
    """Each increment of the submitted counter made by the door, made for real too."""
    counted: list[int] = []
    increment = group_commit.submitted_today_incr

    def recorded(count: int) -> None:
        increment(count)
        counted.append(count)  # after the increment: a test that sees it may read the counter

    monkeypatch.setattr(group_commit, "submitted_today_incr", recorded)
    return counted


@pytest.mark.django_db(transaction=True)
def test_batches_committed_within_the_counting_interval_move_the_submitted_counter_once(door, monkeypatch):
    monkeypatch.setattr(group_commit, "COUNT_EVERY_SECONDS", 4)  # long enough for three sessions on a busy CI
    counted = counting(monkeypatch)
    hosting = HostingFactory()
    before = submitted_today()

    for subject in ("one", "two", "three"):
        assert send(door, hosting, subject)[0] == 250
    assert counted == []  # answered first, counted later
    deadline = time.monotonic() + 15
    while not counted and time.monotonic() < deadline:
        time.sleep(0.05)

    assert counted == [3]
    assert submitted_today() == before + 3


@pytest.mark.django_db(transaction=True)
def test_a_closing_door_counts_what_it_had_not_counted_yet(monkeypatch):
    monkeypatch.setattr(group_commit, "COUNT_EVERY_SECONDS", 60)
    counted = counting(monkeypatch)
    hosting = HostingFactory()
    before = submitted_today()
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=3, window=60), db_threads=2)

    with SubmissionDoor(addr="127.0.0.1:0", handler=handler) as running:
        assert send(running, hosting, "one")[0] == 250
        assert send(running, hosting, "two")[0] == 250
        assert counted == []

    assert counted == [2]
    assert submitted_today() == before + 2
