"""Celery tasks: thin wrappers that re-read rows and call services; each is safe to run twice."""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

from hosting.models import Hosting
from mailqueue import delivery, maintenance
from mailqueue.models import Action, BlockReason, Event

logger = logging.getLogger(__name__)

# A delivery task stops claiming new batches after this long, leaving room under the time limit.
DELIVERY_TASK_BUDGET_SECONDS = 60


# Submissions within this many seconds share one delivery run.
DELIVERY_KICK_WINDOW_SECONDS = 1
DELIVERY_KICK_KEY = "mailqueue:delivery-kick"


def deliver_soon() -> None:
    """Enqueue one delivery run per window, however many messages arrive in it.

    The first submission of a window enqueues a run for the end of the window; the others find
    the key set and enqueue nothing, so a burst costs one broker message, not one per e-mail.
    """
    if cache.add(DELIVERY_KICK_KEY, True, timeout=DELIVERY_KICK_WINDOW_SECONDS):
        deliver_due.apply_async(countdown=DELIVERY_KICK_WINDOW_SECONDS)


@shared_task(acks_late=True)
def deliver_due() -> int:
    """Deliver due queued messages batch after batch until none is left or the budget is spent."""
    started = time.monotonic()
    delivered = 0
    while time.monotonic() - started < DELIVERY_TASK_BUDGET_SECONDS:
        result = delivery.delivery_run_batch()
        if not result.claimed:
            break
        delivered += result.sent
    return delivered


@shared_task(acks_late=True)
def sweep_retries() -> dict:
    """Re-queue deferred messages whose back-off passed and recover stale claims."""
    requeued = delivery.deferred_requeue()
    recovered = delivery.claims_recover()
    if requeued or recovered:
        deliver_due.delay()
    return {"requeued": requeued, "recovered": recovered}


@shared_task(acks_late=True)
def run_purge(hosting_id: int) -> bool:
    """Run the hosting's purge if it is still purging and due; nothing otherwise (a cancelled,
    finished or not-yet-due purge is left alone). Resumes a purge left half done."""
    return maintenance.purge_run(hosting_id=hosting_id) is not None


@shared_task(acks_late=True)
def purge_watchdog() -> list[int]:
    """Enqueue the run of every purge that is due and unfinished (lost task, dead worker).

    A run already in progress is harmless: batches are taken under the hosting's lock and the
    completion happens once.
    """
    due = maintenance.purges_due()
    for hosting_id in due:
        run_purge.delay(hosting_id)
    return due


@shared_task(acks_late=True)
def expire_held() -> dict:
    """Delete held messages past their 72 h (HOLD_HOURS); counts and Events per hosting."""
    return maintenance.held_expire()


@shared_task(acks_late=True)
def apply_retention() -> dict:
    """Delete finished messages' metadata and delivery errors past RETENTION_DAYS."""
    return maintenance.retention_apply()


@shared_task(acks_late=True)
def abuse_check() -> list:
    """Block active services over the abuse thresholds; each block notifies once."""
    return maintenance.abuse_check()


# The notice of one automatic block is sent once: the key names that block's Event.
AUTO_BLOCK_NOTICE_KEY_TIMEOUT = 30 * 24 * 3600


@shared_task(acks_late=True)
def notify_auto_block(hosting_id: int, reason: str) -> bool:
    """Tell the customer's contact, in their language, that the platform blocked sending.

    Sends at most one notice per automatic block (its Event), even if the task runs twice;
    a failed send is not remembered, so a redelivery tries again.
    """
    hosting = Hosting.objects.select_related("customer").filter(pk=hosting_id).first()
    if hosting is None:
        return False
    event = (
        Event.objects.filter(hosting=hosting, action=Action.AUTO_BLOCK, reason=reason)
        .order_by("-created_at", "-id")
        .first()
    )
    if event is None:
        return False
    key = f"mailqueue:auto-block-notice:{hosting.pk}:{event.pk}:{event.created_at.timestamp()}"
    if not cache.add(key, True, timeout=AUTO_BLOCK_NOTICE_KEY_TIMEOUT):
        return False
    customer = hosting.customer
    try:
        with translation.override(customer.language):
            context = {
                "hosting": hosting,
                "customer": customer,
                "reason": BlockReason(reason).label,
                "reason_code": reason,
                "hold_hours": settings.HOLD_HOURS,
            }
            subject = " ".join(render_to_string("mailqueue/email/auto_block_subject.txt", context).split())
            body = render_to_string("mailqueue/email/auto_block.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [customer.contact_email])
    except Exception:
        cache.delete(key)
        raise
    return True
