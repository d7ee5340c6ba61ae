"""The API's rate limits under concurrent requests, against a live server (SPEC §7: 429).

DRF's SimpleRateThrottle reads the list of recent requests from the cache, appends and writes it
back: concurrent requests overwrite each other's entries, and about a quarter of 650 requests
went uncounted. The throttles count with one atomic increment: exactly the limit gets through.
"""

import collections
import concurrent.futures

import pytest
import requests
from rest_framework.throttling import SimpleRateThrottle

from api.services import api_credentials_create
from api.window_counters import window_counter_clear
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 32


def statuses(url: str, count: int, **headers) -> collections.Counter:
    def call(_n):
        return requests.get(url, headers=headers, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        return collections.Counter(pool.map(call, range(count)))


@pytest.fixture(autouse=True)
def _leave_the_live_servers_buckets_empty():
    """Every live server's caller is 127.0.0.1: the day windows filled here would refuse the next
    tests' anonymous calls (the API docs page, the ovh client's /auth/time)."""
    yield
    for scope in ("anon", "user"):
        window_counter_clear(f"throttle-window:{scope}:127.0.0.1")


def rates(monkeypatch, *, anon: str, user: str) -> None:
    """Per-day windows: a test never straddles the end of one."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": anon, "user": user})


def test_650_concurrent_anonymous_requests_with_a_limit_of_100_let_100_through(live_server, monkeypatch):
    rates(monkeypatch, anon="100/day", user="100000/day")
    window_counter_clear("throttle-window:anon:127.0.0.1")  # the live server sees every call from there
    window_counter_clear("throttle-window:user:127.0.0.1")  # an anonymous caller's user bucket
    assert statuses(f"{live_server.url}/1.0/auth/time", 650) == {200: 100, 429: 550}


def test_300_concurrent_requests_of_one_customer_with_a_limit_of_50_let_50_through(live_server, monkeypatch):
    rates(monkeypatch, anon="100000/day", user="50/day")
    hosting = HostingFactory()
    token = api_credentials_create(customer=hosting.customer).token
    window_counter_clear(f"throttle-window:user:customer-{hosting.customer.pk}")
    result = statuses(f"{live_server.url}/1.0/hosting/web", 300, Authorization=f"Bearer {token}")
    assert result == {200: 50, 429: 250}
