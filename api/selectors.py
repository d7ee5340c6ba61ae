"""Reads of API credentials for the portal, all starting from the user's customers (`customers_of`)."""

from django.db.models import Q, QuerySet

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from hosting.selectors import customers_of


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
