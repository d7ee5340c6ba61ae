"""API authentication: OVH request signing, bearer tokens (and the session, in settings).

A signed request carries X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp and
X-Ovh-Signature = "$1$" + sha1(secret + "+" + consumer key + "+" + METHOD + "+" + full URL +
"+" + body + "+" + timestamp), exactly as the official `ovh` client computes it. Timestamps
outside API_SIGNATURE_WINDOW seconds are refused, so a captured request cannot be replayed later.
Failures are counted per client address and credential (api/auth_failures.py): past
API_AUTH_MAX_FAILURES that pair gets 429, the other credentials of the address keep working.
"""

import hashlib
import hmac
import time

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from api import keys
from api.auth_failures import auth_failure_record, auth_lockout_check
from api.models import ApiApplication, ApiToken, ConsumerKey


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


def _fail(request, message, *, credential: str):
    auth_failure_record(request, credential=credential)
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
        credential = f"application:{application_key}"
        auth_lockout_check(request, credential=credential)
        consumer_key = request.headers.get("X-Ovh-Consumer", "")
        timestamp = request.headers.get("X-Ovh-Timestamp", "")
        given = request.headers.get("X-Ovh-Signature", "")
        if not (consumer_key and timestamp and given):
            _fail(
                request,
                _("Unsigned request: X-Ovh-Consumer, X-Ovh-Timestamp and X-Ovh-Signature are required."),
                credential=credential,
            )
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            _fail(request, _("Invalid X-Ovh-Timestamp."), credential=credential)
        if age > settings.API_SIGNATURE_WINDOW:
            _fail(
                request,
                _("Timestamp outside the allowed window: check your clock (GET /auth/time)."),
                credential=credential,
            )
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
            _fail(request, _("Invalid application key or consumer key."), credential=credential)
        application: ApiApplication = consumer.application
        try:
            secret = keys.decrypt(application.secret_encrypted)
        except InvalidToken:
            _fail(request, _("Invalid application key or consumer key."), credential=credential)
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
            _fail(request, _("Invalid signature."), credential=credential)
        ConsumerKey.objects.filter(pk=consumer.pk).update(last_used_at=timezone.now())
        return ApiPrincipal(customer=application.customer, label=f"api:{application.application_key}"), consumer


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        value = header[7:].strip()
        credential = f"token:{value}"
        auth_lockout_check(request, credential=credential)
        token = (
            ApiToken.objects.select_related("customer")
            .filter(token_hash=keys.digest(value), revoked_at__isnull=True)
            .first()
            if value
            else None
        )
        if token is None:
            _fail(request, _("Invalid or revoked token."), credential=credential)
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return ApiPrincipal(customer=token.customer, label=f"token:{token.token_prefix}"), token
