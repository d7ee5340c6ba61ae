"""Reads of API credentials and of webhook endpoints for the portal and the API, all starting from
the user's customers (`customers_of`)."""

from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from hosting.selectors import customers_of
from mailqueue.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def applications_of(user) -> QuerySet[ApiApplication]:
    """The applications of the user's customers."""
    return ApiApplication.objects.filter(customer__in=customers_of(user)).select_related("customer")


def consumer_keys_visible_to(user) -> QuerySet[ConsumerKey]:
    """The keys that act for one of the user's customers, and the undecided or refused keys
    (no customer yet) asked for by the applications of the user's customers. A key validated
    for another customer stays that customer's business, whoever's the application is."""
    customers = customers_of(user)
    return ConsumerKey.objects.filter(
        Q(customer__in=customers) | Q(customer__isnull=True, application__customer__in=customers)
    ).select_related("application", "customer")


def tokens_of(user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(customer__in=customers_of(user)).select_related("customer")


def consumer_key_for_validation(*, token: str) -> ConsumerKey | None:
    """The key whose validation link carries `token` (any state), or None."""
    return (
        ConsumerKey.objects.select_related("application", "customer")
        .filter(validation_token_hash=keys.digest(token))
        .first()
    )


def webhook_endpoints_visible_to(user) -> QuerySet[WebhookEndpoint]:
    """The webhook endpoints of the user's customers (of an API caller's one customer)."""
    return WebhookEndpoint.objects.filter(customer__in=customers_of(user)).select_related("customer")


def webhook_deliveries_recent(*, endpoint: WebhookEndpoint, limit: int = 20) -> list[WebhookDelivery]:
    """The endpoint's newest deliveries with their attempts (newest first): two queries."""
    return list(endpoint.deliveries.order_by("-created_at", "-id").prefetch_related("attempt_log")[:limit])


def webhook_attempts_last(*, endpoint_ids, per_endpoint: int = 3) -> dict[int, list[WebhookAttempt]]:
    """The last `per_endpoint` attempts of each endpoint, newest first: one query."""
    rank = Window(RowNumber(), partition_by=F("delivery__endpoint_id"), order_by=[F("at").desc(), F("id").desc()])
    rows = (
        WebhookAttempt.objects.filter(delivery__endpoint_id__in=list(endpoint_ids))
        .annotate(endpoint_id=F("delivery__endpoint_id"), rank=rank)
        .filter(rank__lte=per_endpoint)
        .order_by("endpoint_id", "-at", "-id")
    )
    found: dict[int, list[WebhookAttempt]] = {}
    for attempt in rows:
        found.setdefault(attempt.endpoint_id, []).append(attempt)
    return found
