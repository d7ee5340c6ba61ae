"""Failed API authentications, counted per (client address, credential) and per client address.

Many customers' scripts reach the API from one address (a shared web server, a NAT): one of them
sending a revoked token or a wrong secret must not lock out the others. A credential (the
application key of a signed request, the token of a bearer request) is refused with 429 after
API_AUTH_MAX_FAILURES failures from one address within API_AUTH_FAILURE_WINDOW seconds; the address
as a whole only after API_AUTH_MAX_FAILURES_PER_ADDRESS, which bounds guessing across credentials.
Counts are windows opened by the first failure (api.window_counters): atomic, and failing open
when the cache is unreachable.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions

from api import keys
from api.throttling import client_address
from api.window_counters import window_counter_get, window_counter_incr, window_counter_seconds_left

USE = "api_auth_failures"


def _keys(request, credential: str) -> dict[str, int]:
    """The counters of a request for `credential`, each with its limit."""
    address = client_address(request)  # behind PROXY_COUNT proxies, the client's own
    # A digest: keys stay short and a token never lies in the cache in clear.
    return {
        f"api-auth-failures:{address}": settings.API_AUTH_MAX_FAILURES_PER_ADDRESS,
        f"api-auth-failures:{address}:{keys.digest(credential)[:32]}": settings.API_AUTH_MAX_FAILURES,
    }


def auth_lockout_check(request, *, credential: str) -> None:
    """Throttled (429) when this address, or this address for `credential`, failed too often."""
    for key, limit in _keys(request, credential).items():
        count = window_counter_get(key, use=USE)
        if count is not None and count >= limit:
            raise exceptions.Throttled(
                # Throttled joins its detail with plain strings: a lazy translation would be a server error.
                wait=window_counter_seconds_left(key, window=settings.API_AUTH_FAILURE_WINDOW, use=USE),
                detail=str(_("Too many failed authentication attempts. Try again later.")),
            )


def auth_failure_record(request, *, credential: str) -> None:
    """Count one failed authentication of `credential` from the request's address."""
    for key in _keys(request, credential):
        window_counter_incr(key, window=settings.API_AUTH_FAILURE_WINDOW, use=USE)
