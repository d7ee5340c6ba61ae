"""The « Adresses supprimées » page in a real browser on a 360 px wide phone: nothing wider than the
screen, the table's rows reflow into blocks; an address is removed with its row's button."""

import datetime
import os

import pytest
from django.utils import timezone

from mailqueue.models import DeliveryError, Suppression
from tests.browser.conftest import CHROMIUM
from tests.browser.test_scripts_email import expect, log_in
from tests.factories import CustomerFactory, DeliveryErrorFactory, HostingFactory, MembershipFactory

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

PHONE = {"width": 360, "height": 740}
PHONE_SHOT = os.environ.get("SUPPRESSIONS_SCREENSHOT")  # a path: keep a picture of the page to look at
LONG_ADDRESS = "a-rather-long-mailbox-name.with.dots+newsletter-2025@sub-domain.example-provider.example"


@pytest.fixture
def acme():
    membership = MembershipFactory(user__username="alice", customer=CustomerFactory(slug="acme", name="ACME"))
    hosting = HostingFactory(service_name="acme-shop.fr", customer=membership.customer)
    now = timezone.now()
    for minutes, address in enumerate([LONG_ADDRESS, "jean.dupont@webmail.example", "marie+news@webmail.example"]):
        Suppression.objects.create(
            hosting=hosting,
            address=address,
            created_at=now - datetime.timedelta(minutes=minutes),
            expires_at=now + datetime.timedelta(days=90),
            reason=f"550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        )
    DeliveryErrorFactory(hosting=hosting, recipient=LONG_ADDRESS, reply="550 5.1.1 User unknown", kind="dsn")
    return hosting


def wider_than_the_screen(page) -> list[str]:
    """What in the page's content sticks out on the right, but what scrolls inside a table wrapper."""
    return page.evaluate(
        """width => [...document.querySelectorAll("main *")]
            .filter(element => !element.closest(".table-scroll") && element.getBoundingClientRect().right > width)
            .map(element => element.tagName + "." + element.className)""",
        PHONE["width"],
    )


def right_edge(locator) -> float:
    return locator.evaluate("element => element.getBoundingClientRect().right")


def test_on_a_phone_the_list_fits_and_an_address_is_removed(acme, new_page):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "alice")

    page.goto("/hostings/acme-shop.fr/emails/")
    errors = page.locator(".table-scroll").first
    assert right_edge(errors) <= PHONE["width"], "the error list scrolls inside its card"
    page.locator('a[href="/hostings/acme-shop.fr/emails/suppressions/"]').click()

    expect(page.locator("table#suppressions tbody tr")).to_have_count(3)
    assert wider_than_the_screen(page) == []
    scroller = page.locator(".table-scroll").first
    assert right_edge(scroller) <= PHONE["width"]
    # The rows reflow, one block each, the long address wrapped: nothing to scroll, all of it readable.
    assert scroller.evaluate("element => element.scrollWidth <= element.clientWidth")
    expect(page.get_by_text(LONG_ADDRESS, exact=True)).to_be_visible()
    if PHONE_SHOT:
        page.screenshot(path=PHONE_SHOT, full_page=True)

    page.locator('button[name="remove"][value="marie+news@webmail.example"]').click()

    expect(page.locator("ul.messages li")).to_have_count(1)
    expect(page.locator("table#suppressions tbody tr")).to_have_count(2)
    assert not Suppression.objects.filter(address="marie+news@webmail.example").exists()
    assert Suppression.objects.count() == 2
    assert DeliveryError.objects.count() == 1
