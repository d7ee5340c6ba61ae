"""The records of sent messages written while the next message goes to the relay (SPEC §4.2,
§12), on PostgreSQL: `SentRecorder.submit` sends `delivery_record`'s one statement (the message's
row and its day's `sent` counter, prepared on the server) on a connection of the recorder's own
and returns at once; the server runs and commits it while this thread carries on with the relay;
`wait` reads its outcome. No thread: the delivering thread never waits for another one to get
the interpreter's lock, which cost more than the statement itself.

The delivering thread calls `wait` before it ends the next message (its final dot: the relay's
`before_end`), so at most one message is both accepted by the relay and not committed, as when
each record is written before the next message is sent.
"""

import contextlib
import datetime
import functools
import logging
import re
import select
import threading
import uuid

import psycopg
from django.db import connection, connections
from django.utils import timezone
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from mailqueue.delivery_record import RecordFailed, _params, _sent_sql
from mailqueue.models import Message

logger = logging.getLogger("mailqueue.delivery")
_kept = threading.local()  # this thread's record connection, from one batch to the next
_every_kept: set = set()  # every thread's, for `kept_connections_close`
_every_kept_lock = threading.Lock()

STATEMENT_NAME = b"mailqueue_sent_record"
# A record blocked this long (a lock held elsewhere) fails: the next message is not ended, and
# the batch's claim is recovered as after a crash (retries.claims_recover).
RECORD_TIMEOUT_SECONDS = 60


@functools.cache
def _numbered_sql() -> bytes:
    """`_sent_sql` with PostgreSQL's numbered placeholders, for PQprepare."""
    sql = _sent_sql()
    numbers = iter(range(1, sql.count("%s") + 1))
    numbered = re.sub(r"%s", lambda _match: f"${next(numbers)}", sql)
    if "%" in numbered:
        raise ValueError("the record statement has a % that is not a placeholder")
    return numbered.encode()


class SentRecorder:
    """Writes the records of sent messages one at a time, without waiting for each (see above).
    `on_written(message)`: called by `wait` for a record written (not for a message whose claim
    was recovered meanwhile)."""

    def __init__(self, token: uuid.UUID, *, on_written):
        self.token = token
        self.on_written = on_written
        self._zone = timezone.get_current_timezone()  # read once: asgiref's locals are slow
        self._database = None  # a connection of its own (Django's wrapper), opened at the first record
        self._pending: Message | None = None

    def day_of(self, moment: datetime.datetime) -> datetime.date:
        """`timezone.localdate(moment)`, in the time zone of the recorder's start."""
        return moment.astimezone(self._zone).date()

    def submit(self, message: Message, *, day: datetime.date) -> None:
        """Send `message`'s record, once the one before is written (`wait`); RecordFailed when it
        could not be sent."""
        self.wait()
        try:
            database = self._opened()
            params = [*_params(message, self.token, database), day]
            execute = self._send
            for wrapper in reversed(database.execute_wrappers):  # as Django's cursors run them
                execute = functools.partial(wrapper, execute)
            execute(_sent_sql(), params, False, {"connection": database, "cursor": None})
        except Exception as error:
            self._discard()
            raise RecordFailed(f"the record of message {message.pk} could not be sent: {error}") from error
        self._pending = message

    def wait(self) -> None:
        """Until the record in progress, if any, is committed; RecordFailed when it failed."""
        if self._pending is None:
            return
        message, self._pending = self._pending, None
        try:
            with self._database.wrap_database_errors:
                written = self._outcome()
        except Exception as error:
            self._discard()
            raise RecordFailed(f"the record of message {message.pk} failed: {error}") from error
        if written:
            self.on_written(message)

    def close(self) -> None:
        """Wait for the record in progress (a failure is logged: the caller is already leaving on
        an error of its own, or has waited) and leave the connection to the next batch."""
        try:
            self.wait()
        except RecordFailed:
            logger.exception("delivery record failed")
        finally:
            self._release()

    def _opened(self):
        """The recorder's connection: this thread's from an earlier batch when it is still usable
        and not older than CONN_MAX_AGE (Django's own rules, health check included), or a new one;
        the statement prepared on it once (unless DATABASE_PREPARE_THRESHOLD is 0: a pooler)."""
        if self._database is None:
            database = getattr(_kept, "database", None)
            if database is None:
                database = _kept.database = connections.create_connection(connection.alias)
                with _every_kept_lock:
                    _every_kept.add(database)
            database.close_if_unusable_or_obsolete()
            database.close_if_health_check_failed()
            database.ensure_connection()
            raw = database.connection
            if getattr(_kept, "prepared_on", None) is not raw:
                self._transformer = Transformer.from_context(raw)
                if _prepares(database):
                    with database.wrap_database_errors:
                        _checked(raw.pgconn.prepare(STATEMENT_NAME, _numbered_sql()), database)
                _kept.prepared_on, _kept.transformer = raw, self._transformer
            self._transformer = _kept.transformer
            self._database = database
        return self._database

    def _send(self, sql, params, many, context) -> None:
        database = self._database
        with database.wrap_database_errors:
            dumped = self._transformer.dump_sequence(params, [PyFormat.TEXT] * len(params))
            pgconn = database.connection.pgconn
            if _prepares(database):
                pgconn.send_query_prepared(STATEMENT_NAME, dumped)
            else:
                pgconn.send_query_params(_numbered_sql(), dumped)
            # psycopg keeps its connections non-blocking: libpq sends what the socket takes, the
            # rest is flushed here (a record with many long replies is larger than a send buffer).
            while pgconn.flush():
                _wait_for(pgconn.socket, select.POLLOUT)

    def _outcome(self) -> bool:
        """The submitted statement's result: whether it wrote the row (the claim was still ours)."""
        pgconn = self._database.connection.pgconn
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            try:
                _wait_for(pgconn.socket, select.POLLIN)
            except psycopg.OperationalError:
                with contextlib.suppress(Exception):  # the record is then known not to have committed
                    self._database.connection.cancel_safe(timeout=5)
                raise
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
        if not results:
            raise psycopg.OperationalError("the database returned no result")
        for result in results:
            _checked(result, self._database)
        return results[-1].ntuples > 0

    def _release(self) -> None:
        """Leave the connection to this thread's next batch, or close it (CONN_MAX_AGE 0)."""
        self._pending = None
        if self._database is not None:
            database, self._database = self._database, None
            if database.settings_dict["CONN_MAX_AGE"] == 0:
                database.close()

    def _discard(self) -> None:
        """Close the recorder's connection (a failed one is never reused)."""
        self._pending = None
        database, self._database = self._database, None
        kept, _kept.database, _kept.prepared_on = getattr(_kept, "database", None), None, None
        for each in {id(database): database, id(kept): kept}.values():
            if each is None:
                continue
            with _every_kept_lock:
                _every_kept.discard(each)
            try:
                each.close()
            except Exception:
                logger.warning("closing the record connection failed", exc_info=True)


def _wait_for(socket: int, events: int) -> None:
    """Until `socket` is ready for `events` (poll: no limit on the descriptor's number), or
    OperationalError after RECORD_TIMEOUT_SECONDS."""
    poller = select.poll()
    poller.register(socket, events | select.POLLERR | select.POLLHUP)
    if not poller.poll(RECORD_TIMEOUT_SECONDS * 1000):
        raise psycopg.OperationalError(f"no answer from the database in {RECORD_TIMEOUT_SECONDS} s")


def _prepares(database) -> bool:
    """Whether statements may be prepared on the server (DATABASE_PREPARE_THRESHOLD is not 0)."""
    return database.settings_dict.get("OPTIONS", {}).get("prepare_threshold") is not None


def _checked(result: pq.PGresult, database) -> pq.PGresult:
    """`result`, or its error raised as psycopg raises it."""
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=database.connection.info.encoding)
    return result


def kept_connections_close() -> None:
    """Close the record connections kept between batches by every thread (tests, shutdown: the
    connection of a thread still delivering fails its record, which is then recovered)."""
    _kept.database = _kept.prepared_on = None
    with _every_kept_lock:
        kept = list(_every_kept)
        _every_kept.clear()
    for database in kept:
        raw = database.connection  # closed as it is: Django's close() refuses another thread's wrapper
        if raw is not None:
            raw.close()
