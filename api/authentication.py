"""API authentication: OVH request signing, bearer tokens (and the session, in settings).

A signed request carries X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp and
X-Ovh-Signature = "$1$" + sha1(secret + "+" + consumer key + "+" + METHOD + "+" + full URL +
"+" + body + "+" + timestamp), exactly as the official `ovh` client computes it. Timestamps
outside API_SIGNATURE_WINDOW seconds are refused, so a captured request cannot be replayed later.
Failures are counted per client address; past API_AUTH_MAX_FAILURES the client gets 429.
"""

import hashlib
import hmac
import time

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from api.throttling import client_address


class ApiPrincipal:
    """The caller of an API request: a customer, through one credential."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, *, customer, label: str):
        self.customer = customer
        self.api_customer_id = customer.pk
        self.label = label

    def get_username(self) -> str:
        return self.label

    def __str__(self) -> str:
        return self.label


def _failure_key(request) -> str:
    # Behind the proxy, the client's own address: one client's failures never lock out everyone.
    return f"api-auth-failures:{client_address(request)}"


def _check_not_throttled(request) -> None:
    if (cache.get(_failure_key(request)) or 0) >= settings.API_AUTH_MAX_FAILURES:
        raise exceptions.Throttled(
            # Throttled joins its detail with plain strings: a lazy translation would be a server error.
            wait=settings.API_AUTH_FAILURE_WINDOW,
            detail=str(_("Trop d'échecs d'authentification. Réessayez plus tard.")),
        )


def _fail(request, message):
    key = _failure_key(request)
    cache.add(key, 0, timeout=settings.API_AUTH_FAILURE_WINDOW)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=settings.API_AUTH_FAILURE_WINDOW)
    raise exceptions.AuthenticationFailed(message)


def signature(*, secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: str) -> str:
    payload = "+".join([secret, consumer_key, method.upper(), url, body, timestamp])
    return "$1$" + hashlib.sha1(payload.encode("utf-8")).hexdigest()  # noqa: S324 (the OVH scheme)


class OvhSignatureAuthentication(BaseAuthentication):
    def authenticate_header(self, request):
        return 'X-Ovh-Signature realm="api"'

    def authenticate(self, request):
        application_key = request.headers.get("X-Ovh-Application")
        if not application_key:
            return None
        _check_not_throttled(request)
        consumer_key = request.headers.get("X-Ovh-Consumer", "")
        timestamp = request.headers.get("X-Ovh-Timestamp", "")
        given = request.headers.get("X-Ovh-Signature", "")
        if not (consumer_key and timestamp and given):
            _fail(request, _("Requête non signée : X-Ovh-Consumer, X-Ovh-Timestamp et X-Ovh-Signature sont requis."))
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            _fail(request, _("X-Ovh-Timestamp invalide."))
        if age > settings.API_SIGNATURE_WINDOW:
            _fail(request, _("Horodatage hors de la fenêtre autorisée : vérifiez l'heure (GET /auth/time)."))
        consumer = (
            ConsumerKey.objects.select_related("application__customer")
            .filter(
                key_hash=keys.digest(consumer_key),
                revoked_at__isnull=True,
                application__application_key=application_key,
                application__revoked_at__isnull=True,
            )
            .first()
        )
        if consumer is None:
            _fail(request, _("Clé d'application ou clé consommateur invalide."))
        application: ApiApplication = consumer.application
        try:
            secret = keys.decrypt(application.secret_encrypted)
        except InvalidToken:
            _fail(request, _("Clé d'application ou clé consommateur invalide."))
        body = request._request.body.decode("utf-8", "replace")
        expected = signature(
            secret=secret,
            consumer_key=consumer_key,
            method=request.method,
            url=request.build_absolute_uri(),
            body=body,
            timestamp=timestamp,
        )
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
            _fail(request, _("Signature invalide."))
        ConsumerKey.objects.filter(pk=consumer.pk).update(last_used_at=timezone.now())
        return ApiPrincipal(customer=application.customer, label=f"api:{application.application_key}"), consumer


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        _check_not_throttled(request)
        value = header[7:].strip()
        token = (
            ApiToken.objects.select_related("customer")
            .filter(token_hash=keys.digest(value), revoked_at__isnull=True)
            .first()
            if value
            else None
        )
        if token is None:
            _fail(request, _("Jeton invalide ou révoqué."))
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return ApiPrincipal(customer=token.customer, label=f"token:{token.token_prefix}"), token
