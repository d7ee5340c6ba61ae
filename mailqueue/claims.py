"""Claiming due messages for delivery (SPEC §4.2), within each hosting's hourly limit.

Claims use SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL; on SQLite every transaction is
IMMEDIATE, so claims are serialised by the database lock. A claim only takes messages of
services that are active at claim time: once a block commits, no later claim takes its mail.
"""

import datetime
import functools
import logging
import threading
import uuid
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from mailqueue.hourly_limit import HOUR, handoffs_record, hourly_limits_of, hourly_usage, hourly_usage_lock
from mailqueue.models import MailService, Message, MessageStatus, State, queued_fields

logger = logging.getLogger(__name__)

# Rounds of candidates one claim looks at when every candidate so far was over its hourly limit.
CLAIM_ROUNDS = 10


def delivery_claim(*, limit: int | None = None) -> tuple[uuid.UUID, list[Message]]:
    """Claim up to `limit` due queued messages of active services, within hourly limits; the
    claimed messages (without their raw content), in id order, as the claim left them.

    Messages beyond a hosting's rolling-hour limit stay queued with `next_attempt_at` moved to
    when the oldest hand-off of the hour ages out: they wait, they are not rejected.
    """
    limit = limit or settings.DELIVERY_BATCH_SIZE
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        # A hosting over its limit pushes its candidates an hour ahead and the next round looks
        # further: one tenant's backlog never hides the others' mail from a claim.
        taken: list[Message] = []
        for _round in range(CLAIM_ROUNDS):
            taken_now, postponed = _claim_round(token=token, now=now, limit=limit - len(taken))
            taken += taken_now
            if not postponed or len(taken) >= limit:
                break
    return token, sorted(taken, key=lambda message: message.pk)


def due_candidates(now: datetime.datetime, limit: int):
    """The first `limit` due queued messages of active services, oldest due first, locked (those
    another claim holds skipped). The state is a semi-join on the service's primary key, no join
    through the hosting: with the service tables' statistics fresh, PostgreSQL walks the queue's
    (next_attempt_at, id) index and stops at `limit` either way, but without them (tables that
    autovacuum never analyzed: few hostings, few changes) the join made it read and sort every due
    message at each claim (bench/claim.py: 28.6 ms a claim of 100 at 30,000 due, 7.0 this way)."""
    active = MailService.objects.filter(hosting_id=OuterRef("hosting_id"), state=State.ACTIVE)
    return (
        Message.objects.due(now)
        .filter(Exists(active))
        .order_by("next_attempt_at", "id")
        .select_for_update(skip_locked=True, of=("self",))[:limit]
    )


def _claim_round(*, token: uuid.UUID, now: datetime.datetime, limit: int) -> tuple[list[Message], int]:
    """One round of `delivery_claim` (inside its transaction): the messages taken, and how many
    candidates were given back because their hosting had reached its hourly limit.

    The candidates are claimed first, all of them (`_candidates_claim`: one statement), and the
    hostings' hourly usage counted after, under its lock: those over their limit go back to the
    queue, an hour later, in the same transaction. Nothing outside it sees the difference."""
    # RETURNING gives the rows in no particular order: walked oldest due first, as the queue is,
    # a hosting near its limit sends its oldest mail and pushes back the newest.
    candidates = sorted(_candidates_claim(token=token, now=now, limit=limit), key=_due_order)
    if not candidates:
        return [], 0
    hosting_ids = {message.hosting_id for message in candidates}
    hourly_usage_lock(hosting_ids)
    limits = hourly_limits_of(hosting_ids)
    usage = hourly_usage(hosting_ids, now=now)
    taken: list[Message] = []
    waiting: dict[int, list[int]] = defaultdict(list)
    per_hosting: dict[int, int] = defaultdict(int)
    for message in candidates:
        used = usage.get(message.hosting_id, {}).get("used", 0)
        if used + per_hosting[message.hosting_id] < limits.get(message.hosting_id, 0):
            per_hosting[message.hosting_id] += 1
            taken.append(message)
        else:
            waiting[message.hosting_id].append(message.pk)
    for hosting_id, message_ids in waiting.items():
        oldest = usage.get(hosting_id, {}).get("oldest") or now
        Message.objects.filter(id__in=message_ids).update(**queued_fields(oldest + HOUR), attempts=F("attempts") - 1)
    if taken:
        handoffs_record(per_hosting, at=now, token=token)
    return taken, sum(len(message_ids) for message_ids in waiting.values())


def _due_order(message: Message) -> tuple:
    return message.next_attempt_at, message.pk


def _candidates_claim(*, token: uuid.UUID, now: datetime.datetime, limit: int) -> list[Message]:
    """`due_candidates` claimed by `token` in one UPDATE … RETURNING (PostgreSQL; SQLite 3.35 and
    later), their rows as the claim left them, the raw content deferred: locking them first and
    reading them again after would walk every row three times."""
    candidates = due_candidates(now, limit).values("id")
    subquery, subquery_params = candidates.query.get_compiler(connection=connection).as_sql()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _claim_returned_fields())
    sql = (
        f"UPDATE {quote(Message._meta.db_table)} SET {quote('status')} = %s, {quote('claim_token')} = %s, "
        f"{quote('claimed_at')} = %s, {quote('attempts')} = {quote('attempts')} + 1 "
        f"WHERE {quote('id')} IN ({subquery}) RETURNING {columns}"
    )
    claim = Message._meta.get_field("claim_token").get_db_prep_value(token, connection)
    claimed_at = Message._meta.get_field("claimed_at").get_db_prep_value(now, connection)
    return list(Message.objects.raw(sql, [MessageStatus.SENDING, claim, claimed_at, *subquery_params]))


@functools.cache
def _claim_returned_fields() -> tuple:
    return tuple(field for field in Message._meta.concrete_fields if field.name != "raw")


class ClaimHeartbeat:
    """While a batch runs, renew its claim (`claimed_at`) every DELIVERY_CLAIM_HEARTBEAT seconds
    from a thread, so that only a dead worker's claim ages past DELIVERY_CLAIM_TIMEOUT and is
    recovered (`retries.claims_recover`), however long one message takes to send."""

    def __init__(self, token: uuid.UUID, *, expected=None):
        """`expected()`: how many of the claim's messages are still being delivered; a beat that
        renews fewer sets `lost` (recovered while this worker was stalled: stop sending)."""
        self.token = token
        self.expected = expected
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim-heartbeat-{token}", daemon=True)

    def __enter__(self) -> "ClaimHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.DELIVERY_CLAIM_HEARTBEAT):
                try:
                    renewed = Message.objects.filter(claim_token=self.token, status=MessageStatus.SENDING).update(
                        claimed_at=timezone.now()
                    )
                except Exception:  # the next beat tries again, on a new connection
                    logger.warning("claim heartbeat of %s failed", self.token, exc_info=True)
                    connection.close()
                    continue
                if self.expected is not None and renewed < self.expected():
                    self.lost = True
        finally:
            connection.close()  # this thread's own connection
