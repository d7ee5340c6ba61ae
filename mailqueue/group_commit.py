"""Group commit at the SMTP door (SPEC §12): the messages of concurrent sessions stored in one
transaction, each session answered once that transaction has committed.

A session's DATA waits in `GroupCommit.accept`. While a batch is being stored (checks, INSERT,
COMMIT in a database thread), the messages arriving meanwhile gather, and the next batch takes
them all: one transaction, one WAL flush and one set of after-commit kicks for many messages,
with no added wait when the door is quiet (a lone message is stored at once). A 250 is never
given before its message's transaction has committed.
"""

import asyncio
import logging

from django.db import connection

from mailqueue.counters import submitted_today_incr
from mailqueue.db_threads import DatabaseThreads
from mailqueue.models import Message
from mailqueue.submission import message_prepare, messages_store

log = logging.getLogger(__name__)

# The day's submitted counter (a metric, in the cache) is moved at most this often by the door:
# one round trip for every batch committed meanwhile, not one per batch.
COUNT_EVERY_SECONDS = 0.5


class GroupCommit:
    """Stores the door's messages in batches of at most `max_batch`, `max_in_flight` batches at a
    time (one committing while the next is checked), in `threads`."""

    def __init__(self, *, threads: DatabaseThreads, max_batch: int = 64, max_in_flight: int = 2):
        self._threads = threads
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._running: set[asyncio.Task] = set()
        self._uncounted = 0  # stored, not yet in the submitted counter
        self._count_timer: asyncio.TimerHandle | None = None
        self._counting: set[asyncio.Task] = set()

    async def accept(self, **submitted) -> Message:
        """Check and store one message (`message_accept`'s arguments), in a batch with the others
        arriving meanwhile; its stored Message once committed, or SubmissionError (refused), or
        the error that kept its batch from committing."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((submitted, future))
        if len(self._running) < self.max_in_flight:
            self._batch_start()
        return await future

    def _batch_start(self) -> None:
        batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
        task = asyncio.get_running_loop().create_task(self._batch_store(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _batch_store(self, batch: list[tuple[dict, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        futures = [future for _submitted, future in batch]

        def store() -> None:
            outcomes = messages_accept([submitted for submitted, _future in batch], count_submitted=False)
            # The sessions answered from here, one wake-up of the loop before the thread's own.
            loop.call_soon_threadsafe(self._batch_settle, futures, outcomes)

        try:
            await self._threads.run(store)
        except Exception as error:  # the thread pool itself failed: no message of the batch is stored
            _futures_settle(futures, [error] * len(futures))
        finally:
            # Out of _running now, not in the done callback the loop runs later: a message arriving
            # in between would find this batch still counted, and wait for a successor nobody starts.
            self._running.discard(asyncio.current_task())
            if self._waiting and len(self._running) < self.max_in_flight:
                self._batch_start()

    def _batch_settle(self, futures: list[asyncio.Future], outcomes: list) -> None:
        # Counted (in memory) before the sessions are answered: a door closed right after a 250
        # still counts that message (`count_flush`).
        self._count(sum(1 for outcome in outcomes if isinstance(outcome, Message)))
        _futures_settle(futures, outcomes)

    def _count(self, stored: int) -> None:
        """Add `stored` to the submitted counter within COUNT_EVERY_SECONDS, with the others."""
        self._uncounted += stored
        if self._uncounted and self._count_timer is None:
            loop = asyncio.get_running_loop()
            self._count_timer = loop.call_later(COUNT_EVERY_SECONDS, self._count_start)

    def _count_start(self) -> None:
        count, self._uncounted, self._count_timer = self._uncounted, 0, None
        task = asyncio.get_running_loop().create_task(self._threads.run(_submitted_count, count))
        self._counting.add(task)  # referenced until done: the loop keeps only a weak reference
        task.add_done_callback(self._counting.discard)

    def count_flush(self) -> None:
        """Count what is not counted yet, now (the door is closing)."""
        if self._count_timer is not None:
            self._count_timer.cancel()
        count, self._uncounted, self._count_timer = self._uncounted, 0, None
        if count:
            _submitted_count(count)


def _submitted_count(count: int) -> None:
    try:
        submitted_today_incr(count)
    except Exception:  # the cache is down: the mail is stored, only the metric misses it
        log.warning("The submitted counter could not count %d messages", count, exc_info=True)


def _futures_settle(futures: list[asyncio.Future], outcomes: list) -> None:
    """Give each waiting session its outcome: its Message, or the exception that refused or failed it."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():  # the session went away, or was answered already
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def messages_accept(batch: list[dict], *, count_submitted: bool = True) -> list[Message | Exception]:
    """Check each submission of `batch` (`message_accept`'s arguments) and store those that pass
    in one transaction; for each, its Message or the exception that refused or failed it.

    When that transaction fails, each message is tried again in a transaction of its own, so one
    message that cannot be stored never costs the others their 250.
    """
    outcomes: list[Message | Exception | None] = [None] * len(batch)
    prepared = []
    for index, submitted in enumerate(batch):
        try:
            prepared.append((index, message_prepare(**submitted)))
        except Exception as error:  # SubmissionError, or the sender policy's query failing
            outcomes[index] = error
    if not prepared:
        return outcomes
    try:
        messages = messages_store([submission for _index, submission in prepared], count_submitted=count_submitted)
    except Exception as error:
        if len(prepared) == 1:
            outcomes[prepared[0][0]] = error
            return outcomes
        log.warning("A batch of %d messages was not stored (%s): storing each alone", len(prepared), error)
        if not connection.in_atomic_block:
            # A connection the batch's error broke is replaced, not handed to every retry.
            connection.close_if_unusable_or_obsolete()
        for index, submission in prepared:
            try:
                outcomes[index] = messages_store([submission], count_submitted=count_submitted)[0]
            except Exception as single_error:
                outcomes[index] = single_error
        return outcomes
    for (index, _submission), message in zip(prepared, messages, strict=True):
        outcomes[index] = message
    return outcomes
