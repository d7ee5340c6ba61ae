"""Reads of the reports app: delivery errors by hosting and local day."""

import datetime

from django.db.models import QuerySet
from django.utils import timezone

from mailqueue.models import DeliveryError


def local_day_bounds(*, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The aware [start, end) of `day` in the current time zone (TIME_ZONE), DST-proof."""
    tz = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz)
    return start, end


def delivery_errors_of_day(*, day: datetime.date) -> QuerySet[DeliveryError]:
    """Every hosting's delivery errors of the local `day`."""
    start, end = local_day_bounds(day=day)
    return DeliveryError.objects.filter(created_at__gte=start, created_at__lt=end)


def hostings_with_errors_on(*, day: datetime.date) -> list[int]:
    """Ids of the hostings that had at least one delivery error on the local `day`."""
    return sorted(delivery_errors_of_day(day=day).order_by().values_list("hosting_id", flat=True).distinct())


def hosting_errors_of_day(*, hosting_id: int, day: datetime.date) -> QuerySet[DeliveryError]:
    """The hosting's delivery errors of the local `day`, oldest first."""
    return delivery_errors_of_day(day=day).filter(hosting_id=hosting_id).order_by("created_at", "id")
