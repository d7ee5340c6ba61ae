"""Admin actions on hostings (SPEC §6), submitted as an operator's browser does.

Each action goes through the changelist's action form; the operator sees a message per
refused hosting, the allowed ones change, and every change is an Event in the operator's name.
"""

import re

import pytest
from django.core import mail

from mailqueue import dispatch, tasks
from mailqueue.blocking import mail_service_block
from mailqueue.models import Event, MailService, MessageStatus
from mailqueue.purge import mail_service_purge_request, mail_service_purge_start
from mailqueue.state import Actor
from tests.admin.conftest import (
    page_text,
    run_action,
    run_confirmed_action,
    shown_messages,
    submit_intermediate_form,
)
from tests.factories import HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db

SETUP = Actor.api("setup")  # puts hostings in their starting state, not what is under test


def hosting_in(state: str, *, spam: bool = False):
    hosting = HostingFactory()
    if state in ("blocked", "purging"):
        if spam:
            mail_service_block(hosting=hosting, actor=Actor.system("setup"), reason="spam")
        else:
            mail_service_block(hosting=hosting, actor=SETUP)
    if state == "purging":
        mail_service_purge_request(hosting=hosting, actor=SETUP)
    return hosting


def service(hosting) -> MailService:
    return MailService.objects.get(hosting=hosting)


def operator_events(hosting, operator):
    return list(Event.objects.filter(hosting=hosting, actor_kind="operator", actor_user=operator))


def assert_one_operator_event(hosting, operator, action, **expected):
    events = list(Event.objects.filter(hosting=hosting).exclude(actor_label="setup").exclude(actor_kind="system"))
    assert len(events) == 1, events
    event = events[0]
    assert (event.action, event.actor_kind, event.actor_user, event.actor_label) == (
        action,
        "operator",
        operator,
        "olivia",
    )
    for field, value in expected.items():
        assert getattr(event, field) == value, field


# --- each action, one hosting -----------------------------------------------------------------


def test_block_holds_the_queue_and_records_the_operator(operator_client, operator):
    hosting = hosting_in("active")
    queued = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)

    response = run_confirmed_action(operator_client, "block", [hosting])

    assert response.status_code == 200
    assert shown_messages(response) == ["Envoi bloqué pour 1 hébergement."]
    assert (service(hosting).state, service(hosting).block_reason) == ("blocked", "operator")
    queued.refresh_from_db()
    assert queued.status == MessageStatus.HELD
    assert_one_operator_event(hosting, operator, "block", from_state="active", to_state="blocked", message_count=1)


def test_block_spam_sets_the_spam_reason(operator_client, operator):
    hosting = hosting_in("active")

    response = run_confirmed_action(operator_client, "block_spam", [hosting])

    assert shown_messages(response) == ["Envoi bloqué pour spam pour 1 hébergement."]
    assert (service(hosting).state, service(hosting).block_reason) == ("blocked", "spam")
    assert_one_operator_event(hosting, operator, "block", reason="spam")


def test_unblock_releases_held_messages_even_for_spam(operator_client, operator):
    hosting = hosting_in("blocked", spam=True)
    held = MessageFactory(hosting=hosting, status=MessageStatus.HELD)

    response = run_confirmed_action(operator_client, "unblock", [hosting])

    assert shown_messages(response) == ["Envoi débloqué pour 1 hébergement."]
    assert (service(hosting).state, service(hosting).block_reason) == ("active", "")
    held.refresh_from_db()
    assert held.status == MessageStatus.QUEUED
    assert_one_operator_event(hosting, operator, "unblock", from_state="blocked", to_state="active", message_count=1)


def test_purge_schedules_the_deletion(operator_client, operator):
    hosting = hosting_in("blocked")
    held = MessageFactory(hosting=hosting, status=MessageStatus.HELD)

    response = run_confirmed_action(operator_client, "purge", [hosting], reason="Spam confirmé")

    assert shown_messages(response) == ["Purge demandée pour 1 hébergement."]
    assert service(hosting).state == "purging"
    assert service(hosting).purge_due_at is not None
    held.refresh_from_db()  # deleted by the worker after the grace delay, not by the request
    assert held.status == MessageStatus.HELD
    assert_one_operator_event(hosting, operator, "purge", from_state="blocked", to_state="purging")


def test_cancel_purge_returns_to_blocked(operator_client, operator):
    hosting = hosting_in("purging")

    response = run_confirmed_action(operator_client, "cancel_purge", [hosting], reason="Demande du client")

    assert shown_messages(response) == ["Purge annulée pour 1 hébergement."]
    assert (service(hosting).state, service(hosting).purge_due_at) == ("blocked", None)
    assert_one_operator_event(hosting, operator, "cancel_purge", from_state="purging", to_state="blocked")


# --- actions with an intermediate form -------------------------------------------------------------


def test_change_recipient_asks_then_applies_a_valid_address(operator_client, operator):
    first, second = hosting_in("active"), hosting_in("blocked")

    form_page = run_action(operator_client, "change_recipient", [first, second])

    assert form_page.status_code == 200
    text = page_text(form_page)
    assert "Changer le destinataire des rapports" in text
    assert first.service_name in text and second.service_name in text
    assert 'name="email"' in text
    assert service(first).report_recipient == ""  # nothing changes before the form is submitted
    assert not Event.objects.filter(action="change_recipient").exists()

    response = submit_intermediate_form(operator_client, form_page, email="reports@client.example")

    assert shown_messages(response) == ["2 hébergements modifiés."]
    assert service(first).report_recipient == service(second).report_recipient == "reports@client.example"
    assert service(second).state == "blocked"  # the recipient changes in any state
    assert_one_operator_event(first, operator, "change_recipient", detail="- → reports@client.example")
    assert_one_operator_event(second, operator, "change_recipient")


def test_change_recipient_refuses_an_invalid_address(operator_client):
    hosting = hosting_in("active")
    form_page = run_action(operator_client, "change_recipient", [hosting])

    response = submit_intermediate_form(operator_client, form_page, email="not-an-address")

    assert response.status_code == 200
    # The form again, with Django's error (its French wording depends on the installed catalogues).
    error = re.search(r'<ul class="errorlist" id="id_email_error"><li>(.*?)</li>', page_text(response))
    assert error and re.fullmatch(r"Saisissez une adresse (e-mail|de courriel) valide\.", error.group(1))
    assert shown_messages(response) == []
    assert service(hosting).report_recipient == ""
    assert not Event.objects.filter(hosting=hosting, action="change_recipient").exists()


def test_set_limit_overrides_then_returns_to_the_plan(operator_client, operator):
    hosting = hosting_in("active")  # plan perso: 100 an hour

    form_page = run_action(operator_client, "set_limit", [hosting])
    assert "Imposer une limite horaire" in page_text(form_page)
    assert 'name="limit"' in page_text(form_page)
    response = submit_intermediate_form(operator_client, form_page, limit="500")

    assert shown_messages(response) == ["1 hébergement modifié."]
    assert service(hosting).hourly_limit_override == 500
    assert service(hosting).hourly_limit == 500
    assert_one_operator_event(hosting, operator, "set_limit", detail="- → 500")

    response = submit_intermediate_form(operator_client, run_action(operator_client, "set_limit", [hosting]), limit="")

    assert shown_messages(response) == ["1 hébergement modifié."]
    assert service(hosting).hourly_limit_override is None
    assert service(hosting).hourly_limit == 100
    assert Event.objects.filter(hosting=hosting, action="set_limit", detail="500 → -").count() == 1


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("abc", "Saisissez un nombre entier."),
        ("0", "Assurez-vous que cette valeur est supérieure ou égale à 1."),
        ("1000001", "Assurez-vous que cette valeur est inférieure ou égale à 1000000."),
    ],
)
def test_set_limit_refuses_an_invalid_value(operator_client, value, error):
    hosting = hosting_in("active")
    form_page = run_action(operator_client, "set_limit", [hosting])

    response = submit_intermediate_form(operator_client, form_page, limit=value)

    text = page_text(response).replace("\u202f", "").replace("\xa0", "")  # localized thousands separators
    assert error in text
    assert service(hosting).hourly_limit_override is None
    assert not Event.objects.filter(hosting=hosting, action="set_limit").exists()


# --- bulk: allowed ones change, refused ones are reported one by one ------------------------------


def test_bulk_block_reports_each_refusal_and_changes_the_others(operator_client, operator):
    active_a, active_b = hosting_in("active"), hosting_in("active")
    blocked, purging = hosting_in("blocked"), hosting_in("purging")

    response = run_confirmed_action(operator_client, "block", [active_a, blocked, active_b, purging])

    assert sorted(shown_messages(response)) == sorted(
        [
            f"Hébergement {blocked.service_name} : L'envoi des e-mails est déjà bloqué.",
            f"Hébergement {purging.service_name} : Une purge est en cours : l'envoi est déjà bloqué.",
            "Envoi bloqué pour 2 hébergements.",
        ]
    )
    assert service(active_a).state == service(active_b).state == "blocked"
    assert (service(blocked).state, service(blocked).block_reason) == ("blocked", "customer")
    assert service(purging).state == "purging"
    assert len(operator_events(active_a, operator)) == len(operator_events(active_b, operator)) == 1
    assert operator_events(blocked, operator) == operator_events(purging, operator) == []


def test_bulk_unblock_refuses_active_and_purging(operator_client, operator):
    blocked, active, purging = hosting_in("blocked"), hosting_in("active"), hosting_in("purging")

    response = run_confirmed_action(operator_client, "unblock", [blocked, active, purging])

    assert sorted(shown_messages(response)) == sorted(
        [
            f"Hébergement {active.service_name} : L'envoi des e-mails n'est pas bloqué.",
            f"Hébergement {purging.service_name} : Une purge est en cours : annulez-la avant de débloquer l'envoi.",
            "Envoi débloqué pour 1 hébergement.",
        ]
    )
    assert [service(h).state for h in (blocked, active, purging)] == ["active", "active", "purging"]
    assert operator_events(active, operator) == operator_events(purging, operator) == []


def test_bulk_purge_refuses_active_hostings(operator_client, operator):
    blocked, active = hosting_in("blocked"), hosting_in("active")

    response = run_confirmed_action(operator_client, "purge", [blocked, active], reason="Nettoyage")

    assert sorted(shown_messages(response)) == sorted(
        [
            f"Hébergement {active.service_name} : Pour purger les e-mails, vous devez d'abord en demander le blocage.",
            "Purge demandée pour 1 hébergement.",
        ]
    )
    assert (service(blocked).state, service(active).state) == ("purging", "active")
    assert operator_events(active, operator) == []


def test_bulk_cancel_purge_refuses_a_started_deletion(operator_client, operator, settings):
    settings.PURGE_GRACE_SECONDS = 0
    pending, started, blocked = hosting_in("purging"), hosting_in("purging"), hosting_in("blocked")
    assert mail_service_purge_start(hosting=started) is not None

    response = run_confirmed_action(operator_client, "cancel_purge", [pending, started, blocked], reason="Erreur")

    assert sorted(shown_messages(response)) == sorted(
        [
            f"Hébergement {started.service_name} : La suppression des e-mails a déjà commencé : "
            "la purge ne peut plus être annulée.",
            f"Hébergement {blocked.service_name} : Aucune purge n'est en cours.",
            "Purge annulée pour 1 hébergement.",
        ]
    )
    assert [service(h).state for h in (pending, started, blocked)] == ["blocked", "purging", "blocked"]
    assert operator_events(started, operator) == operator_events(blocked, operator) == []


def test_bulk_where_everything_is_refused_reports_no_success(operator_client):
    active = hosting_in("active")

    response = run_confirmed_action(operator_client, "cancel_purge", [active], reason="Erreur")

    assert shown_messages(response) == [f"Hébergement {active.service_name} : Aucune purge n'est en cours."]
    assert service(active).state == "active"


def test_an_operators_block_asks_for_a_comment_that_the_customer_is_told(
    operator_client, operator, monkeypatch, django_capture_on_commit_callbacks
):
    # The notice task runs in this process when the block commits (no worker here).
    monkeypatch.setattr(
        dispatch, "task_send", lambda name, *args, **kwargs: getattr(tasks, name.rsplit(".")[-1])(*args)
    )
    hosting = hosting_in("active")

    page = run_action(operator_client, "block", [hosting])
    assert service(hosting).state == "active"  # only the confirmation page so far
    assert hosting.service_name in page_text(page)

    comment = "Formulaire de contact détourné : corrigez-le avant de débloquer."
    with django_capture_on_commit_callbacks(execute=True):
        response = submit_intermediate_form(operator_client, page, comment=comment)

    assert shown_messages(response) == ["Envoi bloqué pour 1 hébergement."]
    assert Event.objects.get(hosting=hosting, action="block").detail == comment
    assert [notice.to for notice in mail.outbox] == [[service(hosting).effective_report_recipient]]
    assert comment in mail.outbox[0].body
