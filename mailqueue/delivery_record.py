"""Writing what delivery did to each message (SPEC §4.2) at the rate of the relay (SPEC §12).

Every outcome is written by one UPDATE that checks the claim (a recovered claim is another
worker's) and drops the raw content of a finished message. `messages_save` runs it inside the
caller's transaction, next to the errors, suppressions, counters and webhook events it records.

The common case, a message sent to every recipient with no webhook to tell, needs none of those
but the day's `sent` counter: `sent_save` writes it on PostgreSQL as one prepared statement in
autocommit, the UPDATE and the counter's upsert together (one round trip, one commit, the
values bound by psycopg's C dumpers); delivery sends the same statement without waiting for it
(`sent_recorder`). No service lock is taken: a sent message is sent in every
state of the service (a held one is decided by the state, and goes through `messages_save`).
"""

import datetime
import functools
import logging
import uuid

import psycopg
from django.db import connection
from django.db.models import JSONField

from mailqueue.models import DailyCounter, Message, MessageStatus

logger = logging.getLogger("mailqueue.delivery")

# What is written back for each message (besides the claim, cleared, and the raw content,
# dropped once the message is done).
RECORDED_FIELDS = (
    "status",
    "recipients",
    "completed_at",
    "next_attempt_at",
    "held_at",
    "held_until",
    "last_reply",
    "spam_score",
    "spam_rules",
)


@functools.cache
def _fields() -> tuple:
    return tuple(Message._meta.get_field(name) for name in RECORDED_FIELDS)


@functools.cache
def _prepared_fields(vendor: str) -> frozenset:
    """The recorded fields whose values need the ORM's preparation: on PostgreSQL the JSON ones
    (psycopg takes text, numbers and aware datetimes as they are), elsewhere every one."""
    return frozenset(field for field in _fields() if vendor != "postgresql" or isinstance(field, JSONField))


@functools.cache
def _update_sql() -> str:
    """The claim-checked UPDATE of one message, returning its hosting when it was still ours."""
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in _fields())
    raw = quote(Message._meta.get_field("raw").column)
    return (
        f"UPDATE {quote(Message._meta.db_table)} SET {assignments}, "
        f"{quote('claim_token')} = NULL, {quote('claimed_at')} = NULL, "
        f"{raw} = CASE WHEN %s THEN NULL ELSE {raw} END "
        f"WHERE {quote(Message._meta.pk.column)} = %s AND {quote('claim_token')} = %s AND {quote('status')} = %s "
        f"RETURNING {quote(Message._meta.get_field('hosting').column)}"
    )


@functools.cache
def _sent_sql() -> str:
    """The UPDATE, and the day's `sent` counter of its hosting moved by one when it wrote a row."""
    table = DailyCounter._meta.db_table
    return (
        f"WITH written AS ({_update_sql()}) "
        f"INSERT INTO {table} (hosting_id, day, sent, errors, held, purged, expired) "
        "SELECT hosting_id, %s, 1, 0, 0, 0, 0 FROM written "
        f"ON CONFLICT (hosting_id, day) DO UPDATE SET sent = {table}.sent + 1 RETURNING hosting_id"
    )


def _params(message: Message, token: uuid.UUID, database=None) -> list:
    """The values of `_update_sql` for `message`, prepared for `database` (Django's connection
    by default; the recorder passes its own, sparing the proxy's lookups)."""
    database = database or connection
    prepared = _prepared_fields(database.vendor)
    row = [
        field.get_db_prep_save(getattr(message, field.attname), database)
        if field in prepared
        else getattr(message, field.attname)
        for field in _fields()
    ]
    claim = _claim_field().get_db_prep_value(token, database)
    return [*row, message.completed_at is not None, message.pk, claim, MessageStatus.SENDING]


@functools.cache
def _claim_field():
    return Message._meta.get_field("claim_token")


def messages_save(messages: list[Message], token: uuid.UUID) -> set[int]:
    """Write the outcome of `messages` still claimed by `token` (still sending), one UPDATE each
    that checks the claim and locks the row until commit; returns the ids written. bulk_update's
    CASE expressions cost more than the delivery itself (see bench/delivery.py). The raw content
    is never read back: it is dropped for finished messages, kept otherwise."""
    written = set()
    with connection.cursor() as cursor:
        for message in messages:
            cursor.execute(_update_sql(), _params(message, token))
            if cursor.fetchone() is not None:
                written.add(message.pk)
    return written


def sent_save_possible() -> bool:
    """Whether `sent_save` can be used: PostgreSQL, outside a transaction of the caller's."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def sent_save(message: Message, token: uuid.UUID, *, day: datetime.date) -> bool:
    """Write `message`, sent to every recipient (its fields set by the caller), and count it in
    its hosting's `sent` of `day`, in one statement committed on its own; whether it was still
    claimed by `token` (nothing is written otherwise). PostgreSQL only (`sent_save_possible`)."""
    connection.ensure_connection()
    # Wrapped as Django wraps its own cursors: errors, execute_wrapper, the query log.
    bound = psycopg.Cursor(connection.connection)  # server-side binding: prepared (settings)
    with connection.make_debug_cursor(bound) if connection.queries_logged else connection.make_cursor(bound) as cursor:
        cursor.execute(_sent_sql(), [*_params(message, token), day])
        return cursor.fetchone() is not None


class RecordFailed(Exception):
    """A sent message's record could not be written: the next message must not be ended."""
