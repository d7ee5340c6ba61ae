"""Retention (SPEC §4.2, §4.3): the metadata of finished messages, delivery errors, complaints,
unattributed bounces and finished webhook deliveries is kept RETENTION_DAYS, the relay hand-off log a day, a suppressed
address until its time (SPEC §10.2); then deleted in bounded batches."""

import datetime

from django.conf import settings
from django.utils import timezone

from mailqueue.models import (
    Complaint,
    DeliveryError,
    Message,
    RelayHandoff,
    Suppression,
    UnattributedBounce,
    WebhookDelivery,
    WebhookDeliveryStatus,
)


def retention_apply(*, batch_size: int | None = None) -> dict[str, int]:
    """Delete metadata past RETENTION_DAYS: finished (sent/failed) messages and delivery
    errors; the relay hand-off log after a day. Held, queued and deferred messages are never
    touched here (held ones expire, see `held_expire`)."""
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    now = timezone.now()
    cutoff = now - datetime.timedelta(days=settings.RETENTION_DAYS)
    targets = {
        "messages": Message.objects.finished().filter(completed_at__lt=cutoff),
        "delivery_errors": DeliveryError.objects.filter(created_at__lt=cutoff),
        "complaints": Complaint.objects.filter(created_at__lt=cutoff),
        "unattributed_bounces": UnattributedBounce.objects.filter(created_at__lt=cutoff),
        "suppressions": Suppression.objects.filter(expires_at__lte=now),
        "webhook_deliveries": WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(
            status=WebhookDeliveryStatus.PENDING
        ),
        # Only the rolling hour of hand-offs is read (hourly limit); a day leaves a margin.
        "handoffs": RelayHandoff.objects.filter(at__lt=now - datetime.timedelta(days=1)),
    }
    totals = {}
    for name, queryset in targets.items():
        totals[name] = 0
        while deleted := queryset.delete_batch(batch_size):
            totals[name] += deleted
    return totals
