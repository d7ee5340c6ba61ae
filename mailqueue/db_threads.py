"""A pool of threads for the SMTP doors' database work, so the event loop never waits on it.

Each call gets a fresh or healthy connection (`close_old_connections` around it, the health
check without a round trip where it can: `connections_ready`); `close()` closes every thread's
connection before the threads stop.
"""

import asyncio
import concurrent.futures
import select
import threading

from django.db import close_old_connections, connections
from psycopg import pq


def connections_ready() -> None:
    """`close_old_connections`, then each PostgreSQL connection idle with nothing unread on its
    socket is taken as healthy without Django's check (a `SELECT 1` before the first statement,
    CONN_HEALTH_CHECKS), which cost a round trip per group commit. A server that ended the
    session (a restart, `pg_terminate_backend`) sends its error and closes: the socket is then
    readable, Django's check runs, fails, and the connection is made anew."""
    close_old_connections()
    for wrapper in connections.all(initialized_only=True):
        if wrapper.vendor == "postgresql" and wrapper.connection is not None and not wrapper.health_check_done:
            wrapper.health_check_done = _quiet(wrapper.connection)


def _quiet(raw) -> bool:
    """An open, idle psycopg connection with nothing from the server waiting to be read."""
    if raw.closed or raw.pgconn.status != pq.ConnStatus.OK:
        return False
    if raw.pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _writable, _failed = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class DatabaseThreads:
    def __init__(self, *, size: int, name: str):
        self.size = size
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, function, *args):
        """`function(*args)` in one of the threads; its result, or its exception."""

        def call():
            connections_ready()
            try:
                return function(*args)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """Close every worker thread's database connection, then stop the threads."""
        barrier = threading.Barrier(self.size)

        def close_connection():
            connections.close_all()
            # Each worker holds here until all have closed, so every thread runs this once.
            barrier.wait(timeout=10)

        for _ in range(self.size):
            self._executor.submit(close_connection)
        self._executor.shutdown(wait=True)
