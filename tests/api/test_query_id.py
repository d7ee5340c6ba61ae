"""Every answer under /1.0/ carries X-Ovh-Queryid (SPEC §9.2), one per request, logged with it."""

import logging

import pytest
from rest_framework.throttling import SimpleRateThrottle

from api.window_counters import window_counter_clear
from tests.api.conftest import email_path

pytestmark = pytest.mark.django_db


def answers(api, hosting, other_hosting):
    """One request of each kind of answer the API gives, with its status."""
    yield 200, api.get(email_path(hosting))
    yield 204, api.put(email_path(hosting), {"email": "ops@example.org"})
    yield 200, api.get("/auth/time", auth="none")
    yield 400, api.get(email_path(hosting, "/bounces?limit=1000"))
    yield 400, api.get("/hosting/web", signature="$1$nope")
    yield 401, api.get("/hosting/web", auth="none")
    yield 403, api.get("/hosting/web", auth="bearer", token="unknown")
    yield 404, api.get(email_path(other_hosting))
    yield 404, api.get("/no/such/endpoint", auth="none")
    yield 404, api.client.get("/1.0/hosting/web/a%00b")  # answered by the NUL-byte middleware
    yield 405, api.call("DELETE", email_path(hosting))
    yield 409, api.post(email_path(hosting, "/request"), {"action": "UNBLOCK"})
    yield 200, api.client.get("/1.0/schema/")
    yield 301, api.client.get("/1.0/docs")  # APPEND_SLASH's redirect


def test_every_answer_carries_its_own_query_id(api, hosting, other_hosting):
    query_ids = []
    for status, response in answers(api, hosting, other_hosting):
        assert response.status_code == status, response.content[:200]
        query_id = response["X-Ovh-Queryid"]
        assert query_id.startswith("EU.ext-1.") and len(query_id) > len("EU.ext-1.") + 16
        query_ids.append(query_id)
    assert len(set(query_ids)) == len(query_ids) == 14


def test_throttled_answers_carry_it_too(client, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1/minute", "user": "1/minute"})
    address = "192.0.2.77"
    window_counter_clear(f"throttle-window:anon:{address}")
    assert client.get("/1.0/auth/time", REMOTE_ADDR=address).status_code == 200
    throttled = client.get("/1.0/auth/time", REMOTE_ADDR=address)
    assert throttled.status_code == 429
    assert throttled["X-Ovh-Queryid"].startswith("EU.ext-1.")


def test_portal_pages_do_not_carry_it(client):
    assert "X-Ovh-Queryid" not in client.get("/accounts/login/")


def test_the_query_id_is_logged_with_the_request(api, hosting, caplog):
    caplog.set_level(logging.INFO, logger="api.requests")
    response = api.get(email_path(hosting))
    query_id = response["X-Ovh-Queryid"]
    [record] = [record for record in caplog.records if getattr(record, "query_id", None) == query_id]
    assert (record.method, record.path, record.status) == ("GET", f"/1.0{email_path(hosting)}", 200)
    assert query_id in record.getMessage()
