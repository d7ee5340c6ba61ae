"""The « Webhooks » page in a real browser: an endpoint is added (its secret shown once), its secret
rotated and the endpoint deleted through the confirmation dialogs; on a phone nothing but the
tables is wider than the screen."""

import os

import pytest

from hosting.encryption import decrypt
from mailqueue.models import WebhookEndpoint
from tests.api.test_webhooks import public_dns  # noqa: F401 (autouse: hooks.acme.example resolves)
from tests.browser.conftest import CHROMIUM
from tests.browser.test_scripts_email import expect, log_in
from tests.browser.test_suppressions import PHONE, wider_than_the_screen
from tests.factories import CustomerFactory, HostingFactory, MembershipFactory, WebhookAttemptFactory

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

SHOTS = os.environ.get("WEBHOOKS_SCREENSHOTS")  # a folder: keep pictures of the pages to look at
HOOK = "https://hooks.acme.example/portal/a-rather-long-path/for-the-webhooks-of-the-shop?token=abcdef0123456789"


@pytest.fixture
def acme():
    membership = MembershipFactory(user__username="alice", customer=CustomerFactory(slug="acme", name="ACME"))
    HostingFactory(service_name="acme-shop.fr", customer=membership.customer)
    return membership.customer


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True, animations="disabled")


def test_add_rotate_and_delete_an_endpoint(acme, new_page):
    page = new_page()
    log_in(page, "alice")
    page.goto("/webhooks/")
    page.locator("#id_url").fill(HOOK)
    page.locator('#webhook-create input[value="message.failed"]').check()
    page.locator('#webhook-create input[value="message.bounced"]').check()
    page.locator('#webhook-create button[type="submit"]').click()
    secret = page.locator("#webhook-secret").inner_text()
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.events, endpoint.customer) == (HOOK, ["message.failed", "message.bounced"], acme)
    assert decrypt(endpoint.secret_encrypted) == secret
    WebhookAttemptFactory(delivery__endpoint=endpoint, status_code=503, reply="Service Unavailable")
    shot(page, "webhooks-created")

    page.goto("/webhooks/")
    expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once
    expect(page.locator("#webhook-endpoints")).to_contain_text("HTTP 503")
    page.locator("#webhook-endpoints a").first.click()
    page.locator('a[data-dialog="dialog-rotate"]').click()
    dialog = page.locator("#dialog-rotate")
    expect(dialog).to_be_visible()
    shot(page, "webhooks-rotate")
    dialog.locator('button[type="submit"]').click()
    rotated = page.locator("#webhook-secret").inner_text()
    assert rotated != secret and decrypt(WebhookEndpoint.objects.get().secret_encrypted) == rotated
    shot(page, "webhooks-detail")

    page.locator('a[data-dialog="dialog-delete"]').click()
    page.locator("#dialog-delete [data-close]").click()  # Cancel: nothing happens
    expect(page.locator("#dialog-delete")).to_be_hidden()
    assert WebhookEndpoint.objects.exists()
    page.locator('a[data-dialog="dialog-delete"]').click()
    page.locator('#dialog-delete button[type="submit"]').click()
    expect(page).to_have_url(f"{page.url.split('/webhooks/')[0]}/webhooks/")
    assert not WebhookEndpoint.objects.exists()


def test_without_javascript_the_confirmations_are_pages(acme, new_page):
    page = new_page(java_script_enabled=False)
    log_in(page, "alice")
    page.goto("/webhooks/")
    page.locator("#id_url").fill(HOOK)
    page.locator('#webhook-create input[value="message.sent"]').check()
    page.locator('#webhook-create button[type="submit"]').click()
    page.goto(f"/webhooks/{WebhookEndpoint.objects.get().pk}/")
    page.locator('a[data-dialog="dialog-delete"]').click()
    expect(page).to_have_url(f"{page.url.split('/webhooks/')[0]}/webhooks/{WebhookEndpoint.objects.get().pk}/delete/")
    page.locator('.confirm button[type="submit"]').click()
    assert not WebhookEndpoint.objects.exists()


def test_on_a_phone_only_the_tables_scroll(acme, new_page):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "alice")
    page.goto("/webhooks/")
    page.locator("#id_url").fill(HOOK)
    page.locator('#webhook-create input[value="message.sent"]').check()
    page.locator('#webhook-create button[type="submit"]').click()
    expect(page.locator("#webhook-secret")).to_be_visible()
    assert wider_than_the_screen(page) == []
    shot(page, "webhooks-phone")
    page.goto(f"/webhooks/{WebhookEndpoint.objects.get().pk}/")
    assert wider_than_the_screen(page) == []
