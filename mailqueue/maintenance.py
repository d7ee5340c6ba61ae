"""Periodic work on the queue: purge runs, 72 h expiry, retention, abuse thresholds.

Each function is safe to run twice at once and after a crash: it re-reads the rows, deletes
in bounded batches and counts what its own statements deleted.
"""

import datetime
import logging
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
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
        MailService.objects.filter(state=State.PURGING, purge_due_at__lte=timezone.now()).values_list(
            "hosting_id", flat=True
        )
    )


def held_expire(*, batch_size: int | None = None) -> dict[int, int]:
    """Delete held messages whose `held_until` has passed; count them per hosting and day and
    write one Event per hosting. Returns {hosting_id: deleted}."""
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    now = timezone.now()
    due = Message.objects.filter(status=MessageStatus.HELD, held_until__lte=now)
    totals: dict[int, int] = defaultdict(int)
    for hosting_id in list(due.values_list("hosting_id", flat=True).distinct().order_by()):
        while True:
            with transaction.atomic():
                ids = list(due.filter(hosting_id=hosting_id).order_by("id").values_list("id", flat=True)[:batch_size])
                if not ids:
                    break
                deleted, _ = Message.objects.filter(id__in=ids, status=MessageStatus.HELD, held_until__lte=now).delete()
                counter_add(hosting_id=hosting_id, expired=deleted)
                totals[hosting_id] += deleted
        if totals[hosting_id]:
            state = MailService.objects.filter(hosting_id=hosting_id).values_list("state", flat=True).first() or ""
            Event.objects.create(
                hosting_id=hosting_id,
                action=Action.EXPIRE,
                from_state=state,
                to_state=state,
                actor_kind=ActorKind.SYSTEM,
                actor_label="system",
                message_count=totals[hosting_id],
                detail=f"held more than {settings.HOLD_HOURS} h",
            )
    return dict(totals)


def retention_apply(*, batch_size: int | None = None) -> dict[str, int]:
    """Delete metadata past RETENTION_DAYS: finished messages, delivery errors, hand-off log."""
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    cutoff = timezone.now() - datetime.timedelta(days=settings.RETENTION_DAYS)
    targets = {
        "messages": Message.objects.filter(
            status__in=[MessageStatus.SENT, MessageStatus.FAILED], completed_at__lt=cutoff
        ),
        "delivery_errors": DeliveryError.objects.filter(created_at__lt=cutoff),
        "handoffs": RelayHandoff.objects.filter(at__lt=timezone.now() - datetime.timedelta(days=1)),
    }
    totals = {}
    for name, queryset in targets.items():
        totals[name] = 0
        while ids := list(queryset.order_by().values_list("id", flat=True)[:batch_size]):
            deleted, _ = queryset.model.objects.filter(id__in=ids).delete()
            totals[name] += deleted
    return totals


def abuse_check() -> list[tuple[int, str]]:
    """Block active services over the thresholds of the last hour: more than ABUSE_RATE_FACTOR
    × their hourly limit submitted (`rate`), or over ABUSE_BOUNCE_RATIO of errors among at least
    ABUSE_BOUNCE_MIN_MESSAGES finished messages (`bounce`). Returns what was blocked."""
    since = timezone.now() - datetime.timedelta(hours=1)
    active = Q(hosting__mail_service__state=State.ACTIVE)
    blocked: list[tuple[int, str]] = []
    submitted = (
        Message.objects.filter(active, created_at__gte=since)
        .values("hosting_id", "hosting__plan", "hosting__mail_service__hourly_limit_override")
        .annotate(count=Count("id"))
        .filter(count__gt=settings.ABUSE_RATE_FACTOR * min(PLAN_HOURLY_LIMITS.values()))
    )
    for row in submitted:
        limit = row["hosting__mail_service__hourly_limit_override"] or PLAN_HOURLY_LIMITS[Plan(row["hosting__plan"])]
        if row["count"] > settings.ABUSE_RATE_FACTOR * limit:
            blocked.append((row["hosting_id"], BlockReason.RATE, f"{row['count']} messages in one hour"))
    finished = (
        Message.objects.filter(active, status__in=[MessageStatus.SENT, MessageStatus.FAILED], completed_at__gte=since)
        .values("hosting_id")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status=MessageStatus.FAILED)))
        .filter(total__gte=settings.ABUSE_BOUNCE_MIN_MESSAGES)
    )
    already = {hosting_id for hosting_id, *_ in blocked}
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
