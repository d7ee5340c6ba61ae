"""Retries (SPEC §4.2, §4.3): the back-off, deferred messages due again, claims of dead workers."""

import datetime
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailqueue import dispatch
from mailqueue.counters import counter_add
from mailqueue.hourly_limit import handoffs_return
from mailqueue.locks import mail_service_lock_shared
from mailqueue.models import Message, MessageStatus, State


def backoff(attempts: int) -> datetime.timedelta:
    """Exponential back-off after `attempts` attempts, capped at RETRY_MAX_DELAY_SECONDS."""
    seconds = settings.RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return datetime.timedelta(seconds=min(seconds, settings.RETRY_MAX_DELAY_SECONDS))


def retries_exhausted(message: Message, now: datetime.datetime) -> bool:
    """True when the next attempt would come after RETRY_MAX_AGE_SECONDS of the message's life."""
    return now + backoff(message.attempts) > message.created_at + datetime.timedelta(
        seconds=settings.RETRY_MAX_AGE_SECONDS
    )


def deferred_requeue() -> int:
    """Deferred messages whose back-off has passed go back to the queue."""
    return Message.objects.deferred_due(timezone.now()).update(status=MessageStatus.QUEUED)


def claims_recover(*, older_than: int | None = None) -> int:
    """Claims left by dead workers go back to the queue, or to the held mail when their service
    is no longer active, and give back their places in the hourly limit.

    A live worker's heartbeat renews its claim every DELIVERY_CLAIM_HEARTBEAT seconds, so a
    claim not renewed for `older_than` seconds (DELIVERY_CLAIM_TIMEOUT by default; 0 when the
    worker is known dead) is a dead worker's."""
    if older_than is None:
        older_than = settings.DELIVERY_CLAIM_TIMEOUT
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than)
    stale = Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=cutoff)
    recovered = 0
    for hosting_id in stale.order_by().values_list("hosting_id", flat=True).distinct():
        with transaction.atomic():
            state = mail_service_lock_shared(hosting_ids=[hosting_id])[hosting_id]
            now = timezone.now()
            mine = stale.filter(hosting_id=hosting_id)
            for token, count in Counter(mine.values_list("claim_token", flat=True)).items():
                handoffs_return(token=token, per_hosting={hosting_id: count})
            if state == State.ACTIVE:
                recovered += mine.release(now)
            else:
                held = mine.hold(now)
                counter_add(hosting_id=hosting_id, held=held)
                recovered += held
    return recovered


def retries_sweep() -> dict:
    """Re-queue deferred messages whose back-off passed and recover stale claims; then a
    delivery run if anything came back."""
    requeued = deferred_requeue()
    recovered = claims_recover()
    if requeued or recovered:
        dispatch.delivery_now()
    return {"requeued": requeued, "recovered": recovered}
