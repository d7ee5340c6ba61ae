"""A pool of threads for the SMTP doors' database work, so the event loop never waits on it.

Each call gets a fresh or healthy connection (`close_old_connections` around it); `close()`
closes every thread's connection before the threads stop.
"""

import asyncio
import concurrent.futures
import threading

from django.db import close_old_connections, connections


class DatabaseThreads:
    def __init__(self, *, size: int, name: str):
        self.size = size
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, function, *args):
        """`function(*args)` in one of the threads; its result, or its exception."""

        def call():
            close_old_connections()
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
