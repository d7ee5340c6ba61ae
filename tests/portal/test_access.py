"""Who may reach what: other customers' hostings, anonymous visitors, CSRF, security headers."""

import datetime
import urllib.parse

import pytest
from django.test import Client
from django.utils import timezone

from mailqueue.blocking import mail_service_block
from mailqueue.models import Suppression
from mailqueue.state import Actor
from tests.portal.conftest import snapshot
from tests.portal.pages import text

pytestmark = pytest.mark.django_db

ACTIONS = ("block", "unblock", "purge", "cancel-purge")


def hosting_urls(service_name: str) -> list[str]:
    """Every URL of the portal that names a hosting."""
    base = f"/hostings/{service_name}/"
    return [
        base,
        f"{base}emails/",
        f"{base}emails/status.json",
        f"{base}emails/recipient/",
        f"{base}emails/suppressions/",
        *(f"{base}emails/{slug}/" for slug in ACTIONS),
        f"{base}smtp/",
    ]


def post_urls(service_name: str) -> list[str]:
    """The URLs that change something, on POST."""
    base = f"/hostings/{service_name}/"
    return [
        f"{base}emails/recipient/",
        f"{base}emails/suppressions/",
        *(f"{base}emails/{slug}/" for slug in ACTIONS),
        f"{base}smtp/",
    ]


SUPPRESSED = "suppressed@victim.example"
POST_DATA = {"email": "attacker@evil.example", "remove": SUPPRESSED, "address": [SUPPRESSED]}


def suppressed(hosting):
    """An address on the hosting's suppression list: a POST that reached it would remove it."""
    now = timezone.now()
    Suppression.objects.create(hosting=hosting, address=SUPPRESSED, expires_at=now + datetime.timedelta(days=90))


# --- tenancy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True], ids=["active", "blocked"])
def test_another_customers_hosting_is_a_404_everywhere_and_nothing_changes(tenant, stranger, blocked):
    if blocked:  # so that unblock and purge would be allowed for its owner
        mail_service_block(hosting=stranger.hosting, actor=Actor.customer(stranger.user))
    suppressed(stranger.hosting)
    before = snapshot(stranger.hosting)

    for url in hosting_urls(stranger.hosting.service_name):
        assert tenant.client.get(url).status_code == 404, url
        assert tenant.client.post(url, POST_DATA).status_code == 404, url
        response = tenant.client.get(url)
        assert stranger.hosting.smtp_password not in response.content.decode()

    assert snapshot(stranger.hosting) == before
    assert stranger.hosting.service_name not in text(tenant.client.get("/"))


def test_an_unknown_hosting_is_the_same_404(tenant):
    before = snapshot(tenant.hosting)

    for url in hosting_urls("no-such-hosting.example"):
        unknown_get, unknown_post = tenant.client.get(url), tenant.client.post(url, POST_DATA)
        assert (unknown_get.status_code, unknown_post.status_code) == (404, 404), url

    assert snapshot(tenant.hosting) == before


def test_the_owner_reaches_every_url(tenant):
    for url in hosting_urls(tenant.hosting.service_name):
        assert tenant.client.get(url).status_code == 200, url


# --- anonymous visitors ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_sent_to_the_login_page(tenant, method):
    anonymous = Client()
    before = snapshot(tenant.hosting)

    for url in ["/", *hosting_urls(tenant.hosting.service_name)]:
        response = getattr(anonymous, method)(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/accounts/login/?next={urllib.parse.quote(url)}", url

    assert snapshot(tenant.hosting) == before


def test_after_login_the_visitor_lands_on_the_page_asked_for(tenant):
    url = f"/hostings/{tenant.hosting.service_name}/emails/"
    anonymous = Client()
    login_page = anonymous.get(anonymous.get(url)["Location"])
    assert 'name="next" value="' + url + '"' in login_page.content.decode()

    response = anonymous.post(
        "/accounts/login/", {"username": tenant.user.username, "password": "a-long-test-password-42", "next": url}
    )

    assert (response.status_code, response["Location"]) == (302, url)


# --- CSRF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True], ids=["active", "blocked"])
def test_a_post_without_csrf_token_is_refused_and_changes_nothing(tenant, blocked):
    if blocked:
        mail_service_block(hosting=tenant.hosting, actor=Actor.customer(tenant.user))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tenant.user)
    suppressed(tenant.hosting)
    before = snapshot(tenant.hosting)

    for url in post_urls(tenant.hosting.service_name):
        assert strict.post(url, POST_DATA).status_code == 403, url
    assert strict.post("/accounts/logout/").status_code == 403

    assert snapshot(tenant.hosting) == before
    assert strict.get("/").status_code == 200  # still logged in


def test_a_post_with_the_pages_csrf_token_is_accepted(tenant):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tenant.user)
    strict.get(f"/hostings/{tenant.hosting.service_name}/emails/block/")
    token = strict.cookies["csrftoken"].value

    response = strict.post(f"/hostings/{tenant.hosting.service_name}/emails/block/", {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert snapshot(tenant.hosting)["state"] == "blocked"


# --- security headers ----------------------------------------------------------------------------------


def test_every_page_carries_the_security_headers(tenant):
    anonymous = Client()
    responses = {url: tenant.client.get(url) for url in ["/", *hosting_urls(tenant.hosting.service_name)]}
    for url in ("/accounts/login/", "/accounts/password_reset/"):
        responses[url] = anonymous.get(url)
    responses["/accounts/password_change/"] = tenant.client.get("/accounts/password_change/")
    responses["404"] = tenant.client.get("/hostings/no-such-hosting.example/emails/")
    responses["redirect"] = anonymous.get("/")

    for url, response in responses.items():
        assert response.status_code in (200, 302, 404), url
        csp = response.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], url
        assert response.get("X-Frame-Options") == "DENY", url
        assert response.get("X-Content-Type-Options") == "nosniff", url
        assert response.get("Referrer-Policy") == "same-origin", url


def test_pages_have_no_inline_script_the_policy_would_block(tenant):
    for url in ["/", *hosting_urls(tenant.hosting.service_name), "/accounts/password_change/"]:
        content = tenant.client.get(url).content.decode()
        assert "<script>" not in content and " onclick=" not in content and "javascript:" not in content, url
