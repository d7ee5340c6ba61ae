"""The 72 h expiry of held mail (SPEC §3, §4.3): held messages past `held_until`
(HOLD_HOURS after they were held) are deleted, counted per hosting and day, with one Event
per hosting and run.

Safe to run twice at once and after a crash: each batch is one statement whose count is
added in the same transaction; memory stays flat (no ids through Python on PostgreSQL).
"""

import logging
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mailqueue.counters import counter_add
from mailqueue.models import Action, ActorKind, Event, MailService, Message, MessageStatus, WebhookEvent
from mailqueue.webhooks import webhook_hosting_event

logger = logging.getLogger(__name__)


def held_expire(*, batch_size: int | None = None) -> dict[int, int]:
    """Delete held messages whose `held_until` has passed (held_until <= now); count them in
    the hosting's counter of the day (`expired`, same transaction as each batch) and write one
    Event per hosting and run. Returns {hosting_id: deleted}."""
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    now = timezone.now()
    if connection.vendor == "postgresql":
        totals = _expire_by_address(now=now, batch_size=batch_size)
        for hosting_id, total in sorted(totals.items()):
            _expire_event(hosting_id=hosting_id, total=total)
        return totals
    due = Message.objects.held().filter(held_until__lte=now)
    hosting_ids = list(due.order_by().values_list("hosting_id", flat=True).distinct())
    totals: dict[int, int] = {}
    for hosting_id in sorted(hosting_ids):
        total = 0
        while True:
            with transaction.atomic():
                deleted = due.filter(hosting_id=hosting_id).delete_batch(batch_size)
                counter_add(hosting_id=hosting_id, expired=deleted)
            total += deleted
            if deleted < batch_size:
                break
        if not total:
            continue  # released or purged meanwhile
        totals[hosting_id] = total
        _expire_event(hosting_id=hosting_id, total=total)
    return totals


def _expire_by_address(*, now, batch_size: int) -> dict[int, int]:
    """PostgreSQL: expire every hosting at once, each batch one DELETE by physical address
    (TID scan) whose rows are counted per hosting by the server (a row each through Python made
    the expiry of 100,000 messages take 1.3× as long), added in the same transaction."""
    table = Message._meta.db_table
    sql = (
        f"WITH gone AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE status = %s AND held_until <= %s LIMIT %s"
        f")) AND status = %s AND held_until <= %s RETURNING hosting_id) "
        "SELECT hosting_id, count(*) FROM gone GROUP BY hosting_id ORDER BY hosting_id"
    )
    totals: dict[int, int] = defaultdict(int)
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [MessageStatus.HELD, now, batch_size, MessageStatus.HELD, now])
            per_hosting = cursor.fetchall()
            for hosting_id, deleted in per_hosting:
                counter_add(hosting_id=hosting_id, expired=deleted)
                totals[hosting_id] += deleted
        if sum(deleted for _hosting_id, deleted in per_hosting) < batch_size:
            return dict(totals)


def _expire_event(*, hosting_id: int, total: int) -> None:
    state = MailService.objects.filter(hosting_id=hosting_id).values_list("state", flat=True).first() or ""
    Event.objects.create(
        hosting_id=hosting_id,
        action=Action.EXPIRE,
        from_state=state,
        to_state=state,
        actor_kind=ActorKind.SYSTEM,
        actor_label="system",
        message_count=total,
        detail=f"held more than {settings.HOLD_HOURS} h",
    )
    data = {"count": total, "hold_hours": settings.HOLD_HOURS}
    webhook_hosting_event(hosting=hosting_id, event_type=WebhookEvent.MESSAGE_EXPIRED, data=data)
