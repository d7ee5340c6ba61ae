"""Celery tasks: one line each, named after the service they call; each is safe to run twice
(acks late, the service re-reads the rows). They are enqueued by name from `dispatch`."""

from celery import shared_task

from mailqueue import (
    abuse,
    delivery_runs,
    expiry,
    notifications,
    purge,
    retention,
    retries,
    service_notices,
    webhook_sending,
)


@shared_task(acks_late=True)
def delivery_run() -> int:
    """Deliver due queued messages until none is left or the run's budget is spent; how many were sent."""
    return delivery_runs.delivery_run().sent


@shared_task(acks_late=True)
def retries_sweep() -> dict:
    """Re-queue deferred messages whose back-off passed and recover stale claims."""
    return retries.retries_sweep()


@shared_task(acks_late=True)
def purge_run(hosting_id: int) -> bool:
    """Run the hosting's purge if it is still purging and due; resumes one left half done."""
    return purge.purge_run(hosting_id=hosting_id) is not None


@shared_task(acks_late=True)
def purge_watchdog() -> list[int]:
    """Enqueue the run of every purge that is due and unfinished."""
    return purge.purge_watchdog()


@shared_task(acks_late=True)
def held_expire() -> dict:
    """Delete held messages past their HOLD_HOURS; counts and Events per hosting."""
    return expiry.held_expire()


@shared_task(acks_late=True)
def retention_apply() -> dict:
    """Delete finished messages' metadata and delivery errors past RETENTION_DAYS."""
    return retention.retention_apply()


@shared_task(acks_late=True)
def abuse_check() -> list:
    """Block active services over the abuse thresholds; each block notifies once."""
    return abuse.abuse_check()


# A notice whose mailer fails is tried again, for about an hour and a half, then logged as lost.
NOTICE_RETRY = {"autoretry_for": (Exception,), "retry_backoff": 30, "retry_backoff_max": 600, "max_retries": 12}


@shared_task(acks_late=True, **NOTICE_RETRY)
def auto_block_notify(event_id: int) -> bool:
    """Tell the customer's contact that the platform blocked sending (once per block)."""
    return notifications.auto_block_notify(event_id=event_id)


@shared_task(acks_late=True, **NOTICE_RETRY)
def abuse_notify(event_id: int) -> bool:
    """Send the abuse notice of a spam block (once per block)."""
    return notifications.abuse_notify(event_id=event_id)


@shared_task(acks_late=True)
def webhooks_send_due() -> int:
    """Attempt the webhook deliveries that are due (each attempt logged; failures retried later)."""
    return webhook_sending.webhooks_send_due()


@shared_task(acks_late=True, **NOTICE_RETRY)
def service_notice(event_id: int) -> bool:
    """Tell the report recipient of a block or unblock not asked by the customer, or a purge's end."""
    return service_notices.service_notice(event_id=event_id)


@shared_task(acks_late=True, **NOTICE_RETRY)
def webhook_disabled_notify(endpoint_id: int) -> bool:
    """Tell the customer that a webhook endpoint was disabled after a day of failures (once)."""
    return service_notices.webhook_disabled_notify(endpoint_id=endpoint_id)
