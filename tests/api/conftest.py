"""API fixtures: credentials made by the real service, and a client that signs like the `ovh` client."""

import hashlib
import itertools
import json
import random
import time
from types import SimpleNamespace

import pytest
from rest_framework.throttling import SimpleRateThrottle

from api import keys
from api.models import ApiApplication, ConsumerKey
from api.services import api_application_create, api_credentials_create
from tests.factories import HostingFactory, MembershipFactory

BASE = "http://testserver/1.0"
_addresses = itertools.count(1)
_address_prefix = random.randrange(1, 250)


def next_address() -> str:
    """A client address of its own for each API client, so auth-failure counters never leak between tests."""
    number = next(_addresses)
    return f"10.{_address_prefix}.{number // 250}.{number % 250 + 1}"


def ovh_signature(*, secret, consumer_key, method, url, body, timestamp) -> str:
    """What the official `ovh` client sends in X-Ovh-Signature (ovh/client.py, raw_call)."""
    payload = "+".join([secret, consumer_key, method.upper(), url, body, timestamp])
    return "$1$" + hashlib.sha1(payload.encode("utf-8")).hexdigest()  # noqa: S324 (the OVH scheme)


class ApiClient:
    """Calls /1.0 through Django's test client, signed (default), with the bearer token, or not at all."""

    def __init__(self, client, credentials, *, auth="sign"):
        self.client = client
        self.credentials = credentials
        self.auth = auth
        self.address = next_address()

    def call(self, method, path, data=None, *, auth=None, body=None, content_type="application/json", **extra):
        """`path` is relative to /1.0 ("/hosting/web"); `data` is JSON-encoded as the ovh client does;
        `body` (str or bytes) is sent as is. `extra` may override timestamp/secret/signature/headers."""
        auth = auth or self.auth
        if body is None:
            body = "" if data is None else json.dumps(data, separators=(",", ":"))
        url = BASE + path
        headers = {"REMOTE_ADDR": self.address}
        credentials = self.credentials
        if auth == "sign":
            timestamp = str(extra.pop("timestamp", int(time.time())))
            body_text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            signature = ovh_signature(
                secret=extra.pop("secret", credentials.application_secret),
                consumer_key=credentials.consumer_key,
                method=method,
                url=url,
                body=body_text,
                timestamp=timestamp,
            )
            headers.update(
                HTTP_X_OVH_APPLICATION=credentials.application_key,
                HTTP_X_OVH_CONSUMER=credentials.consumer_key,
                HTTP_X_OVH_TIMESTAMP=timestamp,
                HTTP_X_OVH_SIGNATURE=extra.pop("signature", signature),
            )
        elif auth == "bearer":
            headers["HTTP_AUTHORIZATION"] = f"Bearer {extra.pop('token', credentials.token)}"
        headers.update(extra)
        return self.client.generic(method, url, body, content_type=content_type, **headers)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def put(self, path, data=None, **kwargs):
        return self.call("PUT", path, data, **kwargs)

    def post(self, path, data=None, **kwargs):
        return self.call("POST", path, data, **kwargs)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users and SMTP passwords are hashed on creation; the strong hasher would dominate these tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _generous_rates(monkeypatch):
    """DRF reads its rates once, at import: tests of throttling set their own, the others never hit them."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/minute", "user": "100000/minute"})


@pytest.fixture
def owner(db):
    """A customer's user, the customer, and its hosting: (user, customer, hosting)."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer, service_name=f"shop-{membership.customer.pk}.example")
    return membership.user, membership.customer, hosting


@pytest.fixture
def hosting(owner):
    return owner[2]


@pytest.fixture
def credentials(owner):
    return api_credentials_create(customer=owner[1], name="tests")


@pytest.fixture
def api(client, credentials):
    return ApiClient(client, credentials)


@pytest.fixture
def other_hosting(db):
    """A hosting of another customer, with credentials of its own."""
    return HostingFactory()


def email_path(hosting, suffix="") -> str:
    return f"/hosting/web/{hosting.service_name}/email{suffix}"


READ_ONLY_HOSTINGS = [{"method": "GET", "path": "/hosting/web/*"}]


@pytest.fixture
def application(owner):
    """An application of the owner's customer (its developer made it), with its secret."""
    created = api_application_create(customer=owner[1], name="Mail dashboard", description="Reads your mail")
    return SimpleNamespace(
        record=ApiApplication.objects.get(application_key=created.application_key),
        key=created.application_key,
        secret=created.application_secret,
    )


def request_key(client, application_key, rules=READ_ONLY_HOSTINGS, redirection=None, *, address=None, **body):
    """What the official client's request_consumerkey() sends: X-Ovh-Application only, no signature."""
    payload = {"accessRules": rules, "redirection": redirection, "allowedIPs": None, **body}
    return client.post(
        "/1.0/auth/credential",
        json.dumps(payload, separators=(",", ":")),
        content_type="application/json",
        HTTP_X_OVH_APPLICATION=application_key,
        REMOTE_ADDR=address or next_address(),
    )


def signed(client, application, consumer_key) -> ApiClient:
    """A client signing with the application's key and secret and `consumer_key`."""
    credentials = SimpleNamespace(
        application_key=application.key, application_secret=application.secret, consumer_key=consumer_key
    )
    return ApiClient(client, credentials)


def record_of(consumer_key: str) -> ConsumerKey:
    return ConsumerKey.objects.get(key_hash=keys.digest(consumer_key))
