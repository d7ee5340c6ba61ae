"""Writing new Message rows at the rate of the SMTP door (SPEC §12).

`bulk_create` prepares each of a message's 22 fields through the ORM, then psycopg's client-side
binding writes every value into the SQL text: ~1 ms of CPU a message, the largest cost of a
submission. On PostgreSQL `messages_insert` sends the same rows through one prepared INSERT in
a pipeline, the values bound by psycopg's C dumpers (server-side binding), the ids returned;
the columns are the model's fields, read once, and the Message objects are built by the model
(its defaults). Elsewhere it is `bulk_create`.

Outside a transaction (the SMTP door's group commit, `messages_insert_committed`), a batch of
small messages on a connection that answered within the last second goes in one simple query,
BEGIN to COMMIT; any other in three round trips: BEGIN and the checks in a simple query, the
INSERTs bound on the server, COMMIT. psycopg's pipeline costs ~0.3 ms of CPU a batch in Python,
a simple query a tenth of that (bench/README.md).
"""

import functools
import logging
import select
import threading
import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.db.models import JSONField

from mailqueue.models import Message

log = logging.getLogger(__name__)

# A batch with at most this many bytes of raw goes in one simple query: its values written into
# the SQL text, the raw as hex, which for a large message costs the server more in parsing than
# the round trip saved (at ~30 KB a message, as long; at 86 KB, 1.4× as long).
SIMPLE_QUERY_MAX_BYTES = 16_000
# A connection that answered within this many seconds, and on which the server has sent nothing
# since (a server that ends a session says so, then closes it: both can be read at once), is taken
# to be open: its batch's single round trip commits. Any other takes three round trips, the first
# of which commits nothing, so a connection the server closed is found there and replaced.
TRUSTED_IDLE_SECONDS = 1.0

_answered = threading.local()  # .connection, .at: this thread's connection and when it last answered


@functools.cache
def _fields() -> tuple:
    """Every concrete field but the id, with whether its value needs the ORM's preparation (JSON)."""
    return tuple(
        (field, isinstance(field, JSONField)) for field in Message._meta.concrete_fields if not field.primary_key
    )


@functools.cache
def _insert_sql() -> str:
    """INSERT of one row of every field but the id, returning its id."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field, _prepared in _fields())
    placeholders = ", ".join(["%s"] * len(_fields()))
    table = quote(Message._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {quote(Message._meta.pk.column)}"


def _row(message: Message, plan: tuple, db) -> list:
    row = []
    for field, prepared in plan:
        value = getattr(message, field.attname)
        row.append(field.get_db_prep_save(value, db) if prepared else value)
    return row


def messages_insert(messages: list[Message], *, first=()) -> list[list[tuple]]:
    """INSERT `messages` (new, every field set or defaulted by the model) in the caller's
    transaction and set their ids. `first`: statements (SQL, parameters) run before the INSERT,
    in the same transaction (`locks.mail_service_lock_shared_statements`); their rows are returned.

    On PostgreSQL all of it is one round trip: a psycopg pipeline holding the BEGIN, `first` and
    the INSERT of every row. The statements go through Django's error wrapping, and into its
    query log when it is on (`assertNumQueries`, DEBUG's `connection.queries`).
    """
    if connection.vendor != "postgresql":
        results = []
        with connection.cursor() as cursor:
            for sql, params in first:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
        Message.objects.bulk_create(messages)
        return results
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors:
        results = _pipeline_run(connection, messages, first=first)
    _queries_log(connection, [sql for sql, _params in first] + [_insert_sql()] * len(messages), started)
    _messages_saved(connection, messages)
    return results


def messages_insert_committed_possible() -> bool:
    """Whether `messages_insert_committed` may run: PostgreSQL, outside any transaction."""
    db = connections[DEFAULT_DB_ALIAS]
    return db.vendor == "postgresql" and not db.in_atomic_block


def messages_insert_committed(messages: list[Message], *, first) -> bool:
    """INSERT and commit `messages`, on PostgreSQL outside any transaction. False, with nothing
    stored, when a statement of `first` failed with a division by zero: a check that refused
    (`locks.mail_service_lock_shared_active_statements`); any other error is raised, with the
    transaction rolled back.

    Small messages on a connection that answered within TRUSTED_IDLE_SECONDS with nothing to
    read since (the usual case under load): one round trip, a simple query from BEGIN to COMMIT.
    Otherwise three: BEGIN and `first` in a simple query, the INSERTs bound on the server (the raw
    sent as binary), COMMIT. There is no health check before (Django's costs a round trip): a
    connection the server closed is found by the first of the three, which commits nothing, and
    replaced once. One lost silently (no word from the server) within the trusted second fails its
    batch (the door answers 451: the client sends again), as a COMMIT that fails does: whether it
    committed is not known, so it is not tried again here.
    """
    started = time.monotonic()
    db = connections[DEFAULT_DB_ALIAS]  # the thread's, looked up once: each `connection.` costs a lookup
    db.ensure_connection()
    small = sum(len(message.raw) for message in messages) <= SIMPLE_QUERY_MAX_BYTES
    run = _one_round_trip if small and _trusted(db.connection) else _three_round_trips
    if not run(db, messages, first=first):
        return False
    _answered_now(db.connection)
    statements = ["BEGIN", *(sql for sql, _params in first), *[_insert_sql()] * len(messages), "COMMIT"]
    _queries_log(db, statements, started)
    _messages_saved(db, messages)
    return True


def _one_round_trip(db, messages: list[Message], *, first) -> bool:
    raw = db.connection
    with db.wrap_database_errors:
        try:
            ids = _simple_run(raw, ["BEGIN", *first, *_insert_statements(db, messages), ("COMMIT", None)])
        except psycopg.errors.DivisionByZero:
            _rollback(raw)
            return False
        except BaseException:  # never leave the transaction open on a connection in autocommit
            _rollback(raw)
            raise
    _ids_set(messages, ids)
    return True


def _three_round_trips(db, messages: list[Message], *, first) -> bool:
    for attempt in (1, 2):
        db.ensure_connection()
        raw = db.connection
        try:
            with db.wrap_database_errors:
                try:
                    _simple_run(raw, ["BEGIN", *first])
                except psycopg.errors.DivisionByZero:
                    _rollback(raw)
                    return False
                except BaseException:
                    _rollback(raw)
                    raise
            break
        except OperationalError:
            if attempt == 2 or not raw.broken:
                raise
            log.info("The database connection was closed by the server: storing on a new one")
            db.close()
    with db.wrap_database_errors:
        try:
            _rows_insert(db, messages)
            raw.execute("COMMIT")
        except BaseException:
            _rollback(raw)
            raise
    return True


def _trusted(raw: psycopg.Connection) -> bool:
    """Whether this thread's connection `raw` answered within TRUSTED_IDLE_SECONDS and the server
    has sent nothing since: no termination notice (FATAL), no end of stream, waiting to be read."""
    if getattr(_answered, "connection", None) is not raw or time.monotonic() - _answered.at >= TRUSTED_IDLE_SECONDS:
        return False
    if raw.closed or raw.broken:
        return False
    poll = select.poll()  # one system call, not a round trip; select() would stop at descriptor 1024
    poll.register(raw.fileno(), select.POLLIN | select.POLLPRI)
    return not poll.poll(0)


def _answered_now(raw: psycopg.Connection) -> None:
    _answered.connection, _answered.at = raw, time.monotonic()


def _insert_statements(db, messages: list[Message]) -> list[tuple[str, list]]:
    plan = _fields()
    return [(_insert_sql(), _row(message, plan, db)) for message in messages]


def _simple_run(raw: psycopg.Connection, statements: list) -> list[int]:
    """`statements` ((SQL, parameters), or SQL alone) as one simple query, the values bound by
    psycopg on the client: one round trip; the id each INSERT returned, in order. An error stops
    the query where it happened, with nothing committed: the caller rolls the transaction back."""
    statements = [(statement, None) if isinstance(statement, str) else statement for statement in statements]
    params = [value for _sql, values in statements for value in values or ()]
    ids = []
    with psycopg.ClientCursor(raw) as cursor:
        cursor.execute("; ".join(sql for sql, _values in statements), params, prepare=False)
        while True:  # one result a statement, in order
            if cursor.statusmessage.startswith("INSERT"):
                ids.append(cursor.fetchone()[0])
            if not cursor.nextset():
                break
    return ids


def _rows_insert(db, messages: list[Message]) -> None:
    """The INSERT of every row, bound on the server (prepared once run DATABASE_PREPARE_THRESHOLD
    times), the raw sent as binary; the messages' ids are set."""
    plan = _fields()
    with psycopg.Cursor(db.connection) as cursor:  # server-side binding, whatever Django's cursor factory
        if len(messages) == 1:
            cursor.execute(_insert_sql(), _row(messages[0], plan, db))
            ids = [cursor.fetchone()[0]]
        else:  # psycopg sends these in one pipeline
            cursor.executemany(_insert_sql(), [_row(message, plan, db) for message in messages], returning=True)
            ids = []
            while True:
                ids.append(cursor.fetchone()[0])
                if not cursor.nextset():
                    break
    _ids_set(messages, ids)


def _ids_set(messages: list[Message], ids: list[int]) -> None:
    for message, pk in zip(messages, ids, strict=True):
        message.pk = pk


def _rollback(raw: psycopg.Connection) -> None:
    if not raw.broken and raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raw.execute("ROLLBACK")


def _pipeline_run(db, messages: list[Message], *, first) -> list[list[tuple]]:
    """`first`, then the INSERT of every row, in one psycopg pipeline on `db`'s connection; the
    rows of `first`. The messages' ids are set."""
    plan = _fields()
    raw = db.connection
    with raw.pipeline():
        firsts = []
        for sql, params in first:
            cursor = psycopg.Cursor(raw)  # server-side binding, whatever Django's cursor factory
            cursor.execute(sql, params)
            firsts.append(cursor)
        insert = psycopg.Cursor(raw)
        # One statement, prepared by the server once run DATABASE_PREPARE_THRESHOLD times (settings),
        # executed for every row: ~0.2 ms a message against ~0.5 for bulk_create.
        insert.executemany(_insert_sql(), [_row(message, plan, db) for message in messages], returning=True)
    # Leaving the pipeline sent it and read every result.
    results = [cursor.fetchall() if cursor.description else [] for cursor in firsts]
    ids = []
    while True:
        ids.append(insert.fetchone()[0])
        if not insert.nextset():
            break
    for cursor in [*firsts, insert]:
        cursor.close()
    _ids_set(messages, ids)
    return results


def _messages_saved(db, messages: list[Message]) -> None:
    for message in messages:
        message._state.adding = False
        message._state.db = db.alias


def _queries_log(db, statements: list[str], started: float) -> None:
    """Record `statements` (sent since `started`) in Django's query log as its debug cursor would, when it is on."""
    if not db.queries_logged:
        return
    duration = time.monotonic() - started
    for sql in statements:
        db.queries_log.append({"sql": sql, "time": f"{duration / len(statements):.3f}"})
