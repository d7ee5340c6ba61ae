"""The hosting's locks: how transitions, submissions, deliveries and claims serialise (SPEC §3).

On PostgreSQL, advisory locks (served in arrival order, unlike row share locks) plus the
service row FOR UPDATE; on SQLite every transaction is IMMEDIATE (settings), so the database
write lock serialises them and these functions only read.
"""

import enum

from django.db import connection

from mailqueue.choices import State
from mailqueue.models import MailService


class LockPurpose(enum.IntEnum):
    """The namespace of an advisory lock (its upper 32 bits), one per purpose."""

    MAIL_SERVICE = 0x6D61696C  # "mail": transitions (exclusive) against submissions and results (shared)
    HOURLY_LIMIT = 0x636C6169  # "clai": concurrent claims count a hosting's hand-offs one after the other


def advisory_lock(purpose: LockPurpose, hosting_ids, *, shared: bool = False) -> None:
    """PostgreSQL: take the hostings' advisory locks of `purpose` until commit, in id order
    (one order everywhere: no deadlock). Nothing on other databases."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    namespace = int(purpose) << 32
    keys = [namespace + (hosting_id & 0xFFFFFFFF) for hosting_id in sorted(set(hosting_ids))]
    if not keys:
        return
    with connection.cursor() as cursor:
        # One statement however many hostings (a claim of 500 messages may name hundreds): unnest
        # reads the array out in its order, and each row's lock is taken as the row is produced.
        cursor.execute(f"SELECT {function}(key) FROM unnest(%s::bigint[]) AS key", [keys])


def mail_service_lock(*, hosting_id: int) -> MailService:
    """The hosting's mail service, locked exclusively until commit.

    Row share locks let new readers in while a writer waits, so a flood of submissions could
    hold a block off indefinitely; advisory lock waiters are served in order, so a block waits
    only for the submissions already in progress. Only the service row is locked (`of`): a FOR
    UPDATE on the joined hosting would conflict with every insert referencing it (messages,
    hand-offs, counters) and deadlock with them.
    """
    advisory_lock(LockPurpose.MAIL_SERVICE, [hosting_id])
    return (
        MailService.objects.select_for_update(of=("self",))
        .select_related("hosting__customer")
        .get(hosting_id=hosting_id)
    )


def mail_service_lock_shared_statements(*, hosting_ids) -> list[tuple[str, list]]:
    """`mail_service_lock_shared` as statements (SQL, parameters) to run in this order in one
    transaction: on PostgreSQL each share lock, in id order; last, the read of (hosting_id,
    state), whose snapshot is taken once every lock is held. For a caller that sends them with
    other statements in one round trip (`message_insert.messages_insert`)."""
    hosting_ids = sorted(set(hosting_ids))
    table = MailService._meta.db_table
    placeholders = ", ".join(["%s"] * len(hosting_ids))
    read = (
        f"SELECT hosting_id, state FROM {table} WHERE hosting_id IN ({placeholders}) ORDER BY hosting_id",
        hosting_ids,
    )
    if connection.vendor != "postgresql":
        return [read]
    namespace = int(LockPurpose.MAIL_SERVICE) << 32
    locks = [
        ("SELECT pg_advisory_xact_lock_shared(%s)", [namespace + (hosting_id & 0xFFFFFFFF)])
        for hosting_id in hosting_ids
    ]
    return [*locks, read]


def mail_service_lock_shared_active_statements(*, hosting_ids) -> list[tuple[str, list]]:
    """PostgreSQL: the share locks of `mail_service_lock_shared_statements`, then, in place of
    the read of the states, a statement that fails with a division by zero unless every one of
    these services exists and is active. For a writer that commits in the same round trip only
    what an active service may take, and otherwise starts again reading the states
    (`message_insert.messages_insert_committed`)."""
    hosting_ids = sorted(set(hosting_ids))
    placeholders = ", ".join(["%s"] * len(hosting_ids))
    check = (
        f"SELECT 1 / (count(*) = %s AND count(*) FILTER (WHERE state <> %s) = 0)::int "
        f"FROM {MailService._meta.db_table} WHERE hosting_id IN ({placeholders})",
        [len(hosting_ids), State.ACTIVE, *hosting_ids],
    )
    return [*mail_service_lock_shared_statements(hosting_ids=hosting_ids)[:-1], check]


def mail_service_lock_shared(*, hosting_ids) -> dict[int, str]:
    """The states of these hostings' services, under a shared lock until commit.

    Submissions and delivery results take this lock, transitions the exclusive one: a message
    stored under the shared lock is seen by the block that waits for it (no slip between).
    On PostgreSQL the locks and the read go in one round trip, as statements that follow each
    other: the read's snapshot is taken once every lock is held.
    """
    statements = mail_service_lock_shared_statements(hosting_ids=hosting_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            "; ".join(sql for sql, _params in statements), [p for _sql, params in statements for p in params]
        )
        for _statement in statements[:-1]:
            cursor.nextset()
        return dict(cursor.fetchall())
