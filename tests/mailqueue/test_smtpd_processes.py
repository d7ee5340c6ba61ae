"""The door workers' shared counts of open connections (`smtpd_processes.SessionCounts`): a
worker with more connections than another lets it take the next, for a short while at most."""

import asyncio
import time

from mailqueue import smtpd_processes
from mailqueue.smtpd_processes import SessionCounts


def worker(counts: SessionCounts, slot: int) -> SessionCounts:
    """`counts` as the worker of `slot` sees it (the same shared memory, another slot)."""
    view = SessionCounts.__new__(SessionCounts)
    view._counts, view.slot = counts._counts, slot
    return view


def test_a_worker_is_ahead_while_another_holds_fewer_connections():
    counts = SessionCounts(3)
    first, second, third = (worker(counts, slot) for slot in range(3))
    for view, slot in ((first, 0), (second, 1), (third, 2)):
        view.slot_take(slot)

    first.add(1)
    assert (first.ahead(), second.ahead(), third.ahead()) == (True, False, False)
    second.add(1)
    third.add(1)
    assert not any(view.ahead() for view in (first, second, third))
    third.add(-1)  # a session of the third ended
    assert (first.ahead(), second.ahead(), third.ahead()) == (True, True, False)


def test_a_vacant_slot_is_never_the_one_with_fewest():
    counts = SessionCounts(2)
    first = worker(counts, 0)
    first.slot_take(0)
    first.add(5)
    assert not first.ahead()  # slot 1 not started yet
    second = worker(counts, 1)
    second.slot_take(1)
    assert first.ahead()
    counts.slot_vacate(1)  # its worker ended: the parent starts another
    assert not first.ahead()


def two_workers(*, busy_connections: int) -> tuple[SessionCounts, SessionCounts]:
    """Two workers' views, the first holding `busy_connections`, the second none."""
    counts = SessionCounts(2)
    busy, idle = worker(counts, 0), worker(counts, 1)
    busy.slot_take(0)
    idle.slot_take(1)
    busy.add(busy_connections)
    return busy, idle


def test_the_turn_waits_for_another_worker_then_gives_up(monkeypatch):
    monkeypatch.setattr(smtpd_processes, "ACCEPT_DEFER_SECONDS", 0.2)
    busy, idle = two_workers(busy_connections=2)

    async def turns():
        started = time.monotonic()
        await idle.turn()  # nobody holds fewer: at once
        at_once = time.monotonic() - started
        started = time.monotonic()
        await busy.turn()  # the idle one never takes a connection: given up after the deferral
        return at_once, time.monotonic() - started

    at_once, deferred = asyncio.run(turns())
    assert at_once < 0.2  # not deferred
    assert 0.2 <= deferred < 5


def test_the_turn_comes_as_soon_as_the_other_worker_catches_up():
    busy, idle = two_workers(busy_connections=1)

    async def catching_up():
        asyncio.get_running_loop().call_later(0.002, idle.add, 1)
        await busy.turn()
        return idle.ahead(), busy.ahead()

    assert asyncio.run(catching_up()) == (False, False)
