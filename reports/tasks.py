"""Celery tasks of the reports app: thin, idempotent wrappers around reports.services."""

import datetime

from celery import shared_task

from reports import services


@shared_task(acks_late=True)
def error_digests_send(day: str | None = None) -> dict:
    """Send the error digests of `day` (ISO date; the previous local day by default) and retry
    unsent ones of the days before. Safe to run twice, or from two beat processes at once."""
    return services.error_digests_send(day=datetime.date.fromisoformat(day) if day else None)


@shared_task(acks_late=True)
def error_digests_retry() -> dict:
    """Retry the digests whose send failed or whose run died (hourly)."""
    return services.error_digests_retry()
