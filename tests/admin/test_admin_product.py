"""The admin reads as the product (SPEC §13): its brand, titles and counts in French and English,
readable recipients and dates, the effective report recipient, confirmations with a reason from
the list and from a hosting's page, links to a hosting's lists, and resending an error report."""

import datetime
import re

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.utils import timezone, translation

from mailqueue.blocking import mail_service_block
from mailqueue.models import Action, Event, MailService, RecipientStatus
from mailqueue.state import Actor
from reports.models import DigestStatus, ErrorDigest
from tests.admin.conftest import (
    HOSTINGS_URL,
    hidden_inputs,
    page_text,
    run_action,
    run_confirmed_action,
    shown_messages,
)
from tests.admin.test_admin_roles import cells
from tests.factories import (
    CustomerFactory,
    DeliveryErrorFactory,
    ErrorDigestFactory,
    EventFactory,
    HostingFactory,
    MessageFactory,
)

pytestmark = pytest.mark.django_db


def in_english(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def title_of(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", page_text(response), re.S).group(1).strip()


def hosting_page(client, hosting):
    return client.get(f"{HOSTINGS_URL}{hosting.pk}/change/")


def links_of(response) -> dict[str, str]:
    found = re.findall(r'<a [^>]*?href="([^"]+)"[^>]*>([^<]+)</a>', page_text(response))
    return {text.strip(): href for href, text in found}


# --- brand, titles, counts ----------------------------------------------------------------------


def test_the_admin_is_branded_as_the_product_in_french_and_english(operator_client):
    french = page_text(operator_client.get("/admin/"))
    assert "Hébergement web — Espace opérateurs" in french
    assert "<title>Clients, hébergements et leurs e-mails | Espace opérateurs</title>" in french
    assert "Django" not in french

    english = page_text(in_english(operator_client).get("/admin/"))
    assert "Web hosting — Operators&#x27; area" in english or "Web hosting — Operators' area" in english
    assert "Django" not in english


def test_a_hostings_page_is_titled_by_its_kind_and_name(operator_client):
    hosting = HostingFactory(service_name="example.org")

    assert title_of(hosting_page(operator_client, hosting)) == "Hébergement example.org"
    assert title_of(operator_client.get(HOSTINGS_URL)) == "Hébergements"
    assert "Affichage de" not in page_text(hosting_page(operator_client, hosting))
    assert title_of(hosting_page(in_english(operator_client), hosting)) == "Hosting example.org"


def test_the_add_page_and_button_read_as_french(superuser_client):
    assert "Ajouter un hébergement" in page_text(superuser_client.get(HOSTINGS_URL))
    assert title_of(superuser_client.get(f"{HOSTINGS_URL}add/")) == "Ajouter un hébergement"


def test_action_messages_say_one_hosting_or_several(operator_client):
    one, two, three = HostingFactory(), HostingFactory(), HostingFactory()

    assert shown_messages(run_confirmed_action(operator_client, "block", [one])) == ["Envoi bloqué pour 1 hébergement."]
    response = run_confirmed_action(operator_client, "block", [two, three])
    assert shown_messages(response) == ["Envoi bloqué pour 2 hébergements."]

    english = run_confirmed_action(in_english(operator_client), "unblock", [one])
    assert shown_messages(english) == ["Sending unblocked for 1 hosting."]


def test_objects_are_named_in_local_time_and_in_the_language():
    hosting = HostingFactory(service_name="example.org")
    event = EventFactory(
        hosting=hosting, action="block", created_at=datetime.datetime(2026, 11, 30, 13, 5, tzinfo=datetime.UTC)
    )
    digest = ErrorDigestFactory(hosting=hosting, day=datetime.date(2026, 11, 30), status=DigestStatus.SENT)

    with translation.override("fr"):  # TIME_ZONE Europe/Paris: 14:05
        assert str(event) == "Blocage, example.org, 30 novembre 2026 14:05"
        assert str(digest) == "Rapport d’erreurs de example.org du 30 novembre 2026 (envoyé)"
    with translation.override("en"):
        assert str(event).startswith("Block, example.org, Nov. 30, 2026, 2:05")


# --- what the hosting's page and lists show -------------------------------------------------------


def test_the_hosting_list_shows_the_hourly_limit(operator_client):
    HostingFactory(service_name="shop.example", plan="pro")

    listing = operator_client.get(HOSTINGS_URL)

    assert "Limite horaire" in page_text(listing)
    assert cells(listing, "hourly_limit") == ["200"]


def test_the_page_shows_the_effective_report_recipient_and_says_when_it_is_the_default(operator_client):
    hosting = HostingFactory(customer=CustomerFactory(contact_email="contact@acme.example"))

    text = page_text(hosting_page(operator_client, hosting))
    assert "contact@acme.example (par défaut\u00a0: l’e-mail de contact du client)" in text

    MailService.objects.filter(hosting=hosting).update(report_recipient="errors@acme.example")
    text = page_text(hosting_page(operator_client, hosting))
    assert "errors@acme.example" in text and "par défaut" not in text


def test_the_hosting_page_links_to_its_own_messages_errors_and_events(operator_client):
    hosting, other = HostingFactory(), HostingFactory()
    MessageFactory(hosting=hosting, subject="mine")
    MessageFactory(hosting=other, subject="theirs")
    DeliveryErrorFactory(hosting=hosting, recipient="gone@mine.example")
    DeliveryErrorFactory(hosting=other, recipient="gone@theirs.example")
    EventFactory(hosting=hosting, actor_label="mine-event")
    EventFactory(hosting=other, actor_label="their-event")

    links = links_of(hosting_page(operator_client, hosting))

    assert cells(operator_client.get(links["E-mails"]), "subject") == ["mine"]
    assert cells(operator_client.get(links["E-mails en erreur"]), "recipient") == ["gone@mine.example"]
    assert cells(operator_client.get(links["Événements"]), "actor_label") == ["mine-event"]
    assert links["Rapports d’erreurs"] == f"/admin/reports/errordigest/?hosting={hosting.pk}"
    assert operator_client.get(links["Rapports d’erreurs"]).status_code == 200


def test_recipients_are_shown_as_a_table_not_as_json(operator_client):
    message = MessageFactory(
        recipients=[
            {"address": "ok@example.org", "status": RecipientStatus.SENT, "code": 250, "reply": "250 2.0.0 Ok"},
            {"address": "gone@example.org", "status": RecipientStatus.FAILED, "code": 550, "reply": "550 5.1.1 no"},
        ]
    )

    text = page_text(operator_client.get(f"/admin/mailqueue/message/{message.pk}/change/"))

    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", text)
    assert ("ok@example.org", "Envoyé", "250", "250 2.0.0 Ok") in rows
    assert ("gone@example.org", "En erreur", "550", "550 5.1.1 no") in rows
    assert '"address"' not in text


# --- confirmations with a reason, from the list and from the page ---------------------------------


def test_purge_from_the_list_asks_for_a_reason_and_records_it(operator_client, operator):
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("setup"))

    page = run_action(operator_client, "purge", [hosting])
    assert 'name="reason"' in page_text(page)
    assert MailService.objects.get(hosting=hosting).state == "blocked"  # nothing yet

    without = operator_client.post(HOSTINGS_URL, {**hidden_inputs(page), "reason": ""}, follow=True)
    assert 'name="reason"' in page_text(without)  # the reason is required: the page again
    assert MailService.objects.get(hosting=hosting).state == "blocked"

    response = operator_client.post(HOSTINGS_URL, {**hidden_inputs(page), "reason": "Spam confirmé"}, follow=True)

    assert shown_messages(response) == ["Purge demandée pour 1 hébergement."]
    assert MailService.objects.get(hosting=hosting).state == "purging"
    entry = LogEntry.objects.get(object_id=str(hosting.pk), user=operator)
    assert entry.get_change_message() == "Purger les e-mails\u00a0: Spam confirmé"
    assert "Spam confirmé" in page_text(operator_client.get(f"{HOSTINGS_URL}{hosting.pk}/history/"))
    assert Event.objects.filter(hosting=hosting, action=Action.PURGE).get().detail == "Spam confirmé"


def test_the_hosting_page_offers_the_allowed_actions_and_runs_them_after_confirmation(operator_client, operator):
    hosting = HostingFactory()

    links = links_of(hosting_page(operator_client, hosting))
    assert "Bloquer l'envoi" in links or "Bloquer l’envoi" in links
    block_url = links.get("Bloquer l'envoi") or links["Bloquer l’envoi"]
    assert not any(label.startswith("Débloquer") for label in links)  # not while active
    assert not any(label.startswith("Purger") for label in links)

    confirmation = operator_client.get(block_url)
    assert 'name="comment"' in page_text(confirmation)
    assert MailService.objects.get(hosting=hosting).state == "active"  # a GET changes nothing

    response = operator_client.post(block_url, {"apply": "1", "comment": "Formulaire détourné"}, follow=True)

    assert response.redirect_chain[-1][0] == f"{HOSTINGS_URL}{hosting.pk}/change/"
    assert shown_messages(response) == ["Envoi bloqué pour 1 hébergement."]
    assert MailService.objects.get(hosting=hosting).state == "blocked"
    assert Event.objects.get(hosting=hosting, action="block").detail == "Formulaire détourné"
    after = links_of(response)
    assert any(label.startswith("Débloquer") for label in after) and any(label.startswith("Purger") for label in after)


def test_support_gets_no_button_and_cannot_post_one(support_client):
    hosting = HostingFactory()

    links = links_of(hosting_page(support_client, hosting))
    assert not any("/act/" in url or "/resend/" in url for url in links.values())
    response = support_client.post(f"{HOSTINGS_URL}{hosting.pk}/act/block/", {"apply": "1"})

    assert response.status_code == 403
    assert MailService.objects.get(hosting=hosting).state == "active"


# --- the error report, again ----------------------------------------------------------------------


def test_an_operator_resends_a_days_error_report_from_the_hosting_page(operator_client, operator):
    hosting = HostingFactory(customer=CustomerFactory(contact_email="contact@acme.example"))
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    DeliveryErrorFactory(hosting=hosting, created_at=timezone.now() - datetime.timedelta(days=1))
    ErrorDigestFactory(hosting=hosting, day=yesterday, status=DigestStatus.SENT, attempts=1)

    resend_url = links_of(hosting_page(operator_client, hosting))["Renvoyer le rapport d’erreurs"]
    form = operator_client.get(resend_url)
    assert 'name="day"' in page_text(form) and 'name="reason"' in page_text(form)
    assert mail.outbox == []

    day = yesterday.strftime("%d/%m/%Y")
    form_data = {"apply": "1", "day": day, "reason": "Le client l'a perdu"}
    response = operator_client.post(resend_url, form_data, follow=True)

    assert shown_messages(response) == ["1 rapport d’erreurs renvoyé."]
    assert [message.to for message in mail.outbox] == [["contact@acme.example"]]
    digest = ErrorDigest.objects.get(hosting=hosting, day=yesterday)
    assert (digest.status, digest.attempts) == (DigestStatus.SENT, 2)
    assert "Le client l'a perdu" in LogEntry.objects.get(object_id=str(hosting.pk), user=operator).get_change_message()


def test_an_operator_resends_the_selected_reports_from_their_list(operator_client):
    hosting = HostingFactory()
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    DeliveryErrorFactory(hosting=hosting, created_at=timezone.now() - datetime.timedelta(days=1))
    digest = ErrorDigestFactory(hosting=hosting, day=yesterday, status=DigestStatus.FAILED)
    url = "/admin/reports/errordigest/"

    page = operator_client.post(url, {"action": "resend", "_selected_action": [digest.pk], "index": "0"})
    assert 'name="reason"' in page_text(page) and mail.outbox == []
    response = operator_client.post(url, {**hidden_inputs(page), "reason": "Relais réparé"}, follow=True)

    assert shown_messages(response) == ["1 rapport d’erreurs renvoyé."]
    assert len(mail.outbox) == 1
    assert ErrorDigest.objects.get(pk=digest.pk).status == DigestStatus.SENT


def test_a_day_without_errors_sends_nothing_and_says_so(operator_client):
    hosting = HostingFactory()
    url = f"/admin/reports/errordigest/resend/{hosting.pk}/"

    day = (timezone.localdate() - datetime.timedelta(days=1)).strftime("%d/%m/%Y")
    response = operator_client.post(url, {"apply": "1", "day": day, "reason": "Essai"}, follow=True)

    assert mail.outbox == []
    assert len(shown_messages(response)) == 1 and "aucune erreur" in shown_messages(response)[0]
