"""Login, logout, password change and reset, and login throttling (django-axes)."""

import re

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import TEST_PASSWORD
from tests.portal.pages import dom, text

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Another-Long-Passphrase-2024"
BAD_LOGIN = "Identifiant ou mot de passe incorrect."


def login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def is_logged_in(client) -> bool:
    return client.get("/").status_code == 200


def test_the_login_page_has_labelled_username_and_password_fields():
    response = Client().get("/accounts/login/")

    assert response.status_code == 200
    page = dom(response)
    assert page.find("h1").text == "Connexion"
    form = page.find("form", action="/accounts/login/")
    assert form.attrs["method"] == "post"
    for name, label in (("username", "Identifiant"), ("password", "Mot de passe")):
        field = form.find("input", name=name)
        assert page.find("label", for_=field.attrs["id"]).text == label
    assert form.find("input", name="password").attrs["type"] == "password"
    assert page.find("a", href="/accounts/password_reset/").text == "Mot de passe oublié\u202f?"


def test_login_with_the_right_password_leads_to_the_hostings(tenant):
    client = Client()

    response = login(client, tenant.user.username, TEST_PASSWORD, follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert tenant.hosting.service_name in text(response)


def test_login_with_a_wrong_password_is_refused(tenant):
    client = Client()

    response = login(client, tenant.user.username, "wrong-password")

    assert response.status_code == 200
    assert dom(response).find(role="alert").text == BAD_LOGIN
    assert not is_logged_in(client)


def test_login_does_not_redirect_to_another_site(tenant):
    client = Client()

    response = client.post(
        "/accounts/login/",
        {"username": tenant.user.username, "password": TEST_PASSWORD, "next": "https://evil.example/"},
    )

    assert response["Location"] == "/"


def test_logout_is_a_post(tenant):
    assert tenant.client.get("/accounts/logout/").status_code == 405
    assert is_logged_in(tenant.client)
    logout = dom(tenant.client.get("/")).find("form", action="/accounts/logout/")
    assert logout.attrs["method"] == "post" and logout.find("button").text == "Se déconnecter"

    response = tenant.client.post("/accounts/logout/")

    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")
    assert not is_logged_in(tenant.client)


def test_password_change(tenant):
    page = tenant.client.get("/accounts/password_change/")
    assert page.status_code == 200
    assert {field.attrs["name"] for field in dom(page).find_all("input", type="password")} == {
        "old_password",
        "new_password1",
        "new_password2",
    }

    wrong = tenant.client.post(
        "/accounts/password_change/",
        {"old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200 and dom(wrong).find(role="alert") is not None

    response = tenant.client.post(
        "/accounts/password_change/",
        {"old_password": TEST_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    assert response.redirect_chain == [("/accounts/password_change/done/", 302)]
    assert "Votre mot de passe a été changé." in text(response)
    assert is_logged_in(tenant.client)  # the session survives its own password change
    assert not is_logged_in_with(tenant.user.username, TEST_PASSWORD)
    assert is_logged_in_with(tenant.user.username, NEW_PASSWORD)


def is_logged_in_with(username, password) -> bool:
    client = Client()
    login(client, username, password)
    return is_logged_in(client)


def test_password_reset_by_email(tenant, mailoutbox):
    client = Client()
    assert client.get("/accounts/password_reset/").status_code == 200

    response = client.post("/accounts/password_reset/", {"email": tenant.user.email}, follow=True)

    assert response.redirect_chain == [("/accounts/password_reset/done/", 302)]
    assert "vous recevrez un e-mail" in text(response)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [tenant.user.email]
    link = re.search(r"https?://testserver(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    set_password_url = form_page.redirect_chain[-1][0]
    assert dom(form_page).find("input", name="new_password1") is not None

    done = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True)

    assert done.redirect_chain == [("/accounts/reset/done/", 302)]
    assert "Vous pouvez vous connecter." in text(done)
    assert dom(done).find("a", href="/accounts/login/") is not None
    assert is_logged_in_with(tenant.user.username, NEW_PASSWORD)
    assert not is_logged_in_with(tenant.user.username, TEST_PASSWORD)
    assert "Ce lien n’est plus valide." in text(Client().get(link, follow=True))  # used once


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(mailoutbox):
    response = Client().post("/accounts/password_reset/", {"email": "nobody@nowhere.example"}, follow=True)

    assert response.redirect_chain == [("/accounts/password_reset/done/", 302)]
    assert mailoutbox == []


@pytest.mark.axes
def test_login_is_locked_after_too_many_failures(tenant):
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for _attempt in range(limit - 1):
        assert login(client, tenant.user.username, "wrong", REMOTE_ADDR="203.0.113.7").status_code == 200
    last_failure = login(client, tenant.user.username, "wrong", REMOTE_ADDR="203.0.113.7")
    assert last_failure.status_code == 429

    response = login(client, tenant.user.username, TEST_PASSWORD, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
    assert dom(response).find("h1").text == "Connexion temporairement bloquée"
    assert not is_logged_in(client)
    # the lock is per username and address: the same user from elsewhere may still log in
    other_place = Client()
    assert login(other_place, tenant.user.username, TEST_PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 302


@pytest.mark.axes
def test_a_successful_login_resets_the_failure_count(tenant):
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for _attempt in range(limit - 1):
        login(client, tenant.user.username, "wrong", REMOTE_ADDR="203.0.113.8")
    assert login(client, tenant.user.username, TEST_PASSWORD, REMOTE_ADDR="203.0.113.8").status_code == 302
    client.post("/accounts/logout/")

    for _attempt in range(limit - 1):
        assert login(client, tenant.user.username, "wrong", REMOTE_ADDR="203.0.113.8").status_code == 200
    assert login(client, tenant.user.username, TEST_PASSWORD, REMOTE_ADDR="203.0.113.8").status_code == 302
