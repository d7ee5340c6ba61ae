"""A pool of threads for the SMTP doors' database work, so the event loop never waits on it.

Each call gets a fresh or healthy connection (`close_old_connections` around it); `close()`
closes every thread's connection before the threads stop. A connection's health check
(CONN_HEALTH_CHECKS: a `SELECT 1` before the first query of each call) is skipped when the
connection answered less than HEALTH_CHECK_AFTER seconds ago without an error: under load the
door makes hundreds of calls a second, each would pay a round trip for nothing. A connection
that died within that second fails its call (a 451 the client retries) and is replaced.
"""

import asyncio
import concurrent.futures
import threading
import time

from django.db import close_old_connections, connection, connections

HEALTH_CHECK_AFTER = 1.0  # seconds a connection may stay unused and still skip its health check


class DatabaseThreads:
    def __init__(self, *, size: int, name: str):
        self.size = size
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._local = threading.local()  # each thread: when its last call ended on a healthy connection

    async def run(self, function, *args):
        """`function(*args)` in one of the threads; its result, or its exception."""

        def call():
            close_old_connections()
            last_answer = getattr(self._local, "last_answer", None)
            if (
                connection.connection is not None
                and last_answer
                and time.monotonic() - last_answer < HEALTH_CHECK_AFTER
            ):
                connection.health_check_done = True  # it answered a moment ago
            try:
                return function(*args)
            finally:
                healthy = connection.connection is not None and not connection.errors_occurred
                close_old_connections()
                self._local.last_answer = time.monotonic() if healthy else None

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
