"""Rate throttles of the API: one bucket per customer for API callers, per user for sessions; and
the client's address, as the throttles see it, for everything that counts or allows by address."""

from rest_framework.throttling import BaseThrottle, UserRateThrottle


def client_address(request) -> str:
    """REMOTE_ADDR, or behind PROXY_COUNT trusted reverse proxies the address they saw, from
    X-Forwarded-For (DRF's own rule, NUM_PROXIES = PROXY_COUNT): the API throttles, the API
    authentication failures, password-reset limits and /metrics all agree on who is asking."""
    return BaseThrottle().get_ident(request)


class CustomerRateThrottle(UserRateThrottle):
    """DRF's user throttle keys on `user.pk`, which API callers do not have (it would put every
    customer in one shared bucket): key them on their customer instead."""

    def get_cache_key(self, request, view):
        api_customer_id = getattr(request.user, "api_customer_id", None)
        if api_customer_id is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"customer-{api_customer_id}"}
