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

import datetime
import functools
import logging
import re
import select
import uuid

import psycopg
from django.db import connection, connections
from django.utils import timezone
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from mailqueue.delivery_record import RecordFailed, _params, _sent_sql
from mailqueue.models import Message

logger = logging.getLogger("mailqueue.delivery")

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
        params = [*_params(message, self.token), day]
        try:
            database = self._opened()
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
        an error of its own, or has waited) and close the recorder's connection."""
        try:
            self.wait()
        except RecordFailed:
            logger.exception("delivery record failed")
        finally:
            self._discard()

    def _opened(self):
        if self._database is None:
            database = connections.create_connection(connection.alias)
            database.ensure_connection()
            self._database = database
            self._transformer = Transformer.from_context(database.connection)
            with database.wrap_database_errors:
                _checked(database.connection.pgconn.prepare(STATEMENT_NAME, _numbered_sql()), database)
        return self._database

    def _send(self, sql, params, many, context) -> None:
        database = self._database
        with database.wrap_database_errors:
            dumped = self._transformer.dump_sequence(params, [PyFormat.TEXT] * len(params))
            database.connection.pgconn.send_query_prepared(STATEMENT_NAME, dumped)

    def _outcome(self) -> bool:
        """The submitted statement's result: whether it wrote the row (the claim was still ours)."""
        pgconn = self._database.connection.pgconn
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            readable, _writable, _broken = select.select([pgconn.socket], [], [], RECORD_TIMEOUT_SECONDS)
            if not readable:
                raise psycopg.OperationalError(f"no answer from the database in {RECORD_TIMEOUT_SECONDS} s")
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
        if not results:
            raise psycopg.OperationalError("the database returned no result")
        for result in results:
            _checked(result, self._database)
        return results[-1].ntuples > 0

    def _discard(self) -> None:
        """Close the recorder's connection (a failed one is never reused)."""
        self._pending = None
        if self._database is not None:
            database, self._database = self._database, None
            try:
                database.close()
            except Exception:
                logger.warning("closing the record connection failed", exc_info=True)


def _checked(result: pq.PGresult, database) -> pq.PGresult:
    """`result`, or its error raised as psycopg raises it."""
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=database.connection.info.encoding)
    return result
