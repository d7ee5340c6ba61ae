"""The SMTP door in several processes (SPEC §12): one listening socket, forked workers.

A Python process runs on one core at most (the GIL), and under load the door's is busy all the
time: `runsmtpd --processes N` opens the socket, then forks N workers, each a whole door (its
event loop, its database threads, its group commit) accepting on that socket; the kernel hands
each new connection to a worker waiting in accept. What a worker counts in its own memory
(connections per client address, failed AUTH) is counted against its share of the limit
(`limit_share`). The parent passes SIGTERM and SIGINT on (each worker drains as a lone door
does), and starts again a worker that ended while it was not told to stop.

The kernel wakes every worker on a new connection and the first awake takes it, or all that are
waiting: four clients connecting at once were served two and two in 5 tries of 10, three and one
in 3, four and none in 2, the busy worker the door's limit. So the workers share their counts of
open connections (`SessionCounts`) and one with more than another lets that other take the next
connection (`smtpd_server.BalancedServer`).
"""

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import time

log = logging.getLogger(__name__)

# A worker that ends sooner than this after its start is started again only after this long:
# a door failing at start (database down, bad settings) does not fork in a loop.
RESTART_PAUSE_SECONDS = 1.0


# A worker with more connections than another waits at most this long for that other to take a
# new connection, then takes it itself (the other may be busy, or starting again).
ACCEPT_DEFER_SECONDS = 0.02
_VACANT = 2**31 - 1  # the count of a slot whose worker has ended: never the fewest


class SessionCounts:
    """The open connections of each door worker, in memory the forked workers share (one integer
    a worker, written by that worker alone)."""

    def __init__(self, processes: int):
        self._counts = multiprocessing.RawArray("i", [_VACANT] * processes)
        self.slot = 0

    def slot_take(self, slot: int) -> None:
        """In a worker, before it serves: its slot, counting from none."""
        self.slot = slot
        self._counts[slot] = 0

    def slot_vacate(self, slot: int) -> None:
        """In the parent, once the worker of `slot` has ended."""
        self._counts[slot] = _VACANT

    def add(self, delta: int) -> None:
        self._counts[self.slot] += delta

    def ahead(self) -> bool:
        """Whether another worker holds fewer connections than this one."""
        mine = self._counts[self.slot]
        return any(count < mine for count in self._counts)

    async def turn(self) -> None:
        """Return once no other worker holds fewer connections, or after ACCEPT_DEFER_SECONDS."""
        deadline = time.monotonic() + ACCEPT_DEFER_SECONDS
        while self.ahead() and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)


def limit_share(limit: int, processes: int) -> int:
    """One worker's share of a limit counted per process (0: no limit), rounded up."""
    return math.ceil(limit / processes) if limit else 0


def listening_socket(host: str, port: int) -> socket.socket:
    """The door's socket, bound and listening (port 0 picks a free one), for the workers to share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)
    return sock


def workers_run(*, processes: int, worker, listening: socket.socket, counts: SessionCounts | None = None) -> int:
    """Fork `processes` workers, each running `worker()` (its exit status) on the `listening`
    socket, until SIGTERM or SIGINT, which each worker is given in turn; once all have ended, 0,
    or the first non-zero status of a worker that ended after the stop. Each worker has a slot of
    `counts`, taken before `worker()` runs, vacated when it ends.

    On the stop the parent closes its own copy of the socket: once the workers have closed
    theirs, a new client is refused at once instead of waiting in the kernel's queue."""
    children: dict[int, tuple[float, int]] = {}  # pid: when it started, its slot
    stopping = False
    status = 0

    def start(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: its event loop installs its own handlers
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                if counts is not None:
                    counts.slot_take(slot)
                code = worker()
            except BaseException:
                log.exception("SMTP door worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code or 0)
        children[pid] = (time.monotonic(), slot)

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        listening.close()  # no worker is started again
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(processes):
            start(slot)
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            child = children.pop(pid, None)
            if child is None:
                continue
            started, slot = child
            if counts is not None:
                counts.slot_vacate(slot)
            code = os.waitstatus_to_exitcode(wait_status)
            if stopping:
                status = status or (code if code > 0 else 0)
                continue
            log.warning("SMTP door worker %d ended (status %d): starting another", pid, code)
            if time.monotonic() - started < RESTART_PAUSE_SECONDS:
                time.sleep(RESTART_PAUSE_SECONDS)
            if not stopping:
                start(slot)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
