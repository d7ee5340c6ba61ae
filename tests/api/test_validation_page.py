"""The validation page of a requested consumer key (the validationUrl, SPEC §9.3): log in, see the
application and its rules, pick one of one's customers and an expiry, validate or refuse; once."""

import datetime
import html
import re

import pytest
from django.test import Client
from django.utils import timezone

from api.models import ConsumerKey, CredentialStatus
from api.services import CredentialError, api_application_revoke, consumer_key_validate
from tests.api.conftest import record_of, request_key
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def requested(client, application):
    """A pending key asked for by the application: its consumer key and validation path."""
    body = request_key(client, application.key, redirection="https://tool.example/done?step=2").json()
    return body["consumerKey"], body["validationUrl"].removeprefix("http://testserver")


@pytest.fixture
def user_client(owner):
    client = Client()
    client.force_login(owner[0])
    return client


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def test_anonymous_is_sent_to_log_in_and_back(client, requested):
    _key, path = requested
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_page_shows_the_application_its_rules_and_the_users_customers(user_client, owner, requested):
    other = MembershipFactory()  # a customer the user is not a member of
    second = MembershipFactory(user=owner[0]).customer
    page = user_client.get(requested[1])
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    shown = text(page)
    assert "Mail dashboard" in shown and "Reads your mail" in shown
    assert "GET /1.0/hosting/web/*" in shown
    assert owner[1].name in shown and second.name in shown
    assert other.customer.name not in shown
    assert "1 heure" in shown and "30 jours" in shown and "Illimitée" in shown
    assert record_of(requested[0]).status == CredentialStatus.PENDING, "showing the page decides nothing"


def test_validating_sends_the_browser_to_the_redirection(user_client, owner, requested):
    response = user_client.post(requested[1], {"customer": owner[1].pk, "lifetime": "2592000", "decision": "validate"})
    assert response.status_code == 302
    assert response["Location"] == "https://tool.example/done?step=2"
    key = record_of(requested[0])
    assert (key.status, key.customer, key.validated_by) == (CredentialStatus.VALIDATED, owner[1], owner[0])
    assert abs(key.expires_at - (timezone.now() + datetime.timedelta(days=30))) < datetime.timedelta(minutes=1)


def test_unlimited_means_no_expiry(user_client, owner, requested):
    user_client.post(requested[1], {"customer": owner[1].pk, "lifetime": "unlimited", "decision": "validate"})
    assert record_of(requested[0]).expires_at is None


@pytest.mark.parametrize(
    "redirection",
    [
        None,
        "",
        "myapp://done",
        "javascript:alert(1)",
        "https:///nohost",
        "https://user:password@tool.example/",
        "https://tool.example evil.example/",
        "https://tool.example;script-src *",
    ],
)
def test_without_a_web_redirection_a_done_page_is_shown(client, user_client, owner, application, redirection):
    body = request_key(client, application.key, redirection=redirection).json()
    path = body["validationUrl"].removeprefix("http://testserver")
    response = user_client.post(path, {"customer": owner[1].pk, "lifetime": "3600", "decision": "validate"})
    assert response.status_code == 200
    assert f"L'accès est validé pour {owner[1].name}." in text(response)
    assert record_of(body["consumerKey"]).status == CredentialStatus.VALIDATED


def test_the_page_lets_its_form_lead_to_the_redirection_and_nowhere_else(client, user_client, settings, application):
    """Browsers check form-action on the redirect after the submission (Chromium does: see the browser test)."""
    for redirection, form_action in [
        ("https://tool.example:8443/done?step=2", "form-action 'self' https://tool.example:8443;"),
        ("https://tool.example;script-src *", "form-action 'self';"),
        ("myapp://done", "form-action 'self';"),
    ]:
        body = request_key(client, application.key, redirection=redirection).json()
        page = user_client.get(body["validationUrl"].removeprefix("http://testserver"))
        policy = page["Content-Security-Policy"]
        assert form_action in policy
        assert policy.replace(form_action, "form-action 'self';") == settings.CONTENT_SECURITY_POLICY


def test_refusing(user_client, owner, requested):
    response = user_client.post(requested[1], {"customer": owner[1].pk, "lifetime": "3600", "decision": "refuse"})
    assert response.status_code == 200
    assert "Vous avez refusé cet accès" in text(response)
    key = record_of(requested[0])
    assert (key.status, key.customer, key.validated_by) == (CredentialStatus.REFUSED, None, owner[0])


def test_the_link_works_once(user_client, owner, requested):
    data = {"customer": owner[1].pk, "lifetime": "3600", "decision": "validate"}
    assert user_client.post(requested[1], data).status_code == 302
    again = user_client.post(requested[1], {**data, "decision": "refuse"})
    assert again.status_code == 410
    assert "Ce lien de validation a déjà servi." in text(again)
    assert user_client.get(requested[1]).status_code == 410
    assert record_of(requested[0]).status == CredentialStatus.VALIDATED
    with pytest.raises(CredentialError):
        consumer_key_validate(consumer_key=record_of(requested[0]), user=owner[0], customer=owner[1], lifetime=None)


def test_an_expired_link_says_so(user_client, owner, requested):
    ConsumerKey.objects.update(validation_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    for response in (
        user_client.get(requested[1]),
        user_client.post(requested[1], {"customer": owner[1].pk, "lifetime": "3600", "decision": "validate"}),
    ):
        assert response.status_code == 410
        assert "Ce lien de validation a expiré" in text(response)
    assert record_of(requested[0]).status == CredentialStatus.PENDING


def test_the_link_of_a_revoked_application_has_expired(user_client, application, requested):
    api_application_revoke(application=application.record)
    assert user_client.get(requested[1]).status_code == 410


def test_an_unknown_link_is_a_404(user_client, requested):
    assert user_client.get("/api-credentials/validate/not-a-token/").status_code == 404


def test_another_customer_cannot_be_chosen(user_client, requested):
    other = MembershipFactory().customer
    response = user_client.post(requested[1], {"customer": other.pk, "lifetime": "3600", "decision": "validate"})
    assert response.status_code == 400
    key = record_of(requested[0])
    assert (key.status, key.customer) == (CredentialStatus.PENDING, None)


def test_a_used_link_is_a_404_to_other_customers(owner, requested):
    stranger = Client()
    stranger.force_login(MembershipFactory().user)
    user = Client()
    user.force_login(owner[0])
    user.post(requested[1], {"customer": owner[1].pk, "lifetime": "3600", "decision": "validate"})
    assert stranger.get(requested[1]).status_code == 404
    assert stranger.post(requested[1], {"decision": "refuse"}).status_code == 404
    assert record_of(requested[0]).status == CredentialStatus.VALIDATED


def test_the_validation_needs_the_csrf_token(owner, requested):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner[0])
    data = {"customer": owner[1].pk, "lifetime": "3600", "decision": "validate"}
    assert client.post(requested[1], data).status_code == 403
    assert record_of(requested[0]).status == CredentialStatus.PENDING
    page = client.get(requested[1])
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post(requested[1], {**data, "csrfmiddlewaretoken": token}).status_code == 302
    assert record_of(requested[0]).status == CredentialStatus.VALIDATED


def test_a_user_without_customer_can_only_refuse(requested):
    client = Client()
    client.force_login(UserFactory())
    page = client.get(requested[1])
    assert "n’appartient à aucun compte client" in text(page)
    assert client.post(requested[1], {"lifetime": "3600", "decision": "validate"}).status_code == 400
    assert record_of(requested[0]).status == CredentialStatus.PENDING
    refused = client.post(requested[1], {"lifetime": "3600", "decision": "refuse"})
    assert refused.status_code == 200
    assert record_of(requested[0]).status == CredentialStatus.REFUSED
