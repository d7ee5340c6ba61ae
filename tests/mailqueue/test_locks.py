"""Transitions are serialised per hosting (SPEC §3): many threads at one hosting on PostgreSQL.

Each thread has its own database connection, so these run with transaction=True and each
thread closes its connection when done.
"""

import random
import threading
import time

import pytest
from django.db import connection, transaction

from mailqueue import message_insert
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.models import Event, MailService, Message, MessageStatus, RelayHandoff
from mailqueue.purge import mail_service_purge_cancel, mail_service_purge_request
from mailqueue.state import Actor, MailServiceError
from mailqueue.submission import message_accept
from tests.conftest import requires_postgres
from tests.factories import HostingFactory, MessageFactory, UserFactory

pytestmark = [requires_postgres, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8
ACTIONS_PER_THREAD = 25
ACTIONS = {
    "block": mail_service_block,
    "unblock": mail_service_unblock,
    "purge": mail_service_purge_request,
    "cancel_purge": mail_service_purge_cancel,
}


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_threads(count: int, target) -> list:
    """Run `target(index)` in `count` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors = []

    def body(index):
        try:
            barrier.wait(timeout=10)
            target(index)
        except BaseException as error:  # surfaced in the test's thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]
    return threads


def test_concurrent_transitions_are_explained_by_a_serial_order(settings):
    settings.PURGE_GRACE_SECONDS = 3600  # no purge becomes due while the threads run
    hosting = HostingFactory()
    operator = UserFactory(is_staff=True)
    actors = [Actor.operator(operator), Actor.api("race-key")]  # both may do all four actions
    successes = [0] * THREADS
    refusals = [0] * THREADS

    def worker(index):
        rng = random.Random(index)
        for _ in range(ACTIONS_PER_THREAD):
            action = rng.choice(list(ACTIONS))
            try:
                ACTIONS[action](hosting=hosting, actor=rng.choice(actors))
            except MailServiceError:
                refusals[index] += 1
            else:
                successes[index] += 1

    run_threads(THREADS, worker)

    events = list(Event.objects.filter(hosting=hosting).order_by("id"))
    assert sum(successes) + sum(refusals) == THREADS * ACTIONS_PER_THREAD
    assert len(events) == sum(successes)
    assert sum(successes) > 3 and sum(refusals) > 3  # the run exercised both outcomes
    previous = "active"
    for event in events:
        assert event.from_state == previous, f"event {event.id} {event.action} interleaved"
        assert (event.from_state, event.to_state) in {
            ("active", "blocked"),
            ("blocked", "active"),
            ("blocked", "purging"),
            ("purging", "blocked"),
        }
        previous = event.to_state
    assert MailService.objects.get(hosting=hosting).state == previous


@pytest.mark.parametrize("round_trips", ["one", "three"])
def test_no_message_is_queued_after_a_block_commits(monkeypatch, round_trips):
    """Either way a submission is stored outside a transaction (`message_insert`): in one round
    trip (a connection that just answered), or in three (TRUSTED_IDLE_SECONDS 0)."""
    if round_trips == "three":
        monkeypatch.setattr(message_insert, "TRUSTED_IDLE_SECONDS", 0.0)
    simple_runs = []
    one_round_trip = message_insert._one_round_trip

    def counted(*args, **kwargs):
        simple_runs.append(1)
        return one_round_trip(*args, **kwargs)

    monkeypatch.setattr(message_insert, "_one_round_trip", counted)
    hosting = HostingFactory()
    submitters = 6
    after_block_each = 5  # each submitter goes on until it started this many after the block
    max_each = 1000  # safety net if the block never gets through
    raw = b"Subject: race\r\n\r\nbody\r\n"
    block_committed = threading.Event()
    block_committed_at = []  # monotonic time once mail_service_block returned (committed)
    accepted = []  # (started_at, status) per accepted message
    accepted_lock = threading.Lock()
    enough_before_block = threading.Event()

    def worker(index):
        if index == submitters:  # the blocker
            enough_before_block.wait(timeout=10)
            mail_service_block(hosting=hosting, actor=Actor.api("blocker"))
            block_committed_at.append(time.monotonic())
            block_committed.set()
            return
        started_after_block = 0
        for _ in range(max_each):
            if block_committed.is_set():
                started_after_block += 1
            started_at = time.monotonic()
            message = message_accept(
                hosting=hosting, sender="www-data@test.example", recipients=["to@example.org"], raw=raw
            )
            with accepted_lock:
                accepted.append((started_at, message.status))
                if len(accepted) >= 20:
                    enough_before_block.set()
            if started_after_block >= after_block_each:
                break

    run_threads(submitters + 1, worker)

    (committed,) = block_committed_at
    queued_at_accept = [status for _started, status in accepted if status == MessageStatus.QUEUED]
    after_block = [status for started, status in accepted if started > committed]
    assert queued_at_accept, "no submission came before the block: the race was not exercised"
    assert len(after_block) >= submitters * after_block_each
    assert set(after_block) == {MessageStatus.HELD}
    # The block held every message queued before it; none is queued now, none was lost.
    assert not Message.objects.filter(hosting=hosting, status=MessageStatus.QUEUED).exists()
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == len(accepted)
    assert Event.objects.get(hosting=hosting, action="block").message_count == len(queued_at_accept)
    # Most submissions of "one" took one round trip (a thread's first cannot), none of "three".
    assert len(simple_runs) > len(accepted) // 2 if round_trips == "one" else simple_runs == []


def wait_for_a_blocked_backend(timeout: float = 10) -> None:
    """Return once some other backend of this database waits for a lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("nobody waited for a lock")


def test_a_block_waiting_for_a_delivery_claim_does_not_deadlock(settings):
    """The claim locks a queued message, then records its hand-off (a row referencing the
    hosting); the block that waits for that message must not hold a lock the claim needs."""
    hosting = HostingFactory()
    queued = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    claim_has_message = threading.Event()
    block_is_waiting = threading.Event()
    outcomes = {}

    def worker(index):
        if index == 0:  # the delivery claim, as mailqueue.delivery.delivery_claim does it
            with transaction.atomic():
                list(Message.objects.select_for_update().filter(pk=queued.pk))
                claim_has_message.set()
                block_is_waiting.wait(timeout=10)
                Message.objects.filter(pk=queued.pk).update(status=MessageStatus.SENDING)
                RelayHandoff.objects.create(hosting=hosting)
            outcomes["claim"] = "committed"
        elif index == 1:
            claim_has_message.wait(timeout=10)
            mail_service_block(hosting=hosting, actor=Actor.api("blocker"))
            outcomes["block"] = "committed"
        else:  # the referee: lets the claim go on once the block waits for its message
            claim_has_message.wait(timeout=10)
            wait_for_a_blocked_backend()
            block_is_waiting.set()

    run_threads(3, worker)

    assert outcomes == {"claim": "committed", "block": "committed"}
    assert MailService.objects.get(hosting=hosting).state == "blocked"
    # The claimed message was already with the relay's worker: the block leaves it alone.
    assert Message.objects.get(pk=queued.pk).status == MessageStatus.SENDING


def test_advisory_locks_of_many_hostings_are_one_statement_taken_in_id_order():
    """A claim of many hostings locks them in one statement, in id order as before (one order
    everywhere: no deadlock): while another transaction holds the last one's lock, the first
    ones are already held and the statement waits for the last."""
    from django.test.utils import CaptureQueriesContext

    from mailqueue.locks import LockPurpose, advisory_lock

    first, second, last = sorted([HostingFactory().pk for _ in range(3)])
    key_of = {pk: (int(LockPurpose.HOURLY_LIMIT) << 32) + pk for pk in (first, second, last)}
    holding_last, done = threading.Event(), threading.Event()
    held_while_waiting = {}

    def worker(index):
        if index == 0:  # holds the last hosting's lock until the referee has looked
            with transaction.atomic():
                advisory_lock(LockPurpose.HOURLY_LIMIT, [last])
                holding_last.set()
                done.wait(timeout=10)
        elif index == 1:
            holding_last.wait(timeout=10)
            with transaction.atomic(), CaptureQueriesContext(connection) as queries:
                advisory_lock(LockPurpose.HOURLY_LIMIT, [last, first, second, first])
            held_while_waiting["statements"] = len(queries)
        else:  # the referee
            holding_last.wait(timeout=10)
            wait_for_a_blocked_backend()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT (classid::bigint << 32) + objid::bigint, granted FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                held_while_waiting["locks"] = sorted(cursor.fetchall())
            done.set()

    run_threads(3, worker)

    # The last hosting's: granted to the holder, waited for by the claim; the others granted.
    assert held_while_waiting["locks"] == sorted(
        [(key_of[first], True), (key_of[second], True), (key_of[last], True), (key_of[last], False)]
    )
    assert held_while_waiting["statements"] == 1
