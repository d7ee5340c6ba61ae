"""Counters per time window in the cache: the API's rate limits and auth-failure counts.

A window opens at its key's first event and lasts `window` seconds (the key's expiry), like
DRF's throttles and the lock-outs of django-axes; no boundary falls at a fixed time of the clock.

Atomic: `cache.add` (Redis: SET NX) creates the key, `cache.incr` (Redis: INCRBY) counts, so
concurrent requests never lose a count (DRF's SimpleRateThrottle reads a list, appends and writes
it back: under load many requests went uncounted). The embedded file cache has no atomic
increment: there the steps run under a file lock shared by the processes of the machine.

Failing open: when the cache cannot be reached, a counter answers None, logs a warning (at most
once a minute per use) and counts the failure in `portal_cache_unavailable_total{use=…}`; the
caller lets the request through. A rate limit is protection, not a reason to refuse every client.
After a failure the cache is left alone for a few seconds, so a hung Redis costs one socket
timeout (CACHES' OPTIONS in settings), not one per counter and request.
"""

import contextlib
import fcntl
import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from prometheus_client import Counter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What a cache outage raises: redis-py's errors (Redis), OSError (the file cache's directory).
CACHE_ERRORS = (RedisError, OSError)
USES = ("api_throttle", "api_auth_failures", "metrics")
WARNING_INTERVAL_SECONDS = 60

cache_unavailable = Counter(
    "portal_cache_unavailable",
    "Cache operations that failed and were let through (fail open), per use; counted per process",
    ["use"],
)
for _use in USES:
    cache_unavailable.labels(use=_use)  # exported at 0 from the start

# After a failure the cache is not tried again for this long: a Redis that hangs would otherwise
# cost every request its socket timeout, several times over.
RETRY_AFTER_FAILURE_SECONDS = 5

_last_warning: dict[str, float] = {}
_down_until: dict[str, float] = {}  # per cache location
_lock = threading.Lock()


def _location() -> str:
    return str(settings.CACHES["default"].get("LOCATION", ""))


def _unavailable(use: str, error: Exception) -> None:
    cache_unavailable.labels(use=use).inc()
    now = time.monotonic()
    with _lock:
        _down_until[_location()] = now + RETRY_AFTER_FAILURE_SECONDS
        if now - _last_warning.get(use, -WARNING_INTERVAL_SECONDS) < WARNING_INTERVAL_SECONDS:
            return
        _last_warning[use] = now
    log.warning("cache unavailable for %s, letting requests through: %s: %s", use, type(error).__name__, error)


def _known_down(use: str) -> bool:
    """Whether the cache failed moments ago (then it is not tried: the call is let through)."""
    if time.monotonic() < _down_until.get(_location(), 0.0):
        cache_unavailable.labels(use=use).inc()
        return True
    return False


@contextlib.contextmanager
def _atomic(cache):
    """Redis' commands are atomic; any other backend's add/incr run under a machine-wide file lock."""
    if isinstance(cache, RedisCache):
        yield
        return
    with open(settings.VAR_DIR / "window-counters.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _incr(cache, key: str, *, window: int) -> int:
    """INCR, keeping the window's end. Django's incr on the file cache is a get and a set with the
    default timeout (300 s): each event pushed the end of a 60-second window to 5 minutes later."""
    if isinstance(cache, RedisCache):
        return cache.incr(key)  # INCR keeps the key's expiry
    count = cache.get(key)
    opened = cache.get(f"{key}:opened")
    # A count of 0 was just made by add(): the opener's. Another without its opening time
    # outlived its window (the keys stretched before): over.
    left = window if count == 0 else (0 if opened is None else opened + window - time.time())
    if count is None or left <= 0:
        raise ValueError(key)  # no window any more: this event opens one
    cache.set(key, count + 1, timeout=left)
    return count + 1


def window_counter_incr(key: str, *, window: int, use: str) -> int | None:
    """Count one event in the current window of `key` (opened now if there is none): the count so
    far, this one included, or None when the cache is unreachable (fail open)."""
    if _known_down(use):
        return None
    cache = caches["default"]
    try:
        with _atomic(cache):
            cache.add(key, 0, timeout=window)
            try:
                count = _incr(cache, key, window=window)
            except ValueError:  # expired between add and incr: this event opens a new window
                cache.set(key, 1, timeout=window)
                count = 1
            if count == 1:
                # The opener sets the expiry again (an INCR after an expiry makes a key without
                # one, which would never let go) and notes when the window opened.
                cache.touch(key, window)
                cache.set(f"{key}:opened", time.time(), timeout=window)
    except CACHE_ERRORS as error:
        _unavailable(use, error)
        return None
    return count


def window_counter_get(key: str, *, use: str) -> int | None:
    """The events counted in the current window of `key` (0 without one), or None (cache unreachable)."""
    if _known_down(use):
        return None
    try:
        return caches["default"].get(key, 0)
    except CACHE_ERRORS as error:
        _unavailable(use, error)
        return None


def window_counter_seconds_left(key: str, *, window: int, use: str) -> float:
    """Seconds until the current window of `key` closes (the whole window when unknown)."""
    opened = None
    if not _known_down(use):
        try:
            opened = caches["default"].get(f"{key}:opened")
        except CACHE_ERRORS as error:
            _unavailable(use, error)
    if opened is None:
        return float(window)
    return max(0.0, opened + window - time.time())


def window_counter_clear(key: str) -> None:
    """Close the current window of `key` (an operator lifting a lock-out; tests)."""
    caches["default"].delete_many([key, f"{key}:opened"])
