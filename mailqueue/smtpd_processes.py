"""The SMTP door in several processes (SPEC §12): one listening socket, forked workers.

A Python process runs on one core at most (the GIL), and under load the door's is busy all the
time: `runsmtpd --processes N` opens the socket, then forks N workers, each a whole door (its
event loop, its database threads, its group commit) accepting on that socket; the kernel hands
each new connection to a worker waiting in accept. What a worker counts in its own memory
(connections per client address, failed AUTH) is counted against its share of the limit
(`limit_share`). The parent passes SIGTERM and SIGINT on (each worker drains as a lone door
does), and starts again a worker that ended while it was not told to stop.
"""

import contextlib
import logging
import math
import os
import signal
import socket
import time

log = logging.getLogger(__name__)

# A worker that ends sooner than this after its start is started again only after this long:
# a door failing at start (database down, bad settings) does not fork in a loop.
RESTART_PAUSE_SECONDS = 1.0


def limit_share(limit: int, processes: int) -> int:
    """One worker's share of a limit counted per process (0: no limit), rounded up."""
    return math.ceil(limit / processes) if limit else 0


def listening_socket(host: str, port: int) -> socket.socket:
    """The door's socket, bound and listening (port 0 picks a free one), for the workers to share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)
    return sock


def workers_run(*, processes: int, worker, listening: socket.socket) -> int:
    """Fork `processes` workers, each running `worker()` (its exit status) on the `listening`
    socket, until SIGTERM or SIGINT, which each worker is given in turn; once all have ended, 0,
    or the first non-zero status of a worker that ended after the stop.

    On the stop the parent closes its own copy of the socket: once the workers have closed
    theirs, a new client is refused at once instead of waiting in the kernel's queue."""
    children: dict[int, float] = {}  # pid: when it started
    stopping = False
    status = 0

    def start() -> None:
        pid = os.fork()
        if pid == 0:  # the worker: its event loop installs its own handlers
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = worker()
            except BaseException:
                log.exception("SMTP door worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code or 0)
        children[pid] = time.monotonic()

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        listening.close()  # no worker is started again
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(processes):
            start()
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if stopping:
                status = status or (code if code > 0 else 0)
                continue
            log.warning("SMTP door worker %d ended (status %d): starting another", pid, code)
            if time.monotonic() - started < RESTART_PAUSE_SECONDS:
                time.sleep(RESTART_PAUSE_SECONDS)
            if not stopping:
                start()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
