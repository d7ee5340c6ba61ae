"""The abuse thresholds (SPEC §3 "automatic block"): too many messages too fast (`rate`), too
many errors (`bounce`, relay refusals and later bounce reports alike, SPEC §10.1), too many
complaints (`spam`, SPEC §10.1), checked every minute over the last hour."""

import datetime
import logging
from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, Exists, F, Min, OuterRef, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from hosting.models import Hosting
from mailqueue.blocking import mail_service_auto_block
from mailqueue.hourly_limit import hourly_limits_of
from mailqueue.models import (
    BlockReason,
    Complaint,
    DeliveryError,
    ErrorKind,
    MailService,
    Message,
    MessageStatus,
    State,
)
from mailqueue.state import MailServiceError

logger = logging.getLogger(__name__)


def _without_jit(queryset) -> list:
    """The rows of `queryset`, read with PostgreSQL's JIT off: at a million messages its cost
    estimate turns JIT compilation on, which costs more than the query (bench/bounces.py)."""
    if connection.vendor != "postgresql":
        return list(queryset)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        return list(queryset)


def abuse_check() -> list[tuple[int, str]]:
    """Block active services over the thresholds of the last hour: more than ABUSE_RATE_FACTOR
    × their hourly limit submitted (`rate`), or over ABUSE_BOUNCE_RATIO of errors among at least
    ABUSE_BOUNCE_MIN_MESSAGES finished messages (`bounce`; a message failed only because its
    recipients were suppressed does not count), or SPAM_BLOCK_COUNT complaints and messages
    spamd kept from the relay (`spam`).
    Returns what was blocked.

    The hour never reaches back before the service last became active, so a customer who
    unblocks after an automatic block is not blocked again for the same burst.
    """
    since = timezone.now() - datetime.timedelta(hours=1)
    window_start = Greatest(Value(since, output_field=DateTimeField()), F("hosting__mail_service__state_changed_at"))
    active = Q(hosting__mail_service__state=State.ACTIVE)
    # Only hostings over the lowest active limit can be over their own: the count skips the rest.
    lowest_limit = (
        MailService.objects.filter(state=State.ACTIVE)
        .with_hourly_limit()
        .aggregate(lowest=Min("effective_hourly_limit"))["lowest"]
    )
    if lowest_limit is None:
        return []  # no active service

    blocked: list[tuple[int, str, str]] = []
    submitted = dict(
        Message.objects.filter(active, created_at__gte=window_start)
        .values("hosting_id")
        .annotate(count=Count("id"))
        .filter(count__gt=settings.ABUSE_RATE_FACTOR * lowest_limit)
        .order_by()
        .values_list("hosting_id", "count")
    )
    for hosting_id, limit in hourly_limits_of(submitted).items():
        if submitted[hosting_id] > settings.ABUSE_RATE_FACTOR * limit:
            blocked.append((hosting_id, BlockReason.RATE, f"{submitted[hosting_id]} messages in one hour"))
    # Failed before the relay (a suppressed address, spam): not the recipients' servers' errors.
    suppressed = DeliveryError.objects.filter(
        message_id=OuterRef("pk"), kind__in=[ErrorKind.SUPPRESSED, ErrorKind.SPAM]
    )
    finished = (
        Message.objects.finished()
        # The plain bound lets PostgreSQL use the completed_at index; GREATEST alone cannot.
        .filter(active, completed_at__gte=since)
        .filter(completed_at__gte=window_start)
        .values("hosting_id", "hosting__mail_service__forced")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status=MessageStatus.FAILED) & ~Exists(suppressed)))
        .filter(total__gte=settings.ABUSE_BOUNCE_MIN_MESSAGES)
        .order_by()
    )
    already = {hosting_id for hosting_id, *_rest in blocked}
    for row in _without_jit(finished):
        # Force (SPEC §9.1) doubles the ratio allowed.
        allowed = settings.ABUSE_BOUNCE_RATIO * (2 if row["hosting__mail_service__forced"] else 1)
        if row["hosting_id"] not in already and row["failed"] / row["total"] > allowed:
            blocked.append((row["hosting_id"], BlockReason.BOUNCE, f"{row['failed']}/{row['total']} in error"))
    already = {hosting_id for hosting_id, *_rest in blocked}
    # Spam: complaints and messages spamd kept from the relay, together (SPEC §10.1, §11.1).
    spam_counts: Counter[int] = Counter(
        dict(
            Complaint.objects.filter(active, created_at__gte=since)
            .filter(created_at__gte=window_start)
            .values("hosting_id")
            .annotate(count=Count("id"))
            .order_by()
            .values_list("hosting_id", "count")
        )
    )
    spam_counts.update(
        dict(
            DeliveryError.objects.filter(active, kind=ErrorKind.SPAM, created_at__gte=since)
            .filter(created_at__gte=window_start)
            .values("hosting_id")
            .annotate(count=Count("message_id", distinct=True))
            .order_by()
            .values_list("hosting_id", "count")
        )
    )
    for hosting_id, count in sorted(spam_counts.items()):
        if count >= settings.SPAM_BLOCK_COUNT and hosting_id not in already:
            blocked.append((hosting_id, BlockReason.SPAM, f"{count} spam e-mails or complaints in one hour"))
    done = []
    for hosting_id, reason, detail in blocked:
        try:
            mail_service_auto_block(hosting=Hosting.objects.get(pk=hosting_id), reason=reason, detail=detail)
        except MailServiceError:
            continue  # blocked meanwhile by someone else
        logger.warning("automatic block of hosting %s: %s (%s)", hosting_id, reason, detail)
        done.append((hosting_id, str(reason)))
    return done
