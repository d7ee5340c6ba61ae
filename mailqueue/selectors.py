"""Reads of the mail service for pages and the API; each costs a fixed number of queries."""

import dataclasses
import datetime

from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from hosting.models import Hosting
from mailqueue.hourly_limit import hourly_usage
from mailqueue.message_log import PAGE_SIZE, cursor_decode, cursor_encode
from mailqueue.models import DailyCounter, DeliveryError, Event, MailService, Message, MessageStatus, Suppression

# Held messages counted at most: beyond it the page says "10 000+", at a bounded cost.
HELD_COUNT_CAP = 10_000


@dataclasses.dataclass(frozen=True)
class MailServiceSummary:
    service: MailService
    sent_total: int
    error_total: int
    sent_today: int
    hourly_limit: int


@dataclasses.dataclass(frozen=True)
class HeldQueueSummary:
    count: int
    capped: bool  # True: there are more than `count`
    oldest: datetime.datetime | None
    next_expiry: datetime.datetime | None


def mail_service_get(*, hosting: Hosting) -> MailService:
    """The hosting's mail service (every hosting has one), without a lock."""
    return MailService.objects.select_related("hosting__customer").get(hosting=hosting)


def mail_service_summary(*, hosting: Hosting) -> MailServiceSummary:
    """The service and its counters, from the daily counters (never the messages table)."""
    service = mail_service_get(hosting=hosting)
    today = timezone.localdate()
    totals = DailyCounter.objects.filter(hosting=hosting).aggregate(
        sent_total=Sum("sent"), error_total=Sum("errors"), sent_today=Max("sent", filter=Q(day=today))
    )
    return MailServiceSummary(
        service=service,
        sent_total=totals["sent_total"] or 0,
        error_total=totals["error_total"] or 0,
        sent_today=totals["sent_today"] or 0,
        hourly_limit=service.hourly_limit,
    )


def held_queue_summary(*, hosting: Hosting) -> HeldQueueSummary:
    """How many messages are held (up to HELD_COUNT_CAP), the oldest, the next to expire.

    Two index reads whatever the queue size: a count bounded by the cap, and the first row of
    the (hosting, held_until) partial index (held_until is held_at + HOLD_HOURS).
    """
    held = Message.objects.filter(hosting=hosting).held()
    count = held.order_by()[: HELD_COUNT_CAP + 1].count()
    first = held.order_by("held_until").values("held_at", "held_until").first() or {}
    return HeldQueueSummary(
        count=min(count, HELD_COUNT_CAP),
        capped=count > HELD_COUNT_CAP,
        oldest=first.get("held_at"),
        next_expiry=first.get("held_until"),
    )


@dataclasses.dataclass(frozen=True)
class PendingSummary:
    """What waits for delivery (SPEC §10.3): queued (for the hourly limit), deferred, held."""

    queued: int
    deferred: int
    next_attempt: datetime.datetime | None  # the deferred message tried first
    used_this_hour: int  # hand-offs to the relay in the rolling hour
    capped: bool  # a count reached HELD_COUNT_CAP


def pending_summary(*, hosting: Hosting) -> PendingSummary:
    """Queued and deferred counts (bounded by HELD_COUNT_CAP), the next retry, this hour's use:
    four index reads whatever the queue size."""
    mine = Message.objects.filter(hosting=hosting).order_by()
    queued = mine.filter(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING])[: HELD_COUNT_CAP + 1].count()
    deferred_rows = mine.filter(status=MessageStatus.DEFERRED)
    deferred = deferred_rows[: HELD_COUNT_CAP + 1].count()
    # Read even when none is deferred: the page's query count does not depend on the queue.
    next_attempt = deferred_rows.aggregate(first=Min("next_attempt_at"))["first"]
    used = hourly_usage([hosting.pk], now=timezone.now()).get(hosting.pk, {}).get("used", 0)
    return PendingSummary(
        queued=min(queued, HELD_COUNT_CAP),
        deferred=min(deferred, HELD_COUNT_CAP),
        next_attempt=next_attempt,
        used_this_hour=used,
        capped=max(queued, deferred) > HELD_COUNT_CAP,
    )


def events_recent(*, hosting: Hosting, limit: int = 5):
    """The service's latest Events (the short history of the Scripts e-mail page)."""
    return Event.objects.filter(hosting=hosting).select_related("actor_user").order_by("-created_at", "-id")[:limit]


def events_page(*, hosting: Hosting, cursor: str | None = None, size: int = PAGE_SIZE) -> tuple[list, str | None]:
    """One page of the service's history (its Events), newest first, after `cursor`, and the
    cursor of the next page (None on the last): keyset on the (hosting, created_at, id) index,
    no OFFSET, no COUNT, the same cost on every page."""
    rows = Event.objects.filter(hosting=hosting).order_by("-created_at", "-id")
    position = cursor_decode(cursor) if cursor else None
    if position is not None:
        created_at, pk = position
        # The bare `created_at <=` bounds the index scan; an OR alone is a filter read from the newest row.
        rows = rows.filter(Q(created_at__lte=created_at), Q(created_at__lt=created_at) | Q(id__lt=pk))
    page = list(rows[: size + 1])
    return page[:size], (cursor_encode(page[size - 1]) if len(page) > size else None)


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


def suppressions_list(*, hosting: Hosting, search: str = "", now: datetime.datetime | None = None):
    """The hosting's suppressed addresses still in force, newest first; `search`: part of the address."""
    rows = Suppression.objects.filter(hosting=hosting, expires_at__gt=now or timezone.now())
    if search.strip():
        rows = rows.filter(address__contains=search.strip().lower())
    return rows.order_by("-created_at", "-id")
