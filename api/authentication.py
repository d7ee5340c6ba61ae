"""API authentication: OVH request signing, bearer tokens (and the session, in settings).

A signed request carries X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp and
X-Ovh-Signature = "$1$" + sha1(secret + "+" + consumer key + "+" + METHOD + "+" + full URL +
"+" + body + "+" + timestamp), exactly as the official `ovh` client computes it. Timestamps
outside API_SIGNATURE_WINDOW seconds are refused, so a captured request cannot be replayed later.
Refusals are OVH's (api.auth_errors), checked in OVH's order: the application key, the
consumer key's presence, the timestamp, the signature, then the consumer key itself — so a caller
without the application secret learns nothing about a consumer key. What a valid credential may
call is its access rules' business (api.permissions). Failures are counted per client address and
credential (api/auth_failures.py): past API_AUTH_MAX_FAILURES that pair gets 429, the other
credentials of the address keep working.
"""

import hashlib
import hmac
import time

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication

from api import keys
from api.auth_errors import InvalidCredential, InvalidKey, InvalidSignature, NotCredential, QueryTimeout
from api.auth_failures import auth_failure_record, auth_lockout_check
from api.models import ApiApplication, ApiToken, ConsumerKey, CredentialStatus

MAX_APPLICATION_KEY = ApiApplication._meta.get_field("application_key").max_length


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


def _fail(request, error, *, credential: str):
    auth_failure_record(request, credential=credential)
    raise error


def signature(*, secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: str) -> str:
    payload = "+".join([secret, consumer_key, method.upper(), url, body, timestamp])
    return "$1$" + hashlib.sha1(payload.encode("utf-8")).hexdigest()  # noqa: S324 (the OVH scheme)


def _application(application_key: str) -> ApiApplication | None:
    if len(application_key) > MAX_APPLICATION_KEY or "\x00" in application_key:  # PostgreSQL refuses NUL
        return None
    return ApiApplication.objects.filter(application_key=application_key, revoked_at__isnull=True).first()


def application_authenticate(request) -> ApiApplication:
    """The application of a request that carries only X-Ovh-Application (a consumer key request):
    InvalidKey (403) when unknown or revoked, counted as a failed authentication."""
    application_key = request.headers.get("X-Ovh-Application", "")
    credential = f"application:{application_key}"
    auth_lockout_check(request, credential=credential)
    application = _application(application_key) if application_key else None
    if application is None:
        _fail(request, InvalidKey(), credential=credential)
    return application


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
        now = timezone.now()
        # The one query of a valid request: the key with its application and customer.
        consumer = (
            ConsumerKey.objects.select_related("application", "customer")
            .filter(key_hash=keys.digest(consumer_key), application__application_key=application_key)
            .first()
            if consumer_key and len(application_key) <= MAX_APPLICATION_KEY and "\x00" not in application_key
            else None
        )
        application = consumer.application if consumer is not None else _application(application_key)
        if application is None or application.revoked_at is not None:
            _fail(request, InvalidKey(), credential=credential)
        if not consumer_key:
            _fail(request, NotCredential(), credential=credential)
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            age = None
        if age is None or age > settings.API_SIGNATURE_WINDOW:
            _fail(request, QueryTimeout(), credential=credential)
        try:
            secret = keys.decrypt(application.secret_encrypted)
        except InvalidToken:  # encrypted with another key: the application cannot sign any more
            _fail(request, InvalidKey(), credential=credential)
        body = request._request.body.decode("utf-8", "replace")
        expected = signature(
            secret=secret,
            consumer_key=consumer_key,
            method=request.method,
            url=request.build_absolute_uri(),
            body=body,
            timestamp=timestamp,
        )
        if not given or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
            _fail(request, InvalidSignature(), credential=credential)
        if consumer is None:
            _fail(request, InvalidCredential(_("This credential does not exist")), credential=credential)
        if consumer.status_at(now) != CredentialStatus.VALIDATED:
            _fail(request, InvalidCredential(), credential=credential)
        ConsumerKey.objects.filter(pk=consumer.pk).update(last_used_at=now)
        consumer.last_used_at = now
        return ApiPrincipal(customer=consumer.customer, label=f"api:{application.application_key}"), consumer


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
            _fail(request, InvalidCredential(_("Invalid or revoked token.")), credential=credential)
        now = timezone.now()
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        return ApiPrincipal(customer=token.customer, label=f"token:{token.token_prefix}"), token
