"""Creation and revocation of API credentials. Clear secrets are returned once, never stored."""

import dataclasses

from django.db import transaction
from django.utils import timezone

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from hosting.models import Customer


@dataclasses.dataclass(frozen=True)
class NewCredentials:
    application_key: str
    application_secret: str
    consumer_key: str
    token: str


@transaction.atomic
def api_credentials_create(*, customer: Customer, name: str = "default", user=None) -> NewCredentials:
    """An application with one consumer key, and a bearer token, for `customer`."""
    application_key = keys.generate(16)
    application_secret = keys.generate(32)
    consumer_key = keys.generate(32)
    token = keys.generate(40)
    application = ApiApplication.objects.create(
        customer=customer,
        name=name[:100],
        application_key=application_key,
        secret_encrypted=keys.encrypt(application_secret),
        created_by=user,
    )
    ConsumerKey.objects.create(application=application, key_hash=keys.digest(consumer_key), key_prefix=consumer_key[:6])
    ApiToken.objects.create(
        customer=customer,
        application=application,
        name=name[:100],
        token_hash=keys.digest(token),
        token_prefix=token[:6],
        created_by=user,
    )
    return NewCredentials(application_key, application_secret, consumer_key, token)


def api_application_revoke(*, application: ApiApplication) -> None:
    """Revoke the application, its consumer keys and the bearer tokens created with it: signed
    and bearer requests stop at once, in one transaction. Idempotent."""
    now = timezone.now()
    with transaction.atomic():
        ApiApplication.objects.filter(pk=application.pk, revoked_at__isnull=True).update(revoked_at=now)
        ConsumerKey.objects.filter(application=application, revoked_at__isnull=True).update(revoked_at=now)
        ApiToken.objects.filter(application=application, revoked_at__isnull=True).update(revoked_at=now)


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
