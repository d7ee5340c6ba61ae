"""Only the declared filters filter the admin's lists: no yes/no oracle on content or secrets.

Django's own `ModelAdmin.lookup_allowed` accepts any lookup on a model's own fields, so a
read-only Support user could ask `?raw__contains=<guess>` of the messages list (or
`?smtp_password_hash__startswith=<guess>` of the hostings list) and read the answer in the
result count, one character at a time. A lookup no declared list filter, search box or date
hierarchy produces is Django's DisallowedModelAdminLookup: 400 "Bad Request".
"""

import html
import re

import pytest
from django.contrib import admin

from hosting.models import Hosting
from mailqueue.models import MessageStatus
from tests.admin.conftest import logged_in, page_text, staff_user
from tests.factories import (
    DeliveryErrorFactory,
    ErrorDigestFactory,
    EventFactory,
    HostingFactory,
    MessageFactory,
)

pytestmark = pytest.mark.django_db

MESSAGES_URL = "/admin/mailqueue/message/"
HOSTINGS_URL = "/admin/hosting/hosting/"
TOKEN = "tok-5f3a9c"
PROJECT_APPS = {"hosting", "mailqueue", "reports", "api"}


@pytest.fixture
def held_secret():
    hosting = HostingFactory(service_name="acme-shop.fr")
    MessageFactory(
        hosting=hosting,
        status=MessageStatus.HELD,
        subject="Réinitialisation",
        raw=f"Subject: Réinitialisation\r\n\r\nVotre code : {TOKEN}\r\n".encode(),
    )
    return hosting


@pytest.fixture(params=["Support", "Operators"])
def staff_client(request):
    return logged_in(staff_user(f"staff-{request.param.lower()}", request.param))


def project_admins():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in PROJECT_APPS
    ]


def changelist_url(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.mark.parametrize(
    "query",
    [
        {"raw__contains": TOKEN.encode().hex(), "status": "held"},
        {"raw__contains": b"zzzz".hex(), "status": "held"},
        {"raw__regex": "tok-5"},
        {"raw__startswith": "5375"},
        {"subject__contains": "Réinit"},
        {"hosting__smtp_password_hash__startswith": "sha256$"},
    ],
    ids=["right-guess", "wrong-guess", "regex", "startswith", "subject", "through-hosting"],
)
def test_message_content_cannot_be_probed(staff_client, held_secret, query):
    response = staff_client.get(MESSAGES_URL, query)

    assert response.status_code == 400, "a lookup no declared filter produces is refused"
    assert TOKEN not in response.content.decode()


@pytest.mark.parametrize("guess", ["sha256$", "sha256$0", "x"])
def test_smtp_password_digests_cannot_be_probed(staff_client, held_secret, guess):
    assert staff_client.get(HOSTINGS_URL, {"smtp_password_hash__startswith": guess}).status_code == 400
    assert staff_client.get(HOSTINGS_URL, {"smtp_password_hash": guess}).status_code == 400


def test_every_project_admin_refuses_lookups_on_its_fields(superuser_client):
    """Every field of every listed model, even for a superuser: `<field>__startswith`, `__gt`."""
    refused, checked = [], 0
    for model, _model_admin in project_admins():
        for field in model._meta.concrete_fields:
            for lookup in ("startswith", "gt"):
                checked += 1
                status = superuser_client.get(changelist_url(model), {f"{field.attname}__{lookup}": "a"}).status_code
                if status != 400:
                    refused.append((model._meta.label, field.attname, lookup, status))
    assert checked > 60
    assert refused == []


def sidebar_filter_links(response) -> list[str]:
    """The query strings of the filter links of a changelist's sidebar."""
    sidebar = re.search(r'<nav id="changelist-filter".*?</nav>', response.content.decode(), re.S)
    return [html.unescape(link) for link in re.findall(r'<a href="(\?[^"]*)"', sidebar.group(0) if sidebar else "")]


def test_every_declared_filter_link_still_works(staff_client):
    hosting = HostingFactory()
    MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    DeliveryErrorFactory(hosting=hosting)
    EventFactory(hosting=hosting)
    ErrorDigestFactory(hosting=hosting)
    followed = 0
    for model, model_admin in project_admins():
        url = changelist_url(model)
        listing = staff_client.get(url)
        assert listing.status_code == 200, url
        links = sidebar_filter_links(listing)
        assert bool(links) == bool(model_admin.list_filter), url
        for query in links:
            followed += 1
            assert staff_client.get(url + query).status_code == 200, url + query
    assert followed > 20


def test_declared_filters_search_and_popups_keep_working(staff_client, held_secret):
    held = staff_client.get(MESSAGES_URL, {"status__exact": "held", "q": "acme-shop.fr"})
    assert held.status_code == 200
    assert "Réinitialisation" in page_text(held)
    assert staff_client.get(MESSAGES_URL, {"status__exact": "sent"}).status_code == 200
    assert staff_client.get(HOSTINGS_URL, {"state": "active", "plan__exact": "perso", "o": "1"}).status_code == 200
    popup = staff_client.get(HOSTINGS_URL, {"_to_field": "id", "_popup": "1", "q": "acme"})  # raw-id widget
    assert popup.status_code == 200
    assert "acme-shop.fr" in page_text(popup)
    assert Hosting.objects.count() == 1
