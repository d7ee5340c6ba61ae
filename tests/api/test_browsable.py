"""The browsable API (DRF's HTML pages at /1.0/…) as a signed-in customer sees it."""

import re

import pytest
from django.urls import reverse

from api.browsable import resource_name
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db

REQUEST_FORMS = re.compile(r'<form[^>]*(?:method="POST"|data-method="(?:PUT|PATCH|DELETE|OPTIONS)")')


def breadcrumbs(html: str) -> list[tuple[str, str]]:
    [trail] = re.findall(r'<ul class="breadcrumb">(.*?)</ul>', html, re.S)
    return [(label.strip(), href) for href, label in re.findall(r'<a href="([^"]*)">(.*?)</a>', trail, re.S)]


def heading(html: str) -> str:
    [title] = re.findall(r"<h1>(.*?)</h1>", html, re.S)
    return title.strip()


@pytest.fixture
def browser(client, customer_user):
    user, _customer, hosting = customer_user
    client.force_login(user)
    return client, hosting


def get_html(client, url):
    return client.get(url, HTTP_ACCEPT="text/html", HTTP_ACCEPT_LANGUAGE="en")


def test_breadcrumbs_and_title_read_as_the_resources(browser):
    client, hosting = browser
    response = get_html(client, f"/1.0/hosting/web/{hosting.service_name}/email/messages")
    html = response.content.decode()

    assert response.status_code == 200
    assert breadcrumbs(html) == [
        ("API 1.0", reverse("api-docs")),
        ("hosting/web", "/1.0/hosting/web"),
        (hosting.service_name, f"/1.0/hosting/web/{hosting.service_name}"),
        ("email", f"/1.0/hosting/web/{hosting.service_name}/email"),
        ("messages", f"/1.0/hosting/web/{hosting.service_name}/email/messages"),
    ]
    assert heading(html) == "/hosting/web/{serviceName}/email/messages"
    assert "Not Found" not in html
    assert "Hosting List" not in html


@pytest.mark.parametrize(
    ("route", "name"),
    [
        ("1.0/hosting/web", "/hosting/web"),
        (
            "1.0/hosting/web/<str:service_name>/email/messages/<int:pk>/retry",
            "/hosting/web/{serviceName}/email/messages/{id}/retry",
        ),
        (
            "1.0/hosting/web/<str:service_name>/email/suppressions/<str:address>",
            "/hosting/web/{serviceName}/email/suppressions/{address}",
        ),
        ("1.0/me/webhooks/<int:pk>/rotateSecret", "/me/webhooks/{id}/rotateSecret"),
    ],
)
def test_a_route_is_named_as_ovh_writes_it(route, name):
    assert resource_name(route) == name


def test_an_address_in_the_path_is_one_crumb(browser):
    client, hosting = browser
    html = get_html(
        client, f"/1.0/hosting/web/{hosting.service_name}/email/suppressions/a+b@example.com"
    ).content.decode()

    assert breadcrumbs(html)[-2:] == [
        ("suppressions", f"/1.0/hosting/web/{hosting.service_name}/email/suppressions"),
        ("a+b@example.com", f"/1.0/hosting/web/{hosting.service_name}/email/suppressions/a+b@example.com"),
    ]


def test_a_page_of_the_api_leads_back_to_the_portal(browser):
    client, _hosting = browser
    html = get_html(client, "/1.0/hosting/web").content.decode()

    assert f'<a href="{reverse("hosting-list")}">Back to the customer area</a>' in html
    assert "Django REST framework" not in html


def test_the_way_back_is_in_french_for_a_french_reader(browser):
    client, _hosting = browser
    html = client.get("/1.0/hosting/web", HTTP_ACCEPT="text/html", HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "Retour à l’espace client" in html


def test_a_resource_page_offers_its_forms(browser):
    client, hosting = browser
    html = get_html(client, f"/1.0/hosting/web/{hosting.service_name}/email/messages").content.decode()

    assert REQUEST_FORMS.search(html)


@pytest.mark.parametrize("path", ["/1.0/hosting/nope", "/1.0/hosting/web/{other}/email", "/1.0/me/webhooks/999999"])
def test_an_error_page_offers_no_request_form(browser, path):
    client, _hosting = browser
    other = HostingFactory()  # another customer's: a 404 like an unknown one
    response = get_html(client, path.format(other=other.service_name))
    html = response.content.decode()

    assert response.status_code == 404
    assert not REQUEST_FORMS.search(html)
    assert "raw-data" not in html  # the raw data forms of POST/PUT/PATCH


def test_an_unknown_endpoint_has_its_path_as_title_and_no_not_found_crumb(browser):
    client, _hosting = browser
    html = get_html(client, "/1.0/hosting/nope").content.decode()

    assert heading(html) == "/hosting/nope"
    assert breadcrumbs(html) == [("API 1.0", reverse("api-docs"))]


@pytest.mark.parametrize("path", ["/1.0/hosting/nope", "/1.0/hosting/web", "/1.0/auth/time"])
@pytest.mark.parametrize("method", ["get", "options"])
def test_allow_lists_each_method_once(browser, path, method):
    client, _hosting = browser
    allowed = [name.strip() for name in getattr(client, method)(path)["Allow"].split(",")]

    assert len(allowed) == len(set(allowed)), allowed
    assert "OPTIONS" in allowed


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options", "head"])
def test_an_unknown_endpoint_is_a_404_for_every_method(client, method):
    response = getattr(client, method)("/1.0/hosting/nope")

    assert response.status_code == 404
    if method != "head":
        assert response.json() == {"message": "No such API endpoint."}


def test_a_visitor_not_logged_in_is_offered_the_portal_login(client):
    html = client.get("/1.0/hosting/web", HTTP_ACCEPT="text/html", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert f'<a href="{reverse("login")}?next=/1.0/hosting/web">Log in</a>' in html
    assert not REQUEST_FORMS.search(html)  # a 401: nothing to send
