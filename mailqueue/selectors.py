"""Reads of the mail service for pages and the API; each costs a fixed number of queries."""

import dataclasses
import datetime

from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from hosting.models import Hosting
from mailqueue.models import DailyCounter, DeliveryError, MailService, Message, MessageStatus


@dataclasses.dataclass(frozen=True)
class MailServiceSummary:
    service: MailService
    sent_total: int
    error_total: int
    sent_today: int
    hourly_limit: int
    held_count: int
    held_oldest: datetime.datetime | None
    held_next_expiry: datetime.datetime | None


def mail_service_summary(*, hosting: Hosting) -> MailServiceSummary:
    """Counters from the daily counters (never the messages table) and the held-queue summary."""
    service, _created = MailService.objects.select_related("hosting__customer").get_or_create(hosting=hosting)
    today = timezone.localdate()
    totals = DailyCounter.objects.filter(hosting=hosting).aggregate(
        sent_total=Sum("sent"), error_total=Sum("errors"), sent_today=Max("sent", filter=Q(day=today))
    )
    held = Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).aggregate(
        count=Count("id"), oldest=Min("held_at"), next_expiry=Min("held_until")
    )
    return MailServiceSummary(
        service=service,
        sent_total=totals["sent_total"] or 0,
        error_total=totals["error_total"] or 0,
        sent_today=totals["sent_today"] or 0,
        hourly_limit=service.hourly_limit,
        held_count=held["count"],
        held_oldest=held["oldest"],
        held_next_expiry=held["next_expiry"],
    )


def delivery_errors_recent(*, hosting: Hosting, limit: int = 20):
    """The newest delivery errors of the hosting (OVH's bounces), at most `limit`."""
    return DeliveryError.objects.filter(hosting=hosting).order_by("-created_at", "-id")[:limit]


def daily_volumes(*, hosting: Hosting, days: int = 30) -> list[dict]:
    """Per local day of the last `days` days (today included): sent and errors, zeros filled."""
    today = timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    rows = {
        row["day"]: row
        for row in DailyCounter.objects.filter(hosting=hosting, day__gte=first).values("day", "sent", "errors")
    }
    return [
        {
            "day": day,
            "sent": rows.get(day, {}).get("sent", 0),
            "errors": rows.get(day, {}).get("errors", 0),
        }
        for day in (first + datetime.timedelta(days=offset) for offset in range(days))
    ]
