"""A customer's webhook endpoints and the events they are told about (SPEC §10.4).

An event becomes one WebhookDelivery row per subscribed endpoint, written in the transaction of
what happened (an outbox: delivered at least once, never lost by a broker outage); the sender
(`webhook_sending`) posts them afterwards, so an endpoint's failures never slow mail flow.
"""

import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from hosting.encryption import encrypt
from hosting.models import Customer, Hosting
from mailqueue import dispatch
from mailqueue.models import Message, WebhookDelivery, WebhookEndpoint, WebhookEvent
from mailqueue.webhook_addresses import webhook_url_check

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix telling what the secret is, not a secret)
CHOOSABLE_EVENTS = [event for event in WebhookEvent if event != WebhookEvent.TEST]


def _secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _events_clean(events: Iterable[str]) -> list[str]:
    chosen = set(events)
    unknown = chosen - set(CHOOSABLE_EVENTS)
    if unknown or not chosen:
        raise ValueError(f"Unknown or no events: {sorted(unknown)}")
    return [event.value for event in CHOOSABLE_EVENTS if event in chosen]  # one order


def webhook_endpoint_create(*, customer: Customer, url: str, events: Iterable[str]) -> tuple[WebhookEndpoint, str]:
    """A new active endpoint; returns it and its signing secret, in clear this once only.
    WebhookUrlRefused when the URL may not receive webhooks; ValueError for unknown events."""
    webhook_url_check(url)
    secret = _secret_new()
    endpoint = WebhookEndpoint.objects.create(
        customer=customer, url=url, events=_events_clean(events), secret_encrypted=encrypt(secret)
    )
    return endpoint, secret


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: str | None = None, events: Iterable[str] | None = None, active=None
) -> WebhookEndpoint:
    """Change the URL, the events or whether it is active; turning an endpoint back on forgets
    its failures (it was disabled after a day of them)."""
    if url is not None and url != endpoint.url:
        webhook_url_check(url)
        endpoint.url = url
    if events is not None:
        endpoint.events = _events_clean(events)
    if active is not None:
        if active and not endpoint.active:
            endpoint.failing_since = endpoint.disabled_at = None
        endpoint.active = bool(active)
    endpoint.save()
    return endpoint


def webhook_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """A new signing secret, at once (returned in clear this once); the old one stops signing."""
    secret = _secret_new()
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted"])
    return secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries and their attempts go with it


def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `test` event for this endpoint only, sent at once (whatever its events and state)."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint, event_type=WebhookEvent.TEST, payload={}, next_attempt_at=timezone.now()
        )
        delivery.payload = _envelope(delivery.event_id, WebhookEvent.TEST, {"endpoint": endpoint.url})
        delivery.save(update_fields=["payload"])
        dispatch.webhooks_send()
    return delivery


def _envelope(event_id: uuid.UUID, event_type: str, data: dict) -> dict:
    return {"id": str(event_id), "type": str(event_type), "created": timezone.now().isoformat(), "data": data}


def webhook_subscriptions(*, hosting_ids: Iterable[int]) -> dict[int, list[tuple[int, list[str], str]]]:
    """Per hosting: its customer's active endpoints (id, events) and its service name; one query."""
    found: dict[int, list[tuple[int, list[str], str]]] = defaultdict(list)
    rows = WebhookEndpoint.objects.filter(active=True, customer__hostings__in=set(hosting_ids)).values_list(
        "id", "events", "customer__hostings__id", "customer__hostings__service_name"
    )
    for endpoint_id, events, hosting_id, service_name in rows:
        found[hosting_id].append((endpoint_id, events, service_name))
    return dict(found)


def message_data(message: Message) -> dict:
    """What an event says of a message: its metadata and each recipient's outcome, never the content."""
    return {
        "message": {
            "id": message.pk,
            "messageId": message.message_id,
            "sender": message.sender,
            "subject": message.subject,
            "status": message.status,
            "recipients": [
                {key: entry.get(key) for key in ("address", "status", "code", "reply")} for entry in message.recipients
            ],
        },
    }


def webhook_events_record(events: list[tuple[int, str, dict]], *, subscriptions=None) -> int:
    """Record (hosting id, event type, data) events for every endpoint subscribed to them, in the
    caller's transaction; the sender is kicked after commit. `subscriptions`: from
    `webhook_subscriptions`, when the caller already has them (delivery reads them once a batch).
    Returns how many deliveries were written."""
    if not events:
        return 0
    if subscriptions is None:
        subscriptions = webhook_subscriptions(hosting_ids={hosting_id for hosting_id, _type, _data in events})
    rows = []
    for hosting_id, event_type, data in events:
        for endpoint_id, subscribed, service_name in subscriptions.get(hosting_id, ()):
            if event_type in subscribed:
                event_id = uuid.uuid4()
                payload = _envelope(event_id, event_type, {"hosting": service_name, **data})
                rows.append(
                    WebhookDelivery(endpoint_id=endpoint_id, event_id=event_id, event_type=event_type, payload=payload)
                )
    if rows:
        WebhookDelivery.objects.bulk_create(rows)
        dispatch.webhooks_send()
    return len(rows)


def webhook_hosting_event(*, hosting: Hosting | int, event_type: str, data: dict) -> int:
    """One event about a hosting (a state change, a purge, an expiry), in the caller's transaction."""
    hosting_id = hosting if isinstance(hosting, int) else hosting.pk
    return webhook_events_record([(hosting_id, event_type, data)])
