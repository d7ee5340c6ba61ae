"""The "Scripts e-mail" page in a real browser (SPEC §5): headless Chromium, the live server and a
real Celery worker, as a customer would use it — with and without JavaScript, with the keyboard."""

import datetime
import re

import pytest
from django.utils import timezone

from mailqueue.models import Event, MailService, Message, MessageStatus, State
from tests.browser.conftest import CHROMIUM
from tests.factories import (
    TEST_PASSWORD,
    CustomerFactory,
    DailyCounterFactory,
    DeliveryErrorFactory,
    HostingFactory,
    MembershipFactory,
    MessageFactory,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

BLOCK_TEXT = (
    "Vous êtes sur le point de bloquer la distribution des e-mails envoyés depuis votre hébergement WEB. "
    "Aucun e-mail ne sera supprimé, ils seront mis en attente pendant 72H. Vous pourrez pendant cette "
    "période, soit débloquer l’envoi, soit le purger."
)
PURGE_TEXT = (
    "Vous êtes sur le point d’effacer l’ensemble des e-mails en attente pour votre compte. Votre compte "
    "sera ensuite automatiquement débloqué. L’opération prend entre {grace_minutes} et 10 minutes."
)
RECIPIENT_TEXT = (
    "Indiquez l’adresse e-mail sur laquelle vous souhaitez recevoir les rapports d’erreurs. Si des erreurs ont "
    "lieu lors de l’envoi d’e-mails à partir de votre hébergement WEB, vous recevrez un rapport le lendemain."
)
SUCCESS = "La requête a été envoyée avec succès."
EMAILS_URL = "/hostings/acme-shop.fr/emails/"


@pytest.fixture
def acme():
    """acme-shop.fr (its mail service active), owned by acme, of which alice is a member."""
    membership = MembershipFactory(user__username="alice", customer=CustomerFactory(slug="acme", name="ACME"))
    return HostingFactory(service_name="acme-shop.fr", customer=membership.customer)


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


def log_in(page, username: str) -> None:
    """Through the real login form, as a person would."""
    page.goto("/accounts/login/")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Mes hébergements")).to_be_visible()


def badge(page):
    return page.locator("#service .badge")


def fact(page, label: str):
    """The value shown next to a label of the service card."""
    return page.locator("#service dt", has_text=label).locator("xpath=following-sibling::dd[1]")


def service_state(hosting) -> str:
    return MailService.objects.get(hosting=hosting).state


def minutes_between(start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """Every local "HH:MM" from start to end, both included."""
    start, end = timezone.localtime(start), timezone.localtime(end)
    minute = start.replace(second=0, microsecond=0)
    shown = []
    while minute <= end:
        shown.append(minute.strftime("%H:%M"))
        minute += datetime.timedelta(minutes=1)
    return shown


def test_alice_blocks_purges_and_changes_the_recipient(
    acme, new_page, screenshot, celery_worker_live, beat_purge_watchdog, settings
):
    hosting = acme
    today = timezone.localdate()
    for days_ago in range(30):  # a month of history for the chart and the totals
        DailyCounterFactory(
            hosting=hosting,
            day=today - datetime.timedelta(days=days_ago),
            sent=20 + (days_ago * 37) % 60,
            errors=days_ago % 4,
        )
    DeliveryErrorFactory(hosting=hosting, recipient="inconnu@example.org", reply="550 5.1.1 User unknown")
    MessageFactory.create_batch(3, hosting=hosting, status=MessageStatus.QUEUED)
    settings.PURGE_GRACE_SECONDS = 3  # the worker thread reads the same settings
    page = new_page()

    # From the list to the hosting, then "Plus +" → "Scripts e-mail".
    log_in(page, "alice")
    row = page.get_by_role("row").filter(has_text="acme-shop.fr")
    expect(row.locator(".badge")).to_have_text("Actif")
    row.get_by_role("link", name="acme-shop.fr").click()
    expect(page.get_by_role("heading", name="acme-shop.fr")).to_be_visible()
    page.get_by_text("Plus +").click()
    page.get_by_role("link", name="Scripts e-mail").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "$"))
    expect(
        page.get_by_text("Cette page ne concerne que les e-mails envoyés depuis des scripts CGI/PERL/PHP.")
    ).to_be_visible()
    expect(badge(page)).to_have_text("Actif")
    sent = f"{sum(20 + (d * 37) % 60 for d in range(30)):,}".replace(",", "\u00a0")  # « 1 455 »
    expect(fact(page, "Total des e-mails envoyés\u00a0:")).to_contain_text(re.compile(f"^{sent} \\("))
    expect(fact(page, "Total des e-mails en erreur\u00a0:")).to_contain_text(
        re.compile(f"^{sum(d % 4 for d in range(30))} \\(")
    )
    expect(page.get_by_role("row").filter(has_text="inconnu@example.org")).to_contain_text("550 5.1.1 User unknown")
    expect(page.get_by_role("button", name="Purger les e-mails")).to_be_disabled()
    expect(page.get_by_text("Pour purger les e-mails, vous devez d'abord en demander le blocage.")).to_be_visible()
    screenshot(page, "emails-active")

    # Block: the dialog shows the reference text; Annuler changes nothing.
    page.get_by_role("link", name="Bloquer l'envoi").click()
    dialog = page.locator("dialog#dialog-block")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Bloquer l'envoi")
    expect(dialog.locator("p")).to_have_text(BLOCK_TEXT)
    expect(dialog.get_by_role("button", name="Valider")).to_be_visible()
    expect(dialog.get_by_role("button", name="Annuler")).to_be_visible()
    screenshot(page, "emails-confirm-block")
    dialog.get_by_role("button", name="Annuler").click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "$"))
    expect(badge(page)).to_have_text("Actif")
    assert service_state(hosting) == State.ACTIVE
    assert not Event.objects.filter(hosting=hosting).exists()

    # Valider: blocked, the three queued messages are held.
    page.get_by_role("link", name="Bloquer l'envoi").click()
    dialog.get_by_role("button", name="Valider").click()
    expect(page.locator(".messages .success")).to_have_text(SUCCESS)
    expect(badge(page)).to_have_text("Inactif")
    expect(page.locator("#service .reason")).to_be_visible()
    expect(fact(page, "E-mails en attente\u00a0:")).to_contain_text(re.compile(r"^\s*3 —"))
    assert service_state(hosting) == State.BLOCKED
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 3
    screenshot(page, "emails-blocked")

    # Purge: shown with its expected end (10 minutes after the request at the latest).
    page.get_by_role("link", name="Purger les e-mails").click()
    dialog = page.locator("dialog#dialog-purge")
    expect(dialog.locator("p")).to_have_text(PURGE_TEXT.format(grace_minutes=1))  # 3 s, in whole minutes
    requested_from = timezone.now()
    dialog.get_by_role("button", name="Valider").click()
    expect(page.locator(".messages .success")).to_have_text(SUCCESS)
    expect(badge(page)).to_have_text("Purge")
    requested_to = timezone.now()
    deadline = datetime.timedelta(minutes=10)
    expected_end = "|".join(minutes_between(requested_from + deadline, requested_to + deadline))
    expect(page.locator("#service .purge")).to_contain_text(
        re.compile(rf"Fin prévue au plus tard à ({expected_end})\.")
    )
    expect(page.get_by_role("link", name="Annuler la purge")).to_be_visible()
    screenshot(page, "emails-purging")

    # The page follows the purge by itself (polling status.json, then reloading): no reload here.
    polls = []
    page.on("requestfinished", lambda request: polls.append(request.url) if "status.json" in request.url else None)
    expect(badge(page)).to_have_text("Actif", timeout=30_000)
    assert polls, "the page never polled status.json"
    expect(page.locator(".purge")).to_have_count(0)
    expect(fact(page, "E-mails en attente\u00a0:")).to_have_text("aucun")
    assert service_state(hosting) == State.ACTIVE
    assert not Message.objects.filter(hosting=hosting).exists()

    # Change the recipient: empty, then invalid, then valid.
    page.get_by_role("link", name="Changer le destinataire").click()
    dialog = page.locator("dialog#recipient-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("p").first).to_have_text(RECIPIENT_TEXT)
    dialog.get_by_label("Adresse e-mail").fill("")
    dialog.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("alert")).to_have_text("Vous devez saisir une adresse e-mail.")
    page.get_by_label("Adresse e-mail").fill("pas-une-adresse")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("alert")).to_have_text("L'adresse e-mail n'est pas valide.")
    assert MailService.objects.get(hosting=hosting).report_recipient == ""
    page.get_by_label("Adresse e-mail").fill("alertes@acme-shop.fr")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator(".messages .success")).to_have_text(SUCCESS)
    expect(fact(page, "Rapport d'erreurs à\u00a0:")).to_contain_text("alertes@acme-shop.fr")
    assert MailService.objects.get(hosting=hosting).report_recipient == "alertes@acme-shop.fr"


def test_keyboard_reaches_the_actions_and_opens_the_dialog(acme, new_page):
    page = new_page()
    log_in(page, "alice")
    page.goto(EMAILS_URL)
    for _press in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Bloquer l'envoi":
            break
    else:
        pytest.fail("Tab never reached « Bloquer l'envoi »")

    page.keyboard.press("Enter")
    dialog = page.locator("dialog#dialog-block")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "dialog-block"
    expect(dialog.get_by_role("button", name="Annuler")).to_be_focused()  # Enter twice confirms nothing

    # Escape closes it and gives the focus back to the button that opened it; nothing changed.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.textContent.trim()") == "Bloquer l'envoi"
    assert service_state(acme) == State.ACTIVE


def test_without_javascript_actions_lead_to_a_confirmation_page(acme, new_page, screenshot):
    hosting = acme
    page = new_page(java_script_enabled=False)
    log_in(page, "alice")
    page.goto(EMAILS_URL)
    expect(badge(page)).to_have_text("Actif")
    dialogs = page.locator("dialog").all()  # there for the script, closed and hidden without it
    assert dialogs
    for dialog in dialogs:
        expect(dialog).to_be_hidden()

    page.get_by_role("link", name="Bloquer l'envoi").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "block/$"))
    expect(page.get_by_role("heading", name="Bloquer l'envoi")).to_be_visible()
    expect(page.get_by_text(BLOCK_TEXT)).to_be_visible()
    expect(page.get_by_role("button", name="Valider")).to_be_visible()
    screenshot(page, "emails-confirm-block-nojs")
    page.get_by_role("link", name="Annuler").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "$"))
    expect(badge(page)).to_have_text("Actif")
    assert service_state(hosting) == State.ACTIVE

    page.get_by_role("link", name="Bloquer l'envoi").click()
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "$"))
    expect(page.locator(".messages .success")).to_have_text(SUCCESS)
    expect(badge(page)).to_have_text("Inactif")
    assert service_state(hosting) == State.BLOCKED

    page.get_by_role("link", name="Changer le destinataire").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "recipient/$"))
    expect(page.get_by_text(RECIPIENT_TEXT)).to_be_visible()
    page.get_by_label("Adresse e-mail").fill("")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("alert")).to_have_text("Vous devez saisir une adresse e-mail.")


def test_the_language_switcher_turns_the_page_to_english(acme, new_page):
    page = new_page()
    log_in(page, "alice")
    page.goto(EMAILS_URL)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.get_by_label("Langue").select_option("en")
    page.get_by_role("button", name="Changer").click()
    expect(page).to_have_url(re.compile(re.escape(EMAILS_URL) + "$"))  # back where we were
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # the choice is remembered


def test_bob_cannot_open_another_customers_hosting(acme, new_page):
    hosting = acme
    globex = MembershipFactory(user__username="bob", customer=CustomerFactory(slug="globex")).customer
    HostingFactory(service_name="globex.net", customer=globex)
    page = new_page()
    log_in(page, "bob")
    expect(page.get_by_role("link", name="globex.net")).to_be_visible()
    expect(page.get_by_text("acme-shop.fr")).to_have_count(0)

    for url in ("/hostings/acme-shop.fr/", EMAILS_URL, EMAILS_URL + "status.json", EMAILS_URL + "block/"):
        response = page.goto(url)
        assert response.status == 404, url
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    response = page.request.post(EMAILS_URL + "block/", headers={"X-CSRFToken": csrf})
    assert response.status == 404
    assert service_state(hosting) == State.ACTIVE
    assert not Event.objects.filter(hosting=hosting).exists()
