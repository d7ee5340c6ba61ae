"""Celery tasks: thin wrappers that re-read rows and call services; each is safe to run twice."""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

from hosting.models import Hosting
from mailqueue import delivery, maintenance
from mailqueue.models import BlockReason

logger = logging.getLogger(__name__)

# A delivery task stops claiming new batches after this long, leaving room under the time limit.
DELIVERY_TASK_BUDGET_SECONDS = 60


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
    """Run the hosting's purge if it is still purging and due; nothing otherwise."""
    return maintenance.purge_run(hosting_id=hosting_id) is not None


@shared_task(acks_late=True)
def purge_watchdog() -> list[int]:
    """Run every purge that is due and unfinished (lost task, dead worker)."""
    due = maintenance.purges_due()
    for hosting_id in due:
        run_purge.delay(hosting_id)
    return due


@shared_task(acks_late=True)
def expire_held() -> dict:
    return maintenance.held_expire()


@shared_task(acks_late=True)
def apply_retention() -> dict:
    return maintenance.retention_apply()


@shared_task(acks_late=True)
def abuse_check() -> list:
    return maintenance.abuse_check()


@shared_task(acks_late=True)
def notify_auto_block(hosting_id: int, reason: str) -> bool:
    """Tell the customer's contact, in their language, that the platform blocked sending."""
    hosting = Hosting.objects.select_related("customer").filter(pk=hosting_id).first()
    if hosting is None:
        return False
    customer = hosting.customer
    with translation.override(customer.language):
        context = {
            "hosting": hosting,
            "customer": customer,
            "reason": BlockReason(reason).label,
            "reason_code": reason,
        }
        subject = render_to_string("mailqueue/email/auto_block_subject.txt", context).strip()
        body = render_to_string("mailqueue/email/auto_block.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [customer.contact_email])
    return True
