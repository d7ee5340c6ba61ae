"""The error-report recipient form and the SMTP credentials page."""

import pytest
from django.conf import settings

from hosting.selectors import hosting_by_smtp_credentials
from mailqueue.models import ActorKind, Event, MailService
from tests.portal.conftest import snapshot
from tests.portal.pages import dom, facts, flash_messages, text

pytestmark = pytest.mark.django_db

RECIPIENT_TEXT = (
    "Indiquez l’adresse e-mail sur laquelle vous souhaitez recevoir les rapports d’erreurs. Si des erreurs ont "
    "lieu lors de l’envoi d’e-mails à partir de votre hébergement WEB, vous recevrez un rapport le lendemain."
)


def recipient_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/recipient/"


def smtp_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/smtp/"


# --- recipient ---------------------------------------------------------------------------------------


def test_the_recipient_page_explains_and_shows_the_current_address(tenant):
    MailService.objects.filter(hosting=tenant.hosting).update(report_recipient="ops@shop.example")

    response = tenant.client.get(recipient_url(tenant.hosting))

    assert response.status_code == 200
    page = dom(response)
    assert page.find("h1").text == "Changer le destinataire"
    assert RECIPIENT_TEXT in text(response)
    field = page.find("input", name="email")
    assert field.attrs["value"] == "ops@shop.example"
    assert page.find("label", for_=field.attrs["id"]).text == "Adresse e-mail"
    buttons = [button.text for button in page.find_all("button", type="submit")]
    assert buttons[-2:] == ["Valider", "Revenir au destinataire par défaut"]
    crumbs = page.find("p", class_="crumbs").text
    assert tenant.hosting.service_name in crumbs and "Scripts e-mail" in crumbs


def test_the_recipient_dialog_of_the_emails_page_posts_to_the_form(tenant):
    page = dom(tenant.client.get(f"/hostings/{tenant.hosting.service_name}/emails/"))

    dialog = page.find("dialog", id="recipient-dialog")
    assert RECIPIENT_TEXT in dialog.text
    form = dialog.find("form")
    assert form.attrs["action"] == recipient_url(tenant.hosting)
    field = form.find("input", name="email")
    assert form.find("label", for_=field.attrs["id"]).text == "Adresse e-mail"


def test_a_valid_recipient_is_saved_and_shown(tenant):
    before = snapshot(tenant.hosting)

    response = tenant.client.post(recipient_url(tenant.hosting), {"email": "  errors@shop.example "}, follow=True)

    assert response.redirect_chain == [(f"/hostings/{tenant.hosting.service_name}/emails/", 302)]
    assert flash_messages(response) == ["La requête a été envoyée avec succès."]
    assert facts(response)["Rapport d'erreurs à\u00a0:"].startswith("errors@shop.example ")
    assert MailService.objects.get(hosting=tenant.hosting).report_recipient == "errors@shop.example"
    event = Event.objects.filter(hosting=tenant.hosting).exclude(id__in=before["events"]).get()
    assert (event.action, event.actor_kind, event.actor_user) == ("change_recipient", ActorKind.CUSTOMER, tenant.user)


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("", "Vous devez saisir une adresse e-mail."),
        ("   ", "Vous devez saisir une adresse e-mail."),
        ("not-an-address", "L'adresse e-mail n'est pas valide."),
        ("two@example.org, three@example.org", "L'adresse e-mail n'est pas valide."),
        ("a@b@example.org", "L'adresse e-mail n'est pas valide."),
        ("x" * 250 + "@example.org", "L’adresse e-mail ne doit pas dépasser 254 caractères."),
    ],
)
def test_a_bad_recipient_is_refused_with_a_clear_message(tenant, email, error):
    MailService.objects.filter(hosting=tenant.hosting).update(report_recipient="kept@shop.example")
    before = snapshot(tenant.hosting)

    response = tenant.client.post(recipient_url(tenant.hosting), {"email": email})

    assert response.status_code == 400
    assert [alert.text for alert in dom(response).find_all(role="alert")] == [error]
    assert dom(response).find("input", name="email").attrs.get("value", "") == email
    field = dom(response).find("input", name="email")
    assert dom(response).find(id=field.attrs["aria-describedby"]).text == error
    assert snapshot(tenant.hosting) == before


def test_a_post_without_the_field_is_refused(tenant):
    before = snapshot(tenant.hosting)

    response = tenant.client.post(recipient_url(tenant.hosting), {})

    assert response.status_code == 400
    assert "Vous devez saisir une adresse e-mail." in text(response)
    assert snapshot(tenant.hosting) == before


# --- SMTP credentials --------------------------------------------------------------------------------


def test_the_smtp_page_shows_the_user_and_the_submission_address_but_no_password(tenant):
    response = tenant.client.get(smtp_url(tenant.hosting))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = facts(response)
    assert shown["Utilisateur"] == tenant.hosting.service_name
    assert shown["Serveur de soumission"] == settings.SMTP_INGRESS_ADDR
    assert tenant.hosting.smtp_password not in response.content.decode()
    assert "Nouveau mot de passe" not in text(response)


def test_rotating_the_smtp_password_shows_the_new_one_once(tenant):
    old_password = tenant.hosting.smtp_password
    assert hosting_by_smtp_credentials(service_name=tenant.hosting.service_name, password=old_password) is not None

    response = tenant.client.post(smtp_url(tenant.hosting))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = dom(response).find("div", class_="secret")
    assert secret.find("p").text == "Nouveau mot de passe (il ne sera plus affiché)\u00a0:"
    new_password = secret.find("code").text
    assert len(new_password) >= 24 and new_password != old_password
    name = tenant.hosting.service_name
    assert hosting_by_smtp_credentials(service_name=name, password=new_password) == tenant.hosting
    assert hosting_by_smtp_credentials(service_name=name, password=old_password) is None

    again = tenant.client.get(smtp_url(tenant.hosting))
    assert new_password not in again.content.decode()
    assert dom(again).find("div", class_="secret") is None


def test_each_rotation_invalidates_the_previous_password(tenant):
    first = dom(tenant.client.post(smtp_url(tenant.hosting))).find("div", class_="secret").find("code").text
    second = dom(tenant.client.post(smtp_url(tenant.hosting))).find("div", class_="secret").find("code").text

    assert first != second
    name = tenant.hosting.service_name
    assert hosting_by_smtp_credentials(service_name=name, password=first) is None
    assert hosting_by_smtp_credentials(service_name=name, password=second) == tenant.hosting
