"""Rate throttles of the API: one bucket per customer for API callers, per user for sessions."""

from rest_framework.throttling import UserRateThrottle


class CustomerRateThrottle(UserRateThrottle):
    """DRF's user throttle keys on `user.pk`, which API callers do not have (it would put every
    customer in one shared bucket): key them on their customer instead."""

    def get_cache_key(self, request, view):
        api_customer_id = getattr(request.user, "api_customer_id", None)
        if api_customer_id is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"customer-{api_customer_id}"}
