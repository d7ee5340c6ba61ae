"""The operators' admin in a real browser on a 1366 px wide laptop screen: the hostings list fits
(its hourly limit in sight, no horizontal scroll), and a hosting's page offers its buttons and
links. Screenshots in docs/screenshots/admin-hostings.png and admin-hosting.png."""

import re

import pytest

from mailqueue.blocking import mail_service_block
from mailqueue.state import Actor
from tests.admin.conftest import staff_user
from tests.browser.conftest import CHROMIUM
from tests.browser.test_scripts_email import expect, log_in
from tests.factories import CustomerFactory, DeliveryErrorFactory, HostingFactory, MessageFactory

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def hostings():
    customer = CustomerFactory(slug="acme", name="ACME Distribution et Logistique SARL")
    made = [
        HostingFactory(service_name=f"boutique-en-ligne-{index}.acme-distribution.fr", customer=customer)
        for index in range(6)
    ]
    mail_service_block(hosting=made[1], actor=Actor.system("setup"), reason="spam")
    mail_service_block(hosting=made[2], actor=Actor.api("setup"))
    MessageFactory(hosting=made[2], status="held")
    DeliveryErrorFactory(hosting=made[2])
    return made


def test_the_hosting_list_fits_a_laptop_and_a_hosting_page_has_its_buttons(hostings, new_page, screenshot):
    staff_user("olivia", "Operators")
    page = new_page()
    page.set_viewport_size(LAPTOP)
    log_in(page, "olivia")

    page.goto("/admin/hosting/hosting/")
    limit = page.locator("th.column-hourly_limit")
    expect(limit).to_be_visible()
    assert limit.evaluate("element => element.getBoundingClientRect().right") <= LAPTOP["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]  # no horizontal scroll
    screenshot(page, "admin-hostings")

    page.get_by_role("link", name=hostings[2].service_name).click()
    expect(page.locator("h1")).to_have_text(f"Hébergement {hostings[2].service_name}")
    expect(page.get_by_role("link", name=re.compile("Débloquer l.envoi"))).to_be_visible()
    expect(page.get_by_role("link", name="E-mails en attente")).to_be_visible()
    screenshot(page, "admin-hosting")

    page.get_by_role("link", name="Purger les e-mails").click()
    page.get_by_label("Motif").fill("Spam confirmé par le client")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Purge demandée pour 1 hébergement.")
