"""Periodic work on the queue: purge runs, 72 h expiry, retention, abuse thresholds.

Each function is safe to run twice at once and after a crash: it re-reads the rows, deletes
in bounded batches (one statement each, no ids through Python, memory flat) and counts what
its own statements deleted.
"""

import datetime
import logging
from collections import Counter, defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, F, Min, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from hosting.models import PLAN_HOURLY_LIMITS, Hosting, Plan
from mailqueue.counters import counter_add
from mailqueue.models import (
    Action,
    ActorKind,
    BlockReason,
    DeliveryError,
    Event,
    MailService,
    Message,
    MessageStatus,
    RelayHandoff,
    State,
)
from mailqueue.services import (
    MailServiceError,
    mail_service_auto_block,
    mail_service_purge_complete,
    mail_service_purge_delete_batch,
    mail_service_purge_start,
)

logger = logging.getLogger(__name__)


def _delete_batch(queryset: QuerySet, batch_size: int) -> int:
    """Delete up to `batch_size` rows of `queryset` in one statement
    (DELETE … WHERE id IN (SELECT id … LIMIT n) AND <the same conditions>); return how many went.

    The conditions are repeated on the outer statement so a row changed meanwhile (e.g. an
    unblocked message no longer held) is left alone.
    """
    batch = queryset.order_by().values("id")[:batch_size]  # no order: the best index, no sort
    deleted, _per_model = queryset.filter(id__in=batch).delete()
    return deleted


# --- purge -------------------------------------------------------------------------------


def purge_run(*, hosting_id: int) -> MailService | None:
    """Run the hosting's purge if it is purging and due: delete held mail in batches, then
    return to active. Resumable after a crash; a concurrent second run deletes and completes
    nothing more. Returns the completed service, or None when there was nothing to do."""
    hosting = Hosting.objects.filter(pk=hosting_id).first()
    if hosting is None:
        return None
    purge = mail_service_purge_start(hosting=hosting)
    if purge is None:
        return None
    while mail_service_purge_delete_batch(hosting=hosting, purge=purge):
        pass
    service = mail_service_purge_complete(hosting=hosting)
    if service is not None:
        logger.info("purge of %s complete", hosting.service_name)
    return service


def purges_due() -> list[int]:
    """Hostings whose purge is due and not finished (the watchdog runs them)."""
    return list(
        MailService.objects.filter(state=State.PURGING, purge_due_at__lte=timezone.now())
        .order_by("purge_due_at")
        .values_list("hosting_id", flat=True)
    )


# --- 72 h expiry -------------------------------------------------------------------------


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
    due = Message.objects.filter(status=MessageStatus.HELD, held_until__lte=now)
    hosting_ids = list(due.order_by().values_list("hosting_id", flat=True).distinct())
    totals: dict[int, int] = {}
    for hosting_id in sorted(hosting_ids):
        total = 0
        while True:
            with transaction.atomic():
                deleted = _delete_batch(due.filter(hosting_id=hosting_id), batch_size)
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
    (TID scan) returning the hostings, counted in the same transaction."""
    table = Message._meta.db_table
    sql = (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE status = %s AND held_until <= %s LIMIT %s"
        f")) AND status = %s AND held_until <= %s RETURNING hosting_id"
    )
    totals: dict[int, int] = defaultdict(int)
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [MessageStatus.HELD, now, batch_size, MessageStatus.HELD, now])
            per_hosting = Counter(hosting_id for (hosting_id,) in cursor.fetchall())
            for hosting_id, deleted in sorted(per_hosting.items()):
                counter_add(hosting_id=hosting_id, expired=deleted)
                totals[hosting_id] += deleted
        if sum(per_hosting.values()) < batch_size:
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


# --- retention ---------------------------------------------------------------------------


def retention_apply(*, batch_size: int | None = None) -> dict[str, int]:
    """Delete metadata past RETENTION_DAYS: finished (sent/failed) messages and delivery
    errors; the relay hand-off log after a day. Held, queued and deferred messages are never
    touched here (held ones expire, see `held_expire`)."""
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    now = timezone.now()
    cutoff = now - datetime.timedelta(days=settings.RETENTION_DAYS)
    targets = {
        "messages": Message.objects.filter(
            status__in=[MessageStatus.SENT, MessageStatus.FAILED], completed_at__lt=cutoff
        ),
        "delivery_errors": DeliveryError.objects.filter(created_at__lt=cutoff),
        # Only the rolling hour of hand-offs is read (hourly limit); a day leaves a margin.
        "handoffs": RelayHandoff.objects.filter(at__lt=now - datetime.timedelta(days=1)),
    }
    totals = {}
    for name, queryset in targets.items():
        totals[name] = 0
        while deleted := _delete_batch(queryset, batch_size):
            totals[name] += deleted
    return totals


# --- abuse thresholds --------------------------------------------------------------------


def abuse_check() -> list[tuple[int, str]]:
    """Block active services over the thresholds of the last hour: more than ABUSE_RATE_FACTOR
    × their hourly limit submitted (`rate`), or over ABUSE_BOUNCE_RATIO of errors among at least
    ABUSE_BOUNCE_MIN_MESSAGES finished messages (`bounce`). Returns what was blocked.

    The hour never reaches back before the service last became active, so a customer who
    unblocks after an automatic block is not blocked again for the same burst.
    """
    since = timezone.now() - datetime.timedelta(hours=1)
    window_start = Greatest(Value(since, output_field=DateTimeField()), F("hosting__mail_service__state_changed_at"))
    active = Q(hosting__mail_service__state=State.ACTIVE)
    lowest_override = MailService.objects.filter(state=State.ACTIVE, hourly_limit_override__isnull=False).aggregate(
        lowest=Min("hourly_limit_override")
    )["lowest"]
    lowest_limit = min([*PLAN_HOURLY_LIMITS.values(), *([lowest_override] if lowest_override else [])])

    blocked: list[tuple[int, str, str]] = []
    submitted = (
        Message.objects.filter(active, created_at__gte=window_start)
        .values("hosting_id", "hosting__plan", "hosting__mail_service__hourly_limit_override")
        .annotate(count=Count("id"))
        .filter(count__gt=settings.ABUSE_RATE_FACTOR * lowest_limit)
        .order_by()
    )
    for row in submitted:
        limit = row["hosting__mail_service__hourly_limit_override"]
        if limit is None:
            limit = PLAN_HOURLY_LIMITS[Plan(row["hosting__plan"])]
        if row["count"] > settings.ABUSE_RATE_FACTOR * limit:
            blocked.append((row["hosting_id"], BlockReason.RATE, f"{row['count']} messages in one hour"))
    finished = (
        Message.objects.filter(
            active, status__in=[MessageStatus.SENT, MessageStatus.FAILED], completed_at__gte=window_start
        )
        .values("hosting_id")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status=MessageStatus.FAILED)))
        .filter(total__gte=settings.ABUSE_BOUNCE_MIN_MESSAGES)
        .order_by()
    )
    already = {hosting_id for hosting_id, *_rest in blocked}
    for row in finished:
        if row["hosting_id"] not in already and row["failed"] / row["total"] > settings.ABUSE_BOUNCE_RATIO:
            blocked.append((row["hosting_id"], BlockReason.BOUNCE, f"{row['failed']}/{row['total']} in error"))
    done = []
    for hosting_id, reason, detail in blocked:
        try:
            mail_service_auto_block(hosting=Hosting.objects.get(pk=hosting_id), reason=reason, detail=detail)
        except MailServiceError:
            continue  # blocked meanwhile by someone else
        logger.warning("automatic block of hosting %s: %s (%s)", hosting_id, reason, detail)
        done.append((hosting_id, str(reason)))
    return done
