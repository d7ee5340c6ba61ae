"""Block, unblock, purge and cancel purge from the Scripts e-mail page: confirmation, effect, refusal."""

import pytest
from django.utils import timezone

from mailqueue.blocking import mail_service_block
from mailqueue.models import ActorKind, Event, MailService, Message, MessageStatus
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.factories import MessageFactory, UserFactory
from tests.portal.conftest import snapshot
from tests.portal.pages import dom, flash_messages, text

pytestmark = pytest.mark.django_db

SUCCESS = "La requête a été envoyée avec succès."
CONFIRMATIONS = {
    "block": (
        "Bloquer l'envoi",
        "Vous êtes sur le point de bloquer la distribution des e-mails envoyés depuis votre hébergement WEB. "
        "Aucun e-mail ne sera supprimé, ils seront mis en attente pendant 72H. Vous pourrez pendant cette "
        "période, soit débloquer l’envoi, soit le purger.",
    ),
    "unblock": (
        "Débloquer l'envoi",
        "Vous êtes sur le point de débloquer l’envoi de vos e-mails. La distribution reprendra dès l’envoi du "
        "prochain e-mail. Les mails qui étaient bloqués seront remis en distribution.",
    ),
    "purge": (
        "Purger les e-mails",
        "Vous êtes sur le point d’effacer l’ensemble des e-mails en attente pour votre compte. Votre compte "
        "sera ensuite automatiquement débloqué. L’opération prend entre 5 et 10 minutes.",
    ),
    "cancel-purge": (
        "Annuler la purge",
        "Vous êtes sur le point d’annuler la purge. Les e-mails en attente seront conservés et l’envoi restera bloqué.",
    ),
}
PURGE_NEEDS_BLOCK = "Pour purger les e-mails, vous devez d'abord en demander le blocage."
SPAM_REFUSAL = "Un blocage pour envoi abusif se lève en purgeant les e-mails en attente."
STARTED_REFUSAL = "La suppression des e-mails a déjà commencé : la purge ne peut plus être annulée."


def emails_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/"


def action_url(hosting, slug: str) -> str:
    return f"/hostings/{hosting.service_name}/emails/{slug}/"


def put_in_state(tenant, state: str) -> None:
    """Bring the tenant's service to `state` through the services, as real use would."""
    hosting, customer = tenant.hosting, Actor.customer(tenant.user)
    if state == "active":
        return
    if state == "spam":
        mail_service_block(hosting=hosting, actor=Actor.operator(UserFactory()), reason="spam")
        return
    mail_service_block(hosting=hosting, actor=customer)
    if state in ("purging", "purge-started"):
        mail_service_purge_request(hosting=hosting, actor=customer)
    if state == "purge-started":
        MailService.objects.filter(hosting=hosting).update(purge_started_at=timezone.now(), purge_deleted=3)


def buttons(response) -> dict[str, dict]:
    """The action buttons of the page: title → {enabled, href, hint}."""
    found = {}
    actions = dom(response).find("section", id="service").find("div", class_="actions")
    for element in actions.iter():
        if element.tag == "a" and "button" in element.attrs.get("class", "").split():
            found[element.text] = {"enabled": True, "href": element.attrs["href"], "hint": None}
        elif element.tag == "button":
            hint = dom(response).find(id=element.attrs.get("aria-describedby", "-"))
            found[element.text] = {
                "enabled": "disabled" not in element.attrs,
                "href": None,
                "hint": hint.text if hint else None,
            }
    return found


# --- which buttons each state offers (SPEC §5 per §3) ------------------------------------------------


def test_an_active_service_offers_block_and_a_disabled_purge(tenant):
    shown = buttons(tenant.client.get(emails_url(tenant.hosting)))

    assert shown == {
        "Bloquer l'envoi": {"enabled": True, "href": action_url(tenant.hosting, "block"), "hint": None},
        "Purger les e-mails": {"enabled": False, "href": None, "hint": PURGE_NEEDS_BLOCK},
    }


def test_a_blocked_service_offers_unblock_and_purge(tenant):
    put_in_state(tenant, "blocked")

    shown = buttons(tenant.client.get(emails_url(tenant.hosting)))

    assert shown == {
        "Débloquer l'envoi": {"enabled": True, "href": action_url(tenant.hosting, "unblock"), "hint": None},
        "Purger les e-mails": {"enabled": True, "href": action_url(tenant.hosting, "purge"), "hint": None},
    }


def test_a_spam_block_is_lifted_by_a_purge_not_by_unblocking(tenant):
    put_in_state(tenant, "spam")

    shown = buttons(tenant.client.get(emails_url(tenant.hosting)))

    # SPEC §9.1: the purge is mandatory, and the customer may do it.
    assert shown == {
        "Débloquer l'envoi": {"enabled": False, "href": None, "hint": SPAM_REFUSAL},
        "Purger les e-mails": {"enabled": True, "href": action_url(tenant.hosting, "purge"), "hint": None},
    }


def test_a_purge_offers_its_cancellation_until_deletion_starts(tenant):
    put_in_state(tenant, "purging")
    assert buttons(tenant.client.get(emails_url(tenant.hosting))) == {
        "Annuler la purge": {"enabled": True, "href": action_url(tenant.hosting, "cancel-purge"), "hint": None},
    }

    MailService.objects.filter(hosting=tenant.hosting).update(purge_started_at=timezone.now())

    assert buttons(tenant.client.get(emails_url(tenant.hosting))) == {
        "Annuler la purge": {"enabled": False, "href": None, "hint": STARTED_REFUSAL},
    }


def test_each_enabled_button_has_its_confirmation_dialog(tenant):
    put_in_state(tenant, "blocked")

    page = dom(tenant.client.get(emails_url(tenant.hosting)))

    for slug in ("unblock", "purge"):
        link = page.find("a", href=action_url(tenant.hosting, slug))
        dialog = page.find("dialog", id=link.attrs["data-dialog"])
        title, confirmation = CONFIRMATIONS[slug]
        assert dialog.find("h2").text == title
        assert confirmation in dialog.text
        form = dialog.find("form")
        assert form.attrs["method"] == "post" and form.attrs["action"] == action_url(tenant.hosting, slug)
        assert form.find("input", name="csrfmiddlewaretoken") is not None
        assert [button.text for button in form.find_all("button")] == ["Valider", "Annuler"]
    assert page.find("dialog", id="dialog-block") is None


# --- confirmation pages (GET) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "state"), [("block", "active"), ("unblock", "blocked"), ("purge", "blocked"), ("cancel-purge", "purging")]
)
def test_the_confirmation_page_shows_the_reference_text(tenant, slug, state):
    put_in_state(tenant, state)
    before = snapshot(tenant.hosting)

    response = tenant.client.get(action_url(tenant.hosting, slug))

    assert response.status_code == 200
    title, confirmation = CONFIRMATIONS[slug]
    page = dom(response)
    assert page.find("h1").text == title
    assert confirmation in text(response)
    form = next(f for f in page.find_all("form") if f.attrs.get("method") == "post" and not f.attrs.get("action"))
    # « Valider / Annuler » but for the cancellation of a purge, whose buttons say what they do.
    confirm, dismiss = ("Annuler la purge", "Continuer la purge") if slug == "cancel-purge" else ("Valider", "Annuler")
    assert form.find("button", type="submit").text == confirm
    assert form.find("a", href=emails_url(tenant.hosting)).text == dismiss
    assert snapshot(tenant.hosting) == before


@pytest.mark.parametrize(
    ("slug", "state", "refusal"),
    [
        ("purge", "active", PURGE_NEEDS_BLOCK),
        ("unblock", "spam", SPAM_REFUSAL),
        ("cancel-purge", "purge-started", STARTED_REFUSAL),
        ("block", "blocked", "L'envoi des e-mails est déjà bloqué."),
    ],
)
def test_the_confirmation_page_of_an_impossible_action_says_why(tenant, slug, state, refusal):
    put_in_state(tenant, state)

    response = tenant.client.get(action_url(tenant.hosting, slug))

    assert dom(response).find(role="alert").text == refusal
    assert all(button.text != "Valider" for button in dom(response).find_all("button"))


@pytest.mark.parametrize("slug", ["block", "unblock", "purge", "cancel-purge"])
@pytest.mark.parametrize("state", ["active", "blocked", "spam", "purging", "purge-started"])
def test_a_get_on_an_action_url_never_changes_anything(tenant, slug, state):
    put_in_state(tenant, state)
    before = snapshot(tenant.hosting)

    response = tenant.client.get(action_url(tenant.hosting, slug))

    assert response.status_code == 200
    assert snapshot(tenant.hosting) == before


def test_an_unknown_action_is_a_404(tenant):
    before = snapshot(tenant.hosting)

    assert tenant.client.get(action_url(tenant.hosting, "delete-everything")).status_code == 404
    assert tenant.client.post(action_url(tenant.hosting, "delete-everything")).status_code == 404
    assert snapshot(tenant.hosting) == before


# --- doing them (POST) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "state", "after", "reason"),
    [
        ("block", "active", "blocked", "customer"),
        ("unblock", "blocked", "active", ""),
        ("purge", "blocked", "purging", "customer"),
        ("cancel-purge", "purging", "blocked", "customer"),
    ],
)
def test_an_allowed_action_is_done_and_recorded(tenant, slug, state, after, reason):
    put_in_state(tenant, state)
    before = snapshot(tenant.hosting)

    response = tenant.client.post(action_url(tenant.hosting, slug), follow=True)

    assert response.redirect_chain == [(emails_url(tenant.hosting), 302)]
    assert flash_messages(response) == [SUCCESS]
    service = MailService.objects.get(hosting=tenant.hosting)
    assert (service.state, service.block_reason) == (after, reason)
    new_events = Event.objects.filter(hosting=tenant.hosting).exclude(id__in=before["events"])
    assert new_events.count() == 1
    event = new_events.get()
    assert (event.action, event.from_state, event.to_state) == (slug.replace("-", "_"), before["state"], after)
    assert (event.actor_kind, event.actor_user) == (ActorKind.CUSTOMER, tenant.user)
    label = {"active": "Actif", "blocked": "Inactif", "purging": "Purge"}[after]
    assert dom(response).find("span", class_=f"badge-{after}").text == label


def test_blocking_holds_the_queued_mail_and_unblocking_releases_it(tenant):
    queued = MessageFactory.create_batch(3, hosting=tenant.hosting, status=MessageStatus.QUEUED)

    tenant.client.post(action_url(tenant.hosting, "block"))
    statuses = set(Message.objects.filter(id__in=[m.id for m in queued]).values_list("status"))
    assert statuses == {(MessageStatus.HELD,)}
    page = tenant.client.get(emails_url(tenant.hosting))
    assert "3 — le plus ancien reçu le" in text(page)

    tenant.client.post(action_url(tenant.hosting, "unblock"))
    statuses = set(Message.objects.filter(id__in=[m.id for m in queued]).values_list("status"))
    assert statuses == {(MessageStatus.QUEUED,)}


@pytest.mark.parametrize(
    ("slug", "state", "refusal"),
    [
        ("unblock", "spam", SPAM_REFUSAL),
        ("purge", "active", PURGE_NEEDS_BLOCK),
        ("cancel-purge", "purge-started", STARTED_REFUSAL),
        ("block", "blocked", "L'envoi des e-mails est déjà bloqué."),
        ("unblock", "active", "L'envoi des e-mails n'est pas bloqué."),
        ("cancel-purge", "blocked", "Aucune purge n'est en cours."),
        ("purge", "purging", "Une purge est déjà en cours."),
    ],
)
def test_a_refused_action_shows_why_and_changes_nothing(tenant, slug, state, refusal):
    put_in_state(tenant, state)
    held = MessageFactory(hosting=tenant.hosting, status=MessageStatus.HELD)
    before = snapshot(tenant.hosting)

    response = tenant.client.post(action_url(tenant.hosting, slug), follow=True)

    assert response.redirect_chain == [(emails_url(tenant.hosting), 302)]
    assert flash_messages(response) == [refusal]
    assert SUCCESS not in text(response)
    assert snapshot(tenant.hosting) == before
    held.refresh_from_db()
    assert held.status == MessageStatus.HELD
