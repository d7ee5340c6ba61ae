"""Creation, validation and revocation of API credentials. Clear secrets are returned once, never stored."""

import dataclasses
import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from api import keys
from api.access_rules import everything
from api.models import ApiApplication, ApiToken, ConsumerKey, CredentialStatus
from hosting.models import Customer
from hosting.selectors import customers_of


class CredentialError(Exception):
    """A validation the link no longer allows (used, expired, revoked); nothing changed."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


@dataclasses.dataclass(frozen=True)
class NewApplication:
    application_key: str
    application_secret: str


@dataclasses.dataclass(frozen=True)
class NewCredentials:
    application_key: str
    application_secret: str
    consumer_key: str
    token: str


@dataclasses.dataclass(frozen=True)
class RequestedConsumerKey:
    consumer_key: str
    validation_token: str
    record: ConsumerKey


def _application_create(*, customer: Customer, name: str, description: str, user) -> tuple[ApiApplication, str]:
    application_secret = keys.generate(32)
    application = ApiApplication.objects.create(
        customer=customer,
        name=name[:100],
        description=description[:1000],
        application_key=keys.generate(16),
        secret_encrypted=keys.encrypt(application_secret),
        created_by=user,
    )
    return application, application_secret


def api_application_create(*, customer: Customer, name: str, description: str = "", user=None) -> NewApplication:
    """An application of `customer` (OVH's createApp): it may ask for consumer keys, which grant
    nothing until a user validates them. Its secret is returned here only, and stored encrypted."""
    application, application_secret = _application_create(
        customer=customer, name=name, description=description, user=user
    )
    return NewApplication(application.application_key, application_secret)


@transaction.atomic
def api_credentials_create(
    *, customer: Customer, name: str = "default", user=None, access_rules: list[dict] | None = None
) -> NewCredentials:
    """An application with one consumer key validated at once for `customer`, and a bearer token;
    both with `access_rules` (default: every call of the customer), and no expiry."""
    rules = access_rules if access_rules is not None else everything()
    application, application_secret = _application_create(customer=customer, name=name, description="", user=user)
    consumer_key = keys.generate(32)
    token = keys.generate(40)
    now = timezone.now()
    ConsumerKey.objects.create(
        application=application,
        customer=customer,
        key_hash=keys.digest(consumer_key),
        key_prefix=consumer_key[:6],
        access_rules=rules,
        status=CredentialStatus.VALIDATED,
        validated_at=now,
        validated_by=user,
    )
    ApiToken.objects.create(
        customer=customer,
        application=application,
        name=name[:100],
        token_hash=keys.digest(token),
        token_prefix=token[:6],
        access_rules=rules,
        created_by=user,
    )
    return NewCredentials(application.application_key, application_secret, consumer_key, token)


def consumer_key_request(
    *, application: ApiApplication, access_rules: list[dict], redirection: str = ""
) -> RequestedConsumerKey:
    """A pending consumer key of `application` asking for `access_rules` (already cleaned), and the
    single-use token of its validation link, valid API_VALIDATION_LINK_HOURS. The key grants
    nothing until a user validates it (`consumer_key_validate`)."""
    consumer_key = keys.generate(32)
    validation_token = keys.generate(48)
    record = ConsumerKey.objects.create(
        application=application,
        key_hash=keys.digest(consumer_key),
        key_prefix=consumer_key[:6],
        access_rules=access_rules,
        redirection=redirection[:2000],
        validation_token_hash=keys.digest(validation_token),
        validation_expires_at=timezone.now() + datetime.timedelta(hours=settings.API_VALIDATION_LINK_HOURS),
    )
    return RequestedConsumerKey(consumer_key, validation_token, record)


def _decide(*, consumer_key: ConsumerKey, now, **changes) -> None:
    """Move a pending key whose link is still valid, once: a second decision, even a concurrent
    one, finds it no longer pending and changes nothing (CredentialError)."""
    decided = ConsumerKey.objects.filter(
        pk=consumer_key.pk,
        status=CredentialStatus.PENDING,
        validation_expires_at__gt=now,
        application__revoked_at__isnull=True,
    ).update(**changes)
    if not decided:
        raise CredentialError(_("This validation link has already been used or has expired."))
    consumer_key.refresh_from_db()


def consumer_key_validate(
    *, consumer_key: ConsumerKey, user, customer: Customer, lifetime: datetime.timedelta | None
) -> ConsumerKey:
    """Validate a pending key for `customer` (one of `user`'s), usable for `lifetime` (None: no
    expiry). Single use: CredentialError when the link was used, has expired or its application
    was revoked, or when `customer` is not one of the user's. Nothing changes then."""
    if not customers_of(user).filter(pk=customer.pk).exists():
        raise CredentialError(_("Choose one of your customer accounts."))
    now = timezone.now()
    _decide(
        consumer_key=consumer_key,
        now=now,
        status=CredentialStatus.VALIDATED,
        customer=customer,
        validated_by=user,
        validated_at=now,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    return consumer_key


def consumer_key_refuse(*, consumer_key: ConsumerKey, user) -> ConsumerKey:
    """Refuse a pending key: it will never grant anything. Single use, as `consumer_key_validate`."""
    _decide(consumer_key=consumer_key, now=timezone.now(), status=CredentialStatus.REFUSED, validated_by=user)
    return consumer_key


def consumer_key_revoke(*, consumer_key: ConsumerKey) -> None:
    """Revoke one consumer key: the next request signed with it is refused. Idempotent."""
    ConsumerKey.objects.filter(pk=consumer_key.pk).revoke(timezone.now())


def api_application_revoke(*, application: ApiApplication) -> None:
    """Revoke the application, its consumer keys and the bearer tokens created with it: signed
    and bearer requests stop at once, in one transaction. Idempotent."""
    now = timezone.now()
    with transaction.atomic():
        ApiApplication.objects.filter(pk=application.pk, revoked_at__isnull=True).update(revoked_at=now)
        ConsumerKey.objects.filter(application=application).revoke(now)
        ApiToken.objects.filter(application=application, revoked_at__isnull=True).update(revoked_at=now)


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
