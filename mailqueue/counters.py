"""Per hosting and day counters, incremented with one upsert (PostgreSQL and SQLite alike)."""

import datetime

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from mailqueue.models import DailyCounter

COUNTER_FIELDS = ("sent", "errors", "held", "purged", "expired")


def counter_add(*, hosting_id: int, day: datetime.date | None = None, **increments: int) -> None:
    """Add `increments` (e.g. sent=1) to the hosting's counters of `day` (today, local, by default).

    Runs inside the caller's transaction, so a counter moves exactly when its rows do.
    """
    increments = {name: value for name, value in increments.items() if value}
    if not increments:
        return
    unknown = set(increments) - set(COUNTER_FIELDS)
    if unknown:
        raise ValueError(f"Unknown counters: {sorted(unknown)}")
    day = day or timezone.localdate()
    table = DailyCounter._meta.db_table
    names = list(increments)
    columns = ", ".join(["hosting_id", "day", *COUNTER_FIELDS])
    values = [hosting_id, day, *(increments.get(name, 0) for name in COUNTER_FIELDS)]
    placeholders = ", ".join(["%s"] * len(values))
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in names)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT (hosting_id, day) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def _submitted_key(day) -> str:
    return f"mailqueue:submitted:{day.isoformat()}"


def submitted_today_incr() -> None:
    """Count one accepted message in the cache (for metrics): no database row to contend on."""
    key = _submitted_key(timezone.localdate())
    cache.add(key, 0, timeout=2 * 24 * 3600)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=2 * 24 * 3600)


def submitted_today() -> int:
    return cache.get(_submitted_key(timezone.localdate()), 0)
