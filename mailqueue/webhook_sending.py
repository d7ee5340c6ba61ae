"""Sending webhooks (SPEC §10.4): each due delivery is POSTed, signed, at least once; a failure
is retried with an exponential back-off (the due time is a row, never a countdown) for
WEBHOOK_RETRY_HOURS; every attempt is logged; an endpoint failing that long is disabled and
its customer told. Redirects are not followed; the address is checked before every attempt."""

import datetime
import hashlib
import hmac
import http.client
import json
import logging
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hosting.encryption import decrypt
from mailqueue import dispatch
from mailqueue.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from mailqueue.webhook_addresses import WebhookUrlRefused, webhook_url_check

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Portal-Signature"
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
CLAIM_SECONDS = 120  # a sender that died mid-run leaves its deliveries due again after this
REPLY_EXCERPT = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` (the receiver recomputes it, docs/WEBHOOKS.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS))


def _post(url: str, body: bytes, headers: dict) -> tuple[int, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(REPLY_EXCERPT * 4).decode("utf-8", "replace")
    finally:
        connection.close()


def _claim(limit: int) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        ids = list(due)
        WebhookDelivery.objects.filter(id__in=ids).update(claimed_until=now + datetime.timedelta(seconds=CLAIM_SECONDS))
    return ids


def webhook_attempt(delivery: WebhookDelivery) -> WebhookAttempt:
    """POST `delivery` once and record the attempt and what follows (delivered, due again, failed
    for good; the endpoint disabled after WEBHOOK_RETRY_HOURS of failures)."""
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "portal-webhooks/1",
        "X-Portal-Event": delivery.event_type,
        "X-Portal-Delivery": str(delivery.event_id),
        SIGNATURE_HEADER: signature(decrypt(endpoint.secret_encrypted), timestamp, body),
    }
    started = time.monotonic()
    try:
        webhook_url_check(endpoint.url)
        status_code, reply = _post(endpoint.url, body, headers)
    except WebhookUrlRefused as error:
        status_code, reply = None, str(error)
    except (OSError, http.client.HTTPException) as error:
        status_code, reply = None, f"{error.__class__.__name__}: {error}"
    duration_ms = int((time.monotonic() - started) * 1000)
    now = timezone.now()
    with transaction.atomic():
        attempt = WebhookAttempt.objects.create(
            delivery=delivery, at=now, status_code=status_code, duration_ms=duration_ms, reply=reply[:REPLY_EXCERPT]
        )
        delivery.attempts += 1
        delivery.claimed_until = None
        if attempt.succeeded:
            delivery.status, delivery.next_attempt_at = WebhookDeliveryStatus.DELIVERED, None
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        else:
            give_up = now - delivery.created_at >= datetime.timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
            if give_up or delivery.event_type == "test":  # a test is tried once: its button shows the result
                delivery.status, delivery.next_attempt_at = WebhookDeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
            _failure_count(endpoint, now)
        delivery.save(update_fields=["attempts", "claimed_until", "status", "next_attempt_at"])
    logger.info(
        "webhook %s %s to endpoint %s: %s",
        delivery.event_type,
        delivery.event_id,
        endpoint.pk,
        status_code or reply[:80],
        extra={"endpoint_id": endpoint.pk},
    )
    return attempt


def _failure_count(endpoint: WebhookEndpoint, now) -> None:
    """The endpoint's failures began at `failing_since`; past WEBHOOK_RETRY_HOURS it is disabled."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - datetime.timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True, failing_since__lte=cutoff).update(
        active=False, disabled_at=now
    )
    if disabled:
        logger.warning("webhook endpoint %s disabled after %s h of failures", endpoint.pk, settings.WEBHOOK_RETRY_HOURS)
        WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDeliveryStatus.PENDING).update(
            status=WebhookDeliveryStatus.FAILED, next_attempt_at=None
        )
        dispatch.webhook_disabled_notify(endpoint_id=endpoint.pk)


def webhooks_send_due(*, limit: int = 100, budget_seconds: float = 50) -> int:
    """Attempt the due deliveries of active endpoints (those of inactive ones fail), batch after
    batch, within `budget_seconds`; returns how many attempts were made. Safe to run twice at once
    (claims with SKIP LOCKED on PostgreSQL)."""
    started = time.monotonic()
    attempted = 0
    while time.monotonic() - started < budget_seconds:
        ids = _claim(limit)
        if not ids:
            break
        for delivery in (
            WebhookDelivery.objects.filter(id__in=ids).select_related("endpoint").order_by("next_attempt_at", "id")
        ):
            if not delivery.endpoint.active and delivery.event_type != "test":
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    status=WebhookDeliveryStatus.FAILED, next_attempt_at=None, claimed_until=None
                )
                continue
            webhook_attempt(delivery)
            attempted += 1
            if time.monotonic() - started >= budget_seconds:
                break
    return attempted
