"""A pool of threads for the doors' database work, so the event loop never waits on it.

Each call gets a fresh or healthy connection (`close_old_connections` around it); `close()`
lets the calls already given finish, then closes every thread's connection and stops the threads.

The pool is the least a call can cost at the SMTP door's rate: a call is put on a C queue
(`queue.SimpleQueue`) and its result set on the caller's asyncio future from the thread, one
wake-up of the loop; a `ThreadPoolExecutor` took a lock, a condition and a second future chained
to the first (9 % of the door's CPU samples at 4 clients, bench/README.md).
"""

import asyncio
import contextlib
import queue
import threading

from django.db import close_old_connections, connections

_STOP = None  # put once per thread by close()


class DatabaseThreads:
    def __init__(self, *, size: int, name: str):
        self.size = size
        self._name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per thread done with its call, so waiting for the next: a list's append and pop
        # are atomic under the interpreter lock, where a threading.Semaphore takes a Python condition.
        self._idle: list[None] = []
        self._starting = threading.Lock()
        self._closed = False

    async def run(self, function, *args):
        """`function(*args)` in one of the threads; its result, or its exception. RuntimeError
        once the threads are closed."""
        if self._closed:
            raise RuntimeError("The database threads are closed.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, function, args))
        try:
            self._idle.pop()  # a thread waiting takes it
        except IndexError:  # none: start one, up to size (or the call waits for one to be done)
            self._thread_start()
        return await future

    def _thread_start(self) -> None:
        with self._starting:
            if len(self._threads) >= self.size or self._closed:
                return
            thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is _STOP:
                connections.close_all()
                return
            loop, future, function, args = call
            close_old_connections()
            try:
                outcome, failed = function(*args), False
            except BaseException as error:  # handed to the awaiting coroutine
                outcome, failed = error, True
            finally:
                close_old_connections()
            # Idle before the caller hears back: its next call finds this thread, not a new one.
            self._idle.append(None)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits this any more
                loop.call_soon_threadsafe(_settle, future, outcome, failed)

    def close(self) -> None:
        """Let the calls already given finish, close every thread's database connection, stop the threads."""
        with self._starting:
            threads = list(self._threads)
            self._closed = True  # no call is taken, no thread started, any more
        for _ in threads:
            self._calls.put(_STOP)
        for thread in threads:
            thread.join()


def _settle(future: asyncio.Future, outcome, failed: bool) -> None:
    if future.done():  # the caller was cancelled
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
