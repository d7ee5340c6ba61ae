"""Rate throttles of the API: one bucket per client address for anonymous callers, per customer
for API callers, per user for sessions; each counted atomically (api.window_counters).

DRF's SimpleRateThrottle keeps a list of request times in the cache and writes it back: two
requests reading the same list both count as one, so under concurrency about a quarter of the
requests went uncounted. Here a request is one atomic increment, so exactly the rate is let
through per window; with the cache unreachable the throttle lets requests through (fail open,
logged and counted in /metrics).
"""

from rest_framework.throttling import AnonRateThrottle, BaseThrottle, SimpleRateThrottle, UserRateThrottle

from api.window_counters import window_counter_incr, window_counter_seconds_left


def client_address(request) -> str:
    """REMOTE_ADDR, or behind PROXY_COUNT trusted reverse proxies the address they saw, from
    X-Forwarded-For (DRF's own rule, NUM_PROXIES = PROXY_COUNT): the API throttles, the API
    authentication failures, password-reset limits and /metrics all agree on who is asking."""
    return BaseThrottle().get_ident(request)


class FixedWindowRateThrottle(SimpleRateThrottle):
    """A SimpleRateThrottle (same rates and scopes) counted with one atomic increment."""

    # Not DRF's keys (lists of times): during a rolling deploy each kind of process reads its own.
    cache_format = "throttle-window:%(scope)s:%(ident)s"

    def allow_request(self, request, view) -> bool:
        self.seconds_left = None
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        count = window_counter_incr(self.key, window=self.duration, use="api_throttle")
        if count is None:  # the cache is unreachable: fail open
            return True
        if count <= self.num_requests:
            return True
        self.seconds_left = window_counter_seconds_left(self.key, window=self.duration, use="api_throttle")
        return False

    def wait(self) -> float | None:
        return self.seconds_left


class AddressRateThrottle(FixedWindowRateThrottle, AnonRateThrottle):
    """Anonymous callers (`anon` rate), per client address (behind PROXY_COUNT trusted proxies)."""


class CustomerRateThrottle(FixedWindowRateThrottle, UserRateThrottle):
    """DRF's user throttle keys on `user.pk`, which API callers do not have (it would put every
    customer in one shared bucket): key them on their customer instead (`user` rate)."""

    def get_cache_key(self, request, view):
        api_customer_id = getattr(request.user, "api_customer_id", None)
        if api_customer_id is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"customer-{api_customer_id}"}


class CredentialRequestRateThrottle(AddressRateThrottle):
    """Consumer-key requests (POST /auth/credential: no credential yet) per client address, at the
    anonymous rate, in a bucket of their own: asking for keys does not use up the address's other
    anonymous calls (/auth/time, the schema). Unknown application keys count as failed authentications too."""

    cache_format = "throttle-window:credential-request:%(ident)s"
