"""Per hosting and day counters, incremented with one upsert (PostgreSQL and SQLite alike)."""

import datetime

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
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


_SUBMITTED_TTL = 2 * 24 * 3600


def _redis_client():
    """The Redis client of the cache when it is Django's Redis cache, or None: made once per
    cache object (Django makes one per call, ~0.3 ms each) and kept on it, so a cache made anew
    (other settings, another thread) never gets the client of the one before."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    client = getattr(backend, "_submitted_client", None)
    if client is None:
        client = backend._submitted_client = backend._cache.get_client(write=True)
    return client


def submitted_today_incr(count: int = 1) -> None:
    """Count `count` accepted messages in the cache (for metrics): no database row to contend on.
    On Redis one round trip (INCRBY, then EXPIRE once the key is new), as the doors call it at
    every commit."""
    key = _submitted_key(timezone.localdate())
    client = _redis_client()
    if client is not None:
        with client.pipeline(transaction=False) as pipeline:
            pipeline.incrby(cache.make_and_validate_key(key), count)
            pipeline.expire(cache.make_and_validate_key(key), _SUBMITTED_TTL, nx=True)
            pipeline.execute()
        return
    try:
        cache.incr(key, count)
    except ValueError:  # the day's first: the key is not there yet
        if not cache.add(key, count, timeout=_SUBMITTED_TTL):
            cache.incr(key, count)  # another process added it meanwhile


def submitted_today() -> int:
    return cache.get(_submitted_key(timezone.localdate()), 0)
