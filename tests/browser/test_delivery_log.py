"""« Suivi des envois » in a real browser (SPEC §10.3, §13), on a laptop (1366 px) and on a phone
(360 px): filter by status, select two held e-mails and delete them, retry a deferred one, download
the CSV export; the new pages never scroll sideways."""

import csv
import datetime
import io
import re

import pytest
from django.utils import timezone

from mailqueue.models import Action, Event, Message, MessageStatus, RecipientStatus
from tests.browser.conftest import CHROMIUM
from tests.browser.test_scripts_email import expect, log_in
from tests.factories import CustomerFactory, EventFactory, HostingFactory, MembershipFactory, MessageFactory

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

WIDTHS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 360, "height": 740}}
LOG_URL = "/hostings/acme-shop.fr/emails/messages/"
LONG_ADDRESS = "a-rather-long-mailbox-name.with.dots+newsletter-2025@sub-domain.example-provider.example"


@pytest.fixture
def acme():
    """acme-shop.fr with three held e-mails, a deferred one, two sent and a failed one."""
    membership = MembershipFactory(user__username="alice", customer=CustomerFactory(slug="acme", name="ACME"))
    hosting = HostingFactory(service_name="acme-shop.fr", customer=membership.customer)
    now = timezone.now()

    def make(status, minutes_ago, subject, **fields):
        return MessageFactory(
            hosting=hosting,
            status=status,
            subject=subject,
            sender="boutique@acme-shop.fr",
            created_at=now - datetime.timedelta(minutes=minutes_ago),
            **fields,
        )

    messages = {
        "held": [make(MessageStatus.HELD, minutes, f"Commande {minutes}") for minutes in (1, 2, 3)],
        "deferred": make(
            MessageStatus.DEFERRED,
            4,
            "Relance panier",
            attempts=2,
            next_attempt_at=now + datetime.timedelta(hours=1),
            last_reply="451 4.7.1 Greylisted, try again later",
        ),
        "sent": [
            make(
                MessageStatus.SENT,
                5 + number,
                "Votre facture du mois de novembre, avec un objet particulièrement long pour un téléphone",
                recipients=[
                    {"address": LONG_ADDRESS, "status": RecipientStatus.SENT, "code": 250, "reply": "2.0.0 Ok"},
                    {"address": "jean@example.org", "status": RecipientStatus.SENT, "code": 250, "reply": "2.0.0"},
                ],
                recipient_count=2,
                completed_at=now,
            )
            for number in range(2)
        ],
        "failed": make(MessageStatus.FAILED, 9, "Bienvenue", last_reply="550 5.1.1 User unknown"),
    }
    EventFactory(hosting=hosting, action="block", actor_kind="customer", actor_label="alice", message_count=0)
    return hosting, messages


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def rows(page):
    return page.locator("table#log tbody tr[data-message]")


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_filter_delete_two_retry_one_and_export(acme, new_page, screen):
    hosting, messages = acme
    page = new_page()
    page.set_viewport_size(WIDTHS[screen])
    log_in(page, "alice")

    # From the Scripts e-mail page to the log.
    page.goto("/hostings/acme-shop.fr/emails/")
    assert no_sideways_scroll(page)
    page.locator("#delivery-log-link").click()
    expect(page).to_have_url(re.compile(re.escape(LOG_URL) + "$"))
    expect(rows(page)).to_have_count(7)
    assert no_sideways_scroll(page)

    # Filter by status: the held ones only.
    page.locator('#log-filters input[name="status"][value="held"]').check()
    page.locator('#log-filters button[type="submit"]').click()
    expect(page).to_have_url(re.compile(r"\?.*status=held"))
    expect(rows(page)).to_have_count(3)
    assert set(rows(page).evaluate_all("rows => rows.map(row => row.dataset.status)")) == {"held"}
    expect(page.locator('#log-filters input[name="status"][value="held"]')).to_be_checked()

    # Select two of them and delete them: back on the same filtered page, one left.
    first, second, kept = messages["held"]
    page.locator(f"#select-{first.pk}").check()
    page.locator(f"#select-{second.pk}").check()
    page.locator('#log-actions button[name="action"][value="delete"]').click()
    expect(page.locator("ul.messages li.success")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?.*status=held"))
    expect(rows(page)).to_have_count(1)
    expect(page.locator(f'tr[data-message="{kept.pk}"]')).to_be_visible()
    assert not Message.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert Event.objects.get(hosting=hosting, action=Action.DELETE_MESSAGES).message_count == 2
    assert no_sideways_scroll(page)

    # Retry the deferred one now, with its row's button.
    deferred = messages["deferred"]
    page.goto(LOG_URL)
    page.locator(f'#log-actions button[name="retry"][value="{deferred.pk}"]').click()
    expect(page.locator("ul.messages li.success")).to_have_count(1)
    expect(page.locator(f'tr[data-message="{deferred.pk}"]')).to_have_attribute("data-status", "queued")
    assert Message.objects.get(pk=deferred.pk).status == MessageStatus.QUEUED

    # The export link downloads the log as CSV.
    with page.expect_download() as download_info:
        page.locator("#log-export").click()
    download = download_info.value
    assert re.fullmatch(r"acme-shop\.fr-messages-\d{8}\.csv", download.suggested_filename)
    with open(download.path(), encoding="utf-8-sig") as handle:
        lines = list(csv.reader(io.StringIO(handle.read())))
    assert lines[0][:5] == ["received", "message_id", "sender", "subject", "status"]
    assert len(lines) == 1 + 1 + 1 + 2 * 2 + 1  # the held one left, the deferred, two sent (2 recipients), failed
    assert {line[4] for line in lines[1:]} == {"held", "queued", "sent", "failed"}


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_the_new_pages_never_scroll_sideways(acme, new_page, screen):
    _hosting, messages = acme
    page = new_page()
    page.set_viewport_size(WIDTHS[screen])
    log_in(page, "alice")

    page.goto(LOG_URL)
    page.locator(f'a[href$="/emails/messages/{messages["sent"][0].pk}/"]').first.click()
    expect(page.locator("table#recipients tbody tr")).to_have_count(2)
    assert no_sideways_scroll(page)

    page.goto(f"{LOG_URL}{messages['deferred'].pk}/")
    expect(page.locator('button[name="action"][value="retry"]')).to_be_visible()
    assert no_sideways_scroll(page)

    page.goto("/hostings/acme-shop.fr/emails/")
    page.locator('a[href="/hostings/acme-shop.fr/emails/history/"]').click()
    expect(page.locator("table#history tbody tr")).to_have_count(1)
    assert no_sideways_scroll(page)

    page.goto(f"{LOG_URL}?status=sent&status=failed&recipient=example&subject=e")
    expect(rows(page)).to_have_count(3)
    assert no_sideways_scroll(page)

    # The DKIM page: a 2048-bit key's record and the zone-file lines wrap inside their card.
    page.goto("/hostings/acme-shop.fr/smtp/dkim/")
    page.locator("details summary").first.click()  # the zone-file line, the longest
    expect(page.locator("details pre.wrap").first).to_be_visible()
    assert no_sideways_scroll(page)
