"""Redis (cache and broker) unreachable: the API keeps answering, in JSON.

The rate throttles and the authentication-failure counters live in the cache; with it gone they
fail open (a warning in the log, `portal_cache_unavailable_total` in /metrics) instead of turning
every request, even `GET /1.0/auth/time`, into an HTML 500. The database is the source of truth,
so submissions and actions commit; their enqueues after commit are best effort.

The shared Redis of the machine is never touched: the cache and the broker are pointed at a port
where nothing listens.
"""

import contextlib
import logging
import re
import socket
import threading

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from api import exceptions as api_exceptions
from api import window_counters
from api.services import api_credentials_create
from mailqueue import metrics as mail_metrics
from mailqueue.counters import submitted_today, submitted_today_incr
from mailqueue.models import Message, MessageStatus, State
from portal.celery import app as celery_app
from tests.api.conftest import ApiClient
from tests.factories import HostingFactory
from tests.reliability.test_broker_down import broker_use

pytestmark = pytest.mark.django_db(transaction=True)

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1
RAW = "From: app@shop.example\r\nTo: buyer@example.org\r\nSubject: outage\r\n\r\nHello\r\n"


@pytest.fixture(autouse=True)
def _fresh_failure_memory(monkeypatch):
    """What earlier tests' outages left: warnings already given, caches known to be down."""
    monkeypatch.setattr(window_counters, "_last_warning", {})
    monkeypatch.setattr(window_counters, "_down_until", {})


@pytest.fixture
def redis_down(settings):
    original = celery_app.conf.broker_url
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NOWHERE}}
    broker_use(NOWHERE)
    try:
        yield
    finally:
        broker_use(original)


def unavailable_counts(client) -> dict[str, float]:
    body = client.get("/metrics").content.decode()
    return {
        use: float(value)
        for use, value in re.findall(r'^portal_cache_unavailable_total\{use="(\w+)"\} (\S+)$', body, re.M)
    }


def test_the_api_answers_in_json_with_the_cache_and_broker_down(redis_down, caplog, monkeypatch):
    monkeypatch.setattr(mail_metrics, "CACHE_SECONDS", 0)
    hosting = HostingFactory()
    api = ApiClient(Client(), api_credentials_create(customer=hosting.customer))
    anonymous = Client()
    before = unavailable_counts(anonymous)
    caplog.set_level(logging.WARNING, logger="api.window_counters")

    time_response = anonymous.get("/1.0/auth/time")
    assert time_response.status_code == 200
    assert isinstance(time_response.json(), int)
    assert api.get("/hosting/web").json() == [hosting.service_name]  # signed
    assert api.get("/hosting/web", auth="bearer").status_code == 200
    refused = api.get("/hosting/web", auth="bearer", token="not-a-token")
    assert (refused.status_code, refused.json()["errorCode"]) == (403, "INVALID_CREDENTIAL")

    submitted = api.post(
        f"/hosting/web/{hosting.service_name}/email/messages",
        {"sender": "app@shop.example", "recipients": ["buyer@example.org"], "message": RAW},
    )
    assert submitted.status_code == 201, submitted.content
    assert Message.objects.get(pk=submitted.json()["id"]).status == MessageStatus.QUEUED
    blocked = api.post(f"/hosting/web/{hosting.service_name}/email/request", {"action": "BLOCK"})
    assert blocked.status_code == 200, blocked.content
    hosting.mail_service.refresh_from_db()
    assert hosting.mail_service.state == State.BLOCKED

    after = unavailable_counts(anonymous)
    assert after["api_throttle"] >= before.get("api_throttle", 0) + 6
    assert after["api_auth_failures"] >= before.get("api_auth_failures", 0) + 2
    assert "cache unavailable for api_throttle, letting requests through" in caplog.text
    # The queue's figures come from the database: /metrics still shows them.
    assert 'portal_mail_queue_depth{status="queued"}' in anonymous.get("/metrics").content.decode()


class HungRedis:
    """A "Redis" that takes connections and never answers (a network partition, a frozen host);
    it counts the connections it was offered."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self.listener.accept()[0])  # held open, never answered

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hung_redis(settings, monkeypatch):
    monkeypatch.setattr(window_counters, "RETRY_AFTER_FAILURE_SECONDS", 3600)  # the whole test
    original = celery_app.conf.broker_url
    hung = HungRedis()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": hung.url,
            "OPTIONS": settings.REDIS_CACHE_OPTIONS,
        }
    }
    broker_use(NOWHERE)
    try:
        yield hung
    finally:
        broker_use(original)
        hung.close()


@pytest.mark.timeout(120)
def test_a_hung_cache_costs_one_timeout_not_one_per_request(hung_redis):
    hosting = HostingFactory()
    api = ApiClient(Client(), api_credentials_create(customer=hosting.customer))
    assert Client().get("/1.0/auth/time").status_code == 200
    for auth in ("bearer", "sign", "bearer", "sign"):
        assert api.get("/hosting/web", auth=auth).json() == [hosting.service_name]
    # 5 requests make 14 cache calls: the first waited its timeout, the others were let through
    # without trying (each try is one connection: 14 of them, a timeout each, before).
    assert len(hung_redis.connections) == 1


@pytest.mark.parametrize(
    "error",
    [OperationalError("Error 111 connecting to 127.0.0.1:1"), RedisConnectionError("Error 111")],
    ids=["broker", "cache"],
)
def test_what_needs_the_broker_answers_a_json_503(rf, error):
    """The safety net for any view whose work needs the broker or the cache (none does today:
    submissions and actions commit first and enqueue best effort)."""
    response = api_exceptions.handler(error, {"request": rf.get("/1.0/hosting/web"), "view": None})
    assert response.status_code == 503
    assert set(response.data) == {"message"} and response.data["message"]
    assert response["Retry-After"] == "30"


def test_the_submitted_counter_counts_in_the_cache_that_replaced_an_unreachable_one(settings):
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("the counter's own Redis client: needs REDIS_URL")
    working = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NOWHERE}}
    with pytest.raises(RedisConnectionError):
        submitted_today_incr(1)  # the door logs this and goes on: the mail is stored, the metric misses it
    settings.CACHES = working  # Redis is back: a new cache object, which must get a client of its own
    before = submitted_today()
    submitted_today_incr(2)
    assert submitted_today() == before + 2
