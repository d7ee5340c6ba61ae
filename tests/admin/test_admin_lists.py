"""The operators' lists: filters, capped paging ("10000+") and hostings just added."""

import datetime
import html
import re

import pytest
from django.utils import timezone

from hosting import admin_paging
from hosting.models import Hosting
from mailqueue.admin import HostingAdmin, MessageAdmin
from mailqueue.blocking import mail_service_block
from mailqueue.models import MailService, MessageStatus, State
from mailqueue.state import Actor
from tests.admin.conftest import HOSTINGS_URL, page_text
from tests.admin.test_admin_roles import cells
from tests.factories import CustomerFactory, HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES_URL = "/admin/mailqueue/message/"


def filter_link(response, label: str) -> str:
    """The query string of the sidebar filter link the operator clicks."""
    match = re.search(rf'<a href="(\?[^"]*)">{re.escape(label)}</a>', page_text(response))
    assert match, label
    return html.unescape(match.group(1))


@pytest.fixture
def hostings(superuser_client):
    shop = HostingFactory(service_name="shop.example", plan="pro")
    blog = HostingFactory(service_name="blog.example", plan="perso")
    spam = HostingFactory(service_name="spam.example", plan="perso")
    mail_service_block(hosting=blog, actor=Actor.api("setup"))
    mail_service_block(hosting=spam, actor=Actor.system("setup"), reason="spam")
    # A hosting an operator adds in the admin, used by nobody yet: provisioned with its service, active.
    added = superuser_client.post(
        f"{HOSTINGS_URL}add/", {"service_name": "fresh.example", "customer": CustomerFactory().pk, "plan": "starter"}
    )
    assert added.status_code == 302, page_text(added)
    fresh = Hosting.objects.get(service_name="fresh.example")
    return shop, blog, spam, fresh


@pytest.mark.parametrize(
    ("label", "listed"),
    [
        ("Actif", ["fresh.example", "shop.example"]),
        ("Inactif", ["blog.example", "spam.example"]),
        ("Purge", []),
        ("envoi abusif (spam)", ["spam.example"]),
        ("bloqué par le client", ["blog.example"]),
        ("Pro", ["shop.example"]),
        ("Starter", ["fresh.example"]),
    ],
)
def test_hosting_filters(superuser_client, hostings, label, listed):
    query = filter_link(superuser_client.get(HOSTINGS_URL), label)

    assert cells(superuser_client.get(HOSTINGS_URL + query), "service_name") == listed


def test_a_hosting_added_in_the_admin_has_its_mail_service_listed_and_shown(superuser_client, hostings):
    fresh = hostings[3]
    assert MailService.objects.filter(hosting=fresh, state=State.ACTIVE).exists()

    listing = superuser_client.get(HOSTINGS_URL)
    assert listing.status_code == 200
    row = cells(listing, "service_name").index("fresh.example")
    assert cells(listing, "state")[row] == "Actif"
    assert cells(listing, "hourly_limit")[row] == "20"  # the starter plan's

    assert superuser_client.get(f"{HOSTINGS_URL}{fresh.pk}/change/").status_code == 200


def test_hosting_list_shows_state_reason_and_limit(superuser_client, hostings):
    listing = superuser_client.get(HOSTINGS_URL)

    assert cells(listing, "service_name") == ["blog.example", "fresh.example", "shop.example", "spam.example"]
    assert cells(listing, "state") == [
        "Inactif<br><small>bloqué par le client</small>",
        "Actif",
        "Actif",
        "Inactif<br><small>envoi abusif (spam)</small>",
    ]
    assert cells(listing, "hourly_limit") == ["100", "20", "200", "100"]
    # The columns that fit 1366 px: the recipient is on each hosting's page, not in the list.
    assert cells(listing, "report_recipient") == []


def test_message_filters_by_status_and_date(superuser_client):
    now = timezone.now()
    MessageFactory(subject="today-queued", status=MessageStatus.QUEUED, created_at=now)
    MessageFactory(subject="today-held", status=MessageStatus.HELD, created_at=now)
    MessageFactory(subject="old-sent", status=MessageStatus.SENT, created_at=now - datetime.timedelta(days=40))
    listing = superuser_client.get(MESSAGES_URL)
    assert cells(listing, "subject") == ["old-sent", "today-held", "today-queued"]

    assert cells(superuser_client.get(MESSAGES_URL + filter_link(listing, "en attente")), "subject") == ["today-held"]
    assert cells(superuser_client.get(MESSAGES_URL + filter_link(listing, "envoyé")), "subject") == ["old-sent"]
    recent = superuser_client.get(MESSAGES_URL + filter_link(listing, "Les 7 derniers jours"))
    assert cells(recent, "subject") == ["today-held", "today-queued"]
    today_held = superuser_client.get(MESSAGES_URL + filter_link(recent, "en attente"))  # both filters at once
    assert cells(today_held, "subject") == ["today-held"]


def test_capped_count_says_so_and_pages_stay_reachable(superuser_client, monkeypatch):
    monkeypatch.setattr(admin_paging, "COUNT_CAP", 5)
    monkeypatch.setattr(HostingAdmin, "list_per_page", 2)
    for index in range(8):
        HostingFactory(service_name=f"h{index}.example")

    first = superuser_client.get(HOSTINGS_URL)

    text = page_text(first)
    assert cells(first, "service_name") == ["h0.example", "h1.example"]
    assert re.search(r"5\+\s+hébergements", text)
    assert "Sélectionner tous les 5+ hébergements" in text
    assert not re.search(r"\b[5-8]\s+hébergements", text)  # no false exact figure
    third = superuser_client.get(HOSTINGS_URL, {"p": "3"})
    assert third.status_code == 200
    assert cells(third, "service_name") == ["h4.example", "h5.example"]

    searched = superuser_client.get(HOSTINGS_URL, {"q": "example"})
    assert "5+ résultats" in page_text(searched)


def test_uncapped_count_is_exact(superuser_client, monkeypatch):
    monkeypatch.setattr(admin_paging, "COUNT_CAP", 5)
    monkeypatch.setattr(MessageAdmin, "list_per_page", 2)
    MessageFactory.create_batch(5)

    text = page_text(superuser_client.get(MESSAGES_URL))

    assert re.search(r"\b5\s+e-mails", text)
    assert not re.search(r"(?<![\d-])5\+", text)  # "10000+"-style capped count; dates like 25+00:00 aside
