"""/healthz, /metrics and JSON logs."""

import json
import logging
import secrets

import pytest
from django.core.cache import cache

from mailqueue import metrics as mail_metrics
from mailqueue.counters import submitted_today
from mailqueue.models import MessageStatus
from mailqueue.submission import message_accept
from portal.logging import JsonFormatter
from tests.factories import HostingFactory, MessageFactory
from tests.support import http_get, web_server

RAW = b"From: a@site.example\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_unreachable(client, settings):
    from portal.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["broker"].startswith("error")


@pytest.mark.django_db(transaction=True)
def test_metrics_show_queue_depth_and_todays_counts(client, monkeypatch):
    monkeypatch.setattr(mail_metrics, "CACHE_SECONDS", 0)
    hosting = HostingFactory()
    MessageFactory.create_batch(3, hosting=hosting, status=MessageStatus.HELD)
    MessageFactory.create_batch(2, hosting=hosting, status=MessageStatus.DEFERRED)
    before = submitted_today()
    message_accept(hosting=hosting, sender="a@site.example", recipients=["b@example.org"], raw=RAW)

    body = client.get("/metrics").content.decode()

    lines = dict(line.rsplit(" ", 1) for line in body.splitlines() if line.startswith("portal_"))
    assert float(lines['portal_mail_queue_depth{status="held"}']) == 3
    assert float(lines['portal_mail_queue_depth{status="deferred"}']) == 2
    assert float(lines['portal_mail_queue_depth{status="queued"}']) == 1
    assert float(lines['portal_mail_messages_today{event="submitted"}']) == before + 1
    assert float(lines['portal_mail_services{state="active"}']) >= 1
    assert "django_http_requests_total_by_method_total" in body  # django-prometheus' own
    cache.delete("mailqueue:delivery-kick")


def test_json_log_lines_carry_the_products_identifiers():
    record = logging.LogRecord("mailqueue.delivery", logging.INFO, __file__, 1, "sent %s", ("x",), None)
    record.hosting_id = 7
    record.message_id = "<m@x>"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "sent x"
    assert line["level"] == "INFO"
    assert (line["hosting_id"], line["message_id"]) == (7, "<m@x>")


@pytest.mark.django_db
def test_metrics_are_served_to_the_monitoring_addresses_only(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404
    settings.METRICS_ALLOWED_ADDRESSES = ["203.0.113.9"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200


@pytest.mark.django_db
def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_behind_the_proxy_metrics_go_by_the_clients_address(tmp_path):
    """PROXY_COUNT=1: the proxy connects from 127.0.0.1 and appends the client's address to
    X-Forwarded-For. Before, everyone coming through it was 127.0.0.1, allowed to scrape."""
    environment = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "PROXY_COUNT": "1"}
    with web_server(log=tmp_path / "web.log", **environment) as port:
        statuses = {
            name: http_get(port, "/metrics", **headers).status
            for name, headers in {
                "outside": {"X-Forwarded-For": "203.0.113.9"},
                "outside, spoofing": {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
                "monitoring through the proxy": {"X-Forwarded-For": "127.0.0.1"},
                "monitoring on the host": {},
            }.items()
        }

    assert statuses == {
        "outside": 404,
        "outside, spoofing": 404,
        "monitoring through the proxy": 200,
        "monitoring on the host": 200,
    }
