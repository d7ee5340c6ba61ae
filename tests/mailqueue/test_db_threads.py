"""The doors' database threads (`mailqueue.db_threads`): results and errors reach the awaiting
coroutine, at most `size` threads run, idle ones are reused, and `close()` lets the calls already
given finish before it closes each thread's connection."""

import asyncio
import threading
import time

import pytest
from django.db import connection, connections

from mailqueue.db_threads import DatabaseThreads


def test_a_result_and_an_error_reach_the_coroutine_awaiting_them():
    threads = DatabaseThreads(size=2, name="test-db")

    def fails():
        raise LookupError("from the thread")

    async def main():
        assert await threads.run(lambda a, b: (a + b, threading.current_thread().name), 2, 3) == (5, "test-db_0")
        with pytest.raises(LookupError, match="from the thread"):
            await threads.run(fails)

    asyncio.run(main())
    threads.close()


def test_at_most_size_threads_run_and_an_idle_one_is_reused():
    threads = DatabaseThreads(size=2, name="test-db")
    running, most = [0], [0]
    lock = threading.Lock()

    def work():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    async def main():
        one_after_another = [await threads.run(work) for _ in range(3)]
        at_once = await asyncio.gather(*(threads.run(work) for _ in range(6)))
        return one_after_another, at_once

    one_after_another, at_once = asyncio.run(main())
    threads.close()

    assert one_after_another == ["test-db_0"] * 3  # one thread, waiting between calls, did all three
    assert set(at_once) == {"test-db_0", "test-db_1"}
    assert most[0] == 2


def test_a_cancelled_caller_leaves_the_pool_working():
    threads = DatabaseThreads(size=1, name="test-db")
    release = threading.Event()

    async def main():
        slow = asyncio.ensure_future(threads.run(release.wait, 10))
        await asyncio.sleep(0.05)
        slow.cancel()
        release.set()
        return await threads.run(lambda: "next")

    assert asyncio.run(main()) == "next"
    threads.close()


@pytest.mark.django_db(transaction=True)
def test_close_lets_given_calls_finish_then_closes_each_threads_connection():
    threads = DatabaseThreads(size=2, name="test-db")
    wrappers, finished = [], []

    def query(index):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        wrappers.append(connections["default"])  # this thread's own
        time.sleep(0.05)
        finished.append(index)

    async def main():
        pending = [asyncio.ensure_future(threads.run(query, index)) for index in range(4)]
        await asyncio.sleep(0)  # every call given to the pool
        await asyncio.to_thread(threads.close)
        await asyncio.gather(*pending)

    asyncio.run(main())

    assert sorted(finished) == [0, 1, 2, 3]
    assert len({id(wrapper) for wrapper in wrappers}) == 2
    assert all(wrapper.connection is None for wrapper in wrappers)


def test_a_call_after_close_is_refused_not_left_waiting():
    threads = DatabaseThreads(size=1, name="test-db")

    async def main():
        assert await threads.run(lambda: "before") == "before"
        threads.close()
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(threads.run(lambda: "after"), timeout=5)

    asyncio.run(main())
