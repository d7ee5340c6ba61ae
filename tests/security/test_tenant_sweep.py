"""Every URL pattern of the portal and the API, requested with another customer's identifiers
(as a logged-in customer, with a bearer token, with an OVH-signed request): 404, nothing changed.

The patterns are enumerated from the URL resolver, so a new URL is swept without editing this test.
"""

import datetime
import hashlib
import json
import time

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from api.models import ApiApplication, ApiToken, ConsumerKey
from api.services import api_credentials_create
from hosting.models import Hosting
from mailqueue.models import Event, MailService, Message, MessageStatus, Suppression, WebhookDelivery, WebhookEndpoint
from tests.factories import (
    HostingFactory,
    MembershipFactory,
    MessageFactory,
    WebhookAttemptFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
)

# Not tenant-scoped: the admin has its own tests; the rest takes no customer identifier.
SKIPPED_PREFIXES = ("admin/", "accounts/", "i18n/", "static/", "metrics", "healthz", "1.0/schema", "1.0/docs")
IDENTIFIER_KWARGS = {"service_name", "pk"}
ACTION_SLUGS = ["block", "unblock", "purge", "cancel-purge", "unknown"]
SUPPRESSED = "victim+news@example.org"  # on the victim's suppression list


def _patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def tenant_routes() -> list[str]:
    routes = []
    for route, pattern in _patterns():
        if route.startswith(SKIPPED_PREFIXES):
            continue
        if IDENTIFIER_KWARGS & set(pattern.pattern.converters):
            routes.append(route)
    return routes


def _fill(route: str, *, service_name: str, pk: int, slug: str) -> str:
    path = route.replace("<str:service_name>", service_name).replace("<int:pk>", str(pk))
    return "/" + path.replace("<slug:slug>", slug).replace("<str:address>", SUPPRESSED)


def _urls(victim: dict, *, own_service_name: str | None = None) -> list[str]:
    """Every tenant URL with the victim's identifiers; and, given the attacker's own hosting, the
    URLs naming one of the victim's objects (a message) through that hosting."""
    urls = []
    for route in tenant_routes():
        pk = victim["token_pk"] if "tokens" in route else victim["application_pk"]
        pk = victim["consumer_key_pk"] if "keys" in route else pk
        pk = victim["message_pk"] if "messages/<int:pk>" in route else pk
        pk = victim["webhook_pk"] if "webhooks/" in route else pk
        slugs = ACTION_SLUGS if "<slug:slug>" in route else ["-"]
        service_names = [victim["service_name"]]
        if own_service_name and "<str:service_name>" in route and "<int:pk>" in route:
            service_names.append(own_service_name)
        urls.extend(
            _fill(route, service_name=service_name, pk=pk, slug=slug)
            for slug in slugs
            for service_name in service_names
        )
    return sorted(set(urls))


def _snapshot(hosting: Hosting) -> dict:
    service = MailService.objects.get(hosting=hosting)
    return {
        "service": {
            field.name: getattr(service, field.name) for field in MailService._meta.fields if field.name != "hosting"
        },
        "password": Hosting.objects.get(pk=hosting.pk).smtp_password_hash,
        "events": Event.objects.filter(hosting=hosting).count(),
        "messages": sorted(Message.objects.filter(hosting=hosting).values_list("id", "status")),
        "suppressions": sorted(Suppression.objects.filter(hosting=hosting).values_list("address", flat=True)),
        "applications": sorted(
            ApiApplication.objects.filter(customer=hosting.customer).values_list("id", "revoked_at")
        ),
        "tokens": sorted(ApiToken.objects.filter(customer=hosting.customer).values_list("id", "revoked_at")),
        "consumer_keys": sorted(
            ConsumerKey.objects.filter(customer=hosting.customer).values_list("id", "status", "revoked_at")
        ),
        "webhooks": list(WebhookEndpoint.objects.filter(customer=hosting.customer).values().order_by("id")),
        "webhook_deliveries": sorted(
            WebhookDelivery.objects.filter(endpoint__customer=hosting.customer).values_list("id", "status")
        ),
    }


@pytest.fixture
def tenants():
    victim_member = MembershipFactory()
    victim = HostingFactory(customer=victim_member.customer)
    held = MessageFactory(hosting=victim, status=MessageStatus.HELD)
    MessageFactory(hosting=victim, status=MessageStatus.QUEUED)
    deferred = MessageFactory(hosting=victim, status=MessageStatus.DEFERRED)
    in_a_day = timezone.now() + datetime.timedelta(days=1)
    Suppression.objects.create(hosting=victim, address=SUPPRESSED, expires_at=in_a_day)
    victim_credentials = api_credentials_create(customer=victim.customer, name="victim")
    webhook = WebhookEndpointFactory(customer=victim.customer)
    WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=webhook))
    attacker_member = MembershipFactory()
    attacker_hosting = HostingFactory(customer=attacker_member.customer)
    attacker_credentials = api_credentials_create(customer=attacker_member.customer, name="attacker")
    return {
        "victim": victim,
        "victim_ids": {
            "service_name": victim.service_name,
            "application_pk": ApiApplication.objects.get(application_key=victim_credentials.application_key).pk,
            "token_pk": ApiToken.objects.get(customer=victim.customer).pk,
            "consumer_key_pk": ConsumerKey.objects.get(customer=victim.customer).pk,
            "message_pk": held.pk,
            "webhook_pk": webhook.pk,
        },
        "attacker_service_name": attacker_hosting.service_name,
        "victim_messages": [held.pk, deferred.pk],
        "attacker_user": attacker_member.user,
        "attacker_credentials": attacker_credentials,
    }


def _signed_headers(credentials, method: str, url: str, body: str) -> dict:
    timestamp = str(int(time.time()))
    payload = "+".join(
        [credentials.application_secret, credentials.consumer_key, method, url, body, timestamp]
    ).encode()
    return {
        "HTTP_X_OVH_APPLICATION": credentials.application_key,
        "HTTP_X_OVH_CONSUMER": credentials.consumer_key,
        "HTTP_X_OVH_TIMESTAMP": timestamp,
        "HTTP_X_OVH_SIGNATURE": "$1$" + hashlib.sha1(payload).hexdigest(),  # noqa: S324
    }


BODIES = {
    "GET": "",
    "DELETE": "",
    "POST": json.dumps({"action": "BLOCK", "email": "x@example.org"}),
    "PUT": json.dumps({"email": "x@example.org"}),
}


@pytest.mark.django_db
def test_the_sweep_covers_every_tenant_url():
    routes = tenant_routes()
    assert any("emails" in route for route in routes)
    assert any(route.startswith("1.0/hosting/web/") for route in routes)
    assert any("api-credentials" in route for route in routes)
    assert any("api-credentials/keys/" in route for route in routes)
    assert any(route.endswith("emails/suppressions/") for route in routes)
    assert any(route.endswith("suppressions/<str:address>") for route in routes)
    for new_page in ("emails/history/", "emails/messages/", "emails/messages/<int:pk>/", "messages/export.csv"):
        assert any(route.endswith(new_page) for route in routes), new_page
    assert any(route.endswith("emails/errors/export.csv") for route in routes)
    for api_route in ("email/messages/<int:pk>", "email/messages/<int:pk>/retry", "email/messages/export"):
        assert f"1.0/hosting/web/<str:service_name>/{api_route}" in routes, api_route
    assert "1.0/hosting/web/<str:service_name>/email/bounces/export" in routes
    for webhook_route in ("", "/rotateSecret", "/test", "/deliveries"):
        assert f"1.0/me/webhooks/<int:pk>{webhook_route}" in routes, webhook_route
    for webhook_page in ("", "rotate/", "delete/", "test/"):
        assert f"webhooks/<int:pk>/{webhook_page}" in routes, webhook_page
    assert len(routes) >= 12


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_customer_session_gets_404_on_other_customers_urls(tenants, method):
    client = Client()
    client.force_login(tenants["attacker_user"])
    before = _snapshot(tenants["victim"])
    for url in _urls(tenants["victim_ids"], own_service_name=tenants["attacker_service_name"]):
        if url.startswith("/1.0/"):
            response = getattr(client, method.lower())(url, BODIES[method], content_type="application/json")
        else:
            data = {
                "email": "attacker@example.org",
                "remove": SUPPRESSED,
                # the delivery log's actions, on the victim's own messages
                "action": "delete",
                "message": tenants["victim_messages"],
                "delete": tenants["victim_messages"][0],
            }
            response = getattr(client, method.lower())(url, data)
        if response.status_code == 405:
            continue  # this URL has no such method for anyone
        assert response.status_code == 404, f"{method} {url} → {response.status_code}"
    assert _snapshot(tenants["victim"]) == before


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("scheme", ["bearer", "signed"])
def test_api_credentials_get_404_on_other_customers_services(tenants, method, scheme):
    client = Client()
    credentials = tenants["attacker_credentials"]
    before = _snapshot(tenants["victim"])
    own_service_name = tenants["attacker_service_name"]
    api_urls = [
        url for url in _urls(tenants["victim_ids"], own_service_name=own_service_name) if url.startswith("/1.0/")
    ]
    assert api_urls
    for url in api_urls:
        body = BODIES[method]
        if scheme == "bearer":
            headers = {"HTTP_AUTHORIZATION": f"Bearer {credentials.token}"}
        else:
            headers = _signed_headers(credentials, method, f"http://testserver{url}", body)
        response = client.generic(method, url, body, content_type="application/json", **headers)
        if response.status_code == 405:
            continue
        assert response.status_code == 404, f"{scheme} {method} {url} → {response.status_code} {response.content!r}"
        assert set(response.json()) == {"message"}
    assert _snapshot(tenants["victim"]) == before
