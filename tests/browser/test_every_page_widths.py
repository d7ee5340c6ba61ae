"""Every portal page in headless Chromium on a 360 px phone and a 1,366 px laptop (SPEC §13): the
page never scrolls sideways (only a wide table may, inside its card), the controls a customer came
for are on the screen, and the pictures of docs/screenshots/ are taken from these pages."""

import datetime
import os

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from api.models import ApiApplication
from api.services import api_application_create, api_credentials_create, consumer_key_request
from mailqueue.blocking import mail_service_auto_block, mail_service_block
from mailqueue.models import BlockReason, MessageStatus, RecipientStatus, Suppression
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.browser.conftest import CHROMIUM, SCREENSHOTS
from tests.browser.test_scripts_email import expect, log_in
from tests.factories import (
    CustomerFactory,
    DailyCounterFactory,
    DeliveryErrorFactory,
    EventFactory,
    HostingFactory,
    MembershipFactory,
    MessageFactory,
    WebhookAttemptFactory,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

ALL_SHOTS = os.environ.get("EVERY_PAGE_SCREENSHOTS")  # a folder: a picture of every page, to look at
PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 768}
WIDTHS = {"phone": PHONE, "laptop": LAPTOP}
LONG_ADDRESS = "a-rather-long-mailbox-name.with.dots+newsletter-2025@sub-domain.example-provider.example"
LONG_REPLY = (
    "550 5.1.1 <a-rather-long-mailbox-name.with.dots+newsletter-2025@sub-domain.example-provider.example>: "
    "Recipient address rejected: User unknown in virtual mailbox table"
)
HOOK = "https://hooks.acme.example/portal/a-rather-long-path/for-the-webhooks-of-the-shop?token=abcdef0123456789"


@pytest.fixture
def acme():
    """alice of ACME, with four hostings (one per state of the service), a month of history, errors
    with long addresses, messages of every status, suppressions, API credentials and a webhook."""
    membership = MembershipFactory(
        user__username="alice",
        customer=CustomerFactory(slug="acme", name="ACME", contact_email="contact@acme-shop.fr"),
    )
    customer = membership.customer
    user = membership.user
    shop = HostingFactory(service_name="acme-shop.fr", customer=customer)
    blog = HostingFactory(service_name="blog.acme-shop.fr", customer=customer)
    spam = HostingFactory(service_name="promo.acme-shop.fr", customer=customer)
    purge = HostingFactory(service_name="old.acme-shop.fr", customer=customer)
    today = timezone.localdate()
    for days_ago in range(30):
        DailyCounterFactory(
            hosting=shop,
            day=today - datetime.timedelta(days=days_ago),
            sent=1 + (days_ago * 37) % 59,
            errors=days_ago % 5,
        )
    DailyCounterFactory(hosting=shop, day=today - datetime.timedelta(days=200), sent=33, errors=0)
    for _index in range(3):
        DeliveryErrorFactory(hosting=shop, recipient=LONG_ADDRESS, reply=LONG_REPLY)
    DeliveryErrorFactory(hosting=shop, recipient="jean.dupont@webmail.example", reply="550 5.1.1 User unknown")
    now = timezone.now()
    for status in (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENT, MessageStatus.FAILED):
        MessageFactory(
            hosting=shop,
            status=status,
            subject="Votre commande n°1042 a été expédiée — suivi du colis et facture en pièce jointe",
            sender="boutique-commandes-noreply@acme-shop.fr",
            recipients=[
                {"address": LONG_ADDRESS, "status": RecipientStatus.PENDING, "code": None, "reply": LONG_REPLY}
            ],
        )
    for minutes, address in enumerate([LONG_ADDRESS, "jean.dupont@webmail.example"]):
        Suppression.objects.create(
            hosting=shop,
            address=address,
            created_at=now - datetime.timedelta(minutes=minutes),
            expires_at=now + datetime.timedelta(days=90),
            reason=f"550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        )
    EventFactory(hosting=shop, action="block", actor_kind="customer", actor_label="alice", message_count=1042)
    mail_service_block(hosting=blog, actor=Actor.customer(user), reason=BlockReason.CUSTOMER)
    MessageFactory.create_batch(2, hosting=blog, status=MessageStatus.HELD)
    mail_service_auto_block(hosting=spam, reason=BlockReason.SPAM)
    mail_service_block(hosting=purge, actor=Actor.customer(user), reason=BlockReason.CUSTOMER)
    mail_service_purge_request(hosting=purge, actor=Actor.customer(user))
    api_credentials_create(customer=customer, name="script de facturation", user=user)
    application = api_application_create(customer=customer, name="Outil de suivi", user=user)
    requested = consumer_key_request(
        application=ApiApplication.objects.get(application_key=application.application_key),
        access_rules=[{"method": "GET", "path": "/hosting/web/*"}],
    )
    endpoint_attempt = WebhookAttemptFactory(delivery__endpoint__customer=customer, delivery__endpoint__url=HOOK)
    return {
        "user": user,
        "validation_token": requested.validation_token,
        "webhook": endpoint_attempt.delivery.endpoint,
    }


def overflow(page) -> dict:
    """How wide the document is against the window, and what sticks out (outside a table's scroller)."""
    return page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
            outside: [...document.querySelectorAll("body *")]
                .filter(element => !element.closest(".table-scroll") && !element.closest("dialog:not([open])")
                    && element.getBoundingClientRect().right > window.innerWidth + 0.5
                    && getComputedStyle(element).visibility !== "hidden")
                .map(element => element.tagName + "." + element.className + " "
                    + (element.textContent || "").trim().slice(0, 40)),
        })"""
    )


def misfits(page, what: str) -> list[str]:
    """[] when the page fits its window; else what is wrong, to be reported with the other pages'."""
    if ALL_SHOTS:  # in slices a person can read
        width, height = page.viewport_size["width"], page.evaluate("document.documentElement.scrollHeight")
        for index, top in enumerate(range(0, height, 900)):
            clip = {"x": 0, "y": top, "width": width, "height": min(900, height - top)}
            page.screenshot(path=f"{ALL_SHOTS}/{width}-{what}-{index}.png", full_page=True, clip=clip)
    figures = overflow(page)
    if figures["scrollWidth"] <= figures["innerWidth"] and not figures["outside"]:
        return []
    return [f"{what} ({page.url}): {figures['scrollWidth']} px > {figures['innerWidth']} px: {figures['outside'][:8]}"]


def assert_on_screen(page, locator, what: str) -> None:
    """Visible, and whole inside the viewport's width (not clipped on the right or the left)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{what}: {box}"


def shoot(page, name: str) -> None:
    """A full-page PNG in docs/screenshots/ (the viewport grows to the page, for dialogs' backdrops)."""
    viewport = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")
    finally:
        page.set_viewport_size(viewport)


def reset_link(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"/accounts/reset/{uid}/{default_token_generator.make_token(user)}/"


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_every_page_fits(acme, new_page, size):
    page = new_page()
    page.set_viewport_size(WIDTHS[size])
    top = page.get_by_role("banner")

    page.goto("/accounts/login/")
    problems = misfits(page, "login")
    assert_on_screen(page, page.get_by_role("button", name="Se connecter"), "login button")
    page.goto("/accounts/password_reset/")
    problems += misfits(page, "password reset")
    page.goto(reset_link(acme["user"]))
    problems += misfits(page, "password reset confirm")

    log_in(page, "alice")
    problems += misfits(page, "hosting list")
    assert_on_screen(page, top.get_by_role("button", name="Se déconnecter"), "log out")
    assert_on_screen(page, page.get_by_role("link", name="old.acme-shop.fr"), "hosting link")

    pages = {
        "hosting page": "/hostings/acme-shop.fr/",
        "emails active": "/hostings/acme-shop.fr/emails/",
        "emails blocked": "/hostings/blog.acme-shop.fr/emails/",
        "emails spam": "/hostings/promo.acme-shop.fr/emails/",
        "emails purging": "/hostings/old.acme-shop.fr/emails/",
        "confirm block (no script)": "/hostings/acme-shop.fr/emails/block/",
        "recipient (no script)": "/hostings/acme-shop.fr/emails/recipient/",
        "history": "/hostings/acme-shop.fr/emails/history/",
        "delivery log": "/hostings/acme-shop.fr/emails/messages/",
        "suppressions": "/hostings/acme-shop.fr/emails/suppressions/",
        "smtp": "/hostings/acme-shop.fr/smtp/",
        "dkim": "/hostings/acme-shop.fr/smtp/dkim/",
        "api credentials": "/api-credentials/",
        "api validation": f"/api-credentials/validate/{acme['validation_token']}/",
        "webhooks": "/webhooks/",
        "webhook": f"/webhooks/{acme['webhook'].pk}/",
        "webhook delete": f"/webhooks/{acme['webhook'].pk}/delete/",
        "password change": "/accounts/password_change/",
    }
    for what, url in pages.items():
        page.goto(url)
        problems += misfits(page, what)
        assert_on_screen(page, top.get_by_role("button", name="Se déconnecter"), f"{what}: log out")
        assert_on_screen(page, top.get_by_role("link", name="Identifiants API"), f"{what}: API credentials")

    # The Scripts e-mail page: its controls on the screen, in each state; the pictures of the docs.
    suffix = "-phone" if size == "phone" else ""
    page.goto("/hostings/acme-shop.fr/emails/")
    service = page.locator("#service")
    for control in (
        service.locator(".badge"),
        service.get_by_role("link", name="Changer le destinataire"),
        service.get_by_role("link", name="Bloquer l'envoi"),
        page.locator(f".chart-{'narrow' if size == 'phone' else 'wide'} svg"),
    ):
        assert_on_screen(page, control, "emails active")
    chart = page.locator(f".chart-{'narrow' if size == 'phone' else 'wide'} svg").bounding_box()
    assert chart["width"] >= 300 and chart["height"] >= 200, f"a readable chart: {chart}"
    shoot(page, f"emails-active{suffix}")
    page.get_by_role("link", name="Changer le destinataire").click()
    dialog = page.locator("dialog#recipient-dialog")
    expect(dialog.get_by_label("Adresse e-mail")).to_have_value("contact@acme-shop.fr")
    assert_on_screen(page, dialog.get_by_role("button", name="Valider"), "recipient dialog")
    problems += misfits(page, "recipient dialog")
    dialog.get_by_label("Adresse e-mail").fill("pas-une-adresse")
    dialog.get_by_role("button", name="Valider").click()
    expect(dialog).to_be_visible()  # the whole page again, its dialog open on the error
    expect(dialog.get_by_role("alert")).to_have_text("L'adresse e-mail n'est pas valide.")
    expect(page.locator(".crumbs")).to_contain_text("acme-shop.fr")
    problems += misfits(page, "recipient refused")
    shoot(page, f"emails-recipient-refused{suffix}")
    page.goto("/hostings/acme-shop.fr/emails/")
    page.get_by_role("link", name="Bloquer l'envoi").click()
    assert_on_screen(page, page.locator("dialog#dialog-block").get_by_role("button", name="Valider"), "block dialog")
    shoot(page, f"emails-confirm-block{suffix}")
    for name, url in (
        ("emails-blocked", "/hostings/blog.acme-shop.fr/emails/"),
        ("emails-spam", "/hostings/promo.acme-shop.fr/emails/"),
        ("emails-purging", "/hostings/old.acme-shop.fr/emails/"),
    ):
        page.goto(url)
        assert_on_screen(page, page.locator("#service .badge"), name)
        shoot(page, f"{name}{suffix}")
    page.goto("/hostings/old.acme-shop.fr/emails/")
    page.get_by_role("link", name="Annuler la purge").click()
    cancel = page.locator("dialog#dialog-cancel-purge")
    assert_on_screen(page, cancel.get_by_role("button", name="Continuer la purge"), "cancel the purge")
    expect(cancel.get_by_role("button", name="Annuler la purge")).to_be_visible()
    page.goto("/hostings/acme-shop.fr/emails/block/")
    shoot(page, f"emails-confirm-block-nojs{suffix}")
    page.goto("/")
    shoot(page, f"hostings{suffix}")
    page.goto("/hostings/acme-shop.fr/")
    expect(page.locator("#hosting-facts .badge")).to_have_text("Actif")
    page.goto("/hostings/acme-shop.fr/smtp/")
    page.get_by_role("link", name="Générer un nouveau mot de passe…").click()
    rotate = page.locator("dialog#dialog-rotate-password")
    expect(rotate).to_contain_text("ne pourront plus envoyer")
    assert_on_screen(page, rotate.get_by_role("button", name="Garder le mot de passe actuel"), "smtp dialog")
    shoot(page, f"smtp-rotate{suffix}")
    page.goto("/api-credentials/")
    shoot(page, f"api-credentials{suffix}")
    page.goto("/hostings/acme-shop.fr/emails/messages/")
    page.locator("#log a[href*='/emails/messages/']").first.click()
    problems += misfits(page, "message page")
    assert problems == [], "\n".join(problems)
