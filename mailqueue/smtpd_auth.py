"""Failed SMTP AUTH, counted per (client address, user name) and per client address (SPEC §4.1)."""

import collections
import threading
import time


class AuthFailureThrottle:
    """Failed AUTH attempts over a sliding window, in process memory, counted per (client address,
    user name) and per client address.

    On shared hosting every script of a web server connects from one address: one tenant's wrong
    password must not lock out the others. A (address, user) pair is refused after `max_failures`;
    the address as a whole only after `max_failures_per_address` (default 20 × max_failures), which
    bounds guessing across many user names. Thread-safe; remembers at most `max_clients` keys of
    each kind (the least recently failing are forgotten first), so a flood cannot grow it without bound.
    """

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        max_failures_per_address: int | None = None,
        max_clients: int = 10_000,
        clock=time.monotonic,
    ):
        self.max_failures = max_failures
        self.max_failures_per_address = (
            max_failures_per_address if max_failures_per_address is not None else 20 * max_failures
        )
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: collections.OrderedDict[tuple, collections.deque] = collections.OrderedDict()

    @staticmethod
    def _user_key(user: str) -> str:
        return user.strip().casefold()[:255]

    def _recent(self, key: tuple, now: float) -> collections.deque | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _over(self, key: tuple, limit: int, now: float) -> bool:
        times = self._recent(key, now)
        return times is not None and len(times) >= limit

    def is_blocked(self, client: str, user: str | None = None) -> bool:
        """Whether the address has used up its failures, or (with `user`) the pair has."""
        with self._lock:
            now = self._clock()
            if self._over(("address", client), self.max_failures_per_address, now):
                return True
            return user is not None and self._over(("user", client, self._user_key(user)), self.max_failures, now)

    def failure_record(self, client: str, user: str = "") -> None:
        with self._lock:
            now = self._clock()
            keys = {("address", client): self.max_failures_per_address}
            keys[("user", client, self._user_key(user))] = self.max_failures
            for key, limit in keys.items():
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = collections.deque(maxlen=max(1, limit))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > 2 * self.max_clients:
                self._failures.popitem(last=False)
