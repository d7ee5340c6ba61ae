"""The portal's « Adresses supprimées » page (SPEC §10.2): the hosting's suppressed addresses in
force, searched, paged by key, removed one by one or in a selection, for its own hosting only."""

import datetime
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone, translation

from mailqueue.models import ActorKind, Event, Suppression
from mailqueue.suppression_views import PAGE_SIZE
from tests.portal.pages import dom, flash_messages, text

pytestmark = pytest.mark.django_db


def suppress(hosting, address, *, minutes_ago=0, reason="550 5.1.1 User unknown", expired=False):
    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    days = -1 if expired else settings.SUPPRESSION_DAYS
    return Suppression.objects.create(
        hosting=hosting, address=address, created_at=at, expires_at=at + datetime.timedelta(days=days), reason=reason
    )


def many(hosting, count, *, at=None):
    """`count` entries, one a minute back from `at` (newest first: number 0)."""
    at = at or timezone.now()
    Suppression.objects.bulk_create(
        Suppression(
            hosting=hosting,
            address=f"user{number}@example.org",
            created_at=at - datetime.timedelta(minutes=number),
            expires_at=at + datetime.timedelta(days=90),
            reason="550 5.1.1 User unknown",
        )
        for number in range(count)
    )


def url_of(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/suppressions/"


def rows(response) -> list[list[str]]:
    table = dom(response).find("table", id="suppressions")
    return [[cell.text for cell in row.find_all("td")] for row in table.find("tbody").find_all("tr")]


def addresses(response) -> list[str]:
    return [row[1] for row in rows(response) if len(row) > 1]


def shown(value, format_name) -> str:
    with translation.override("en"):
        return formats.date_format(timezone.localtime(value), format_name)


def next_link(response) -> str | None:
    link = dom(response).find("a", rel="next")
    return link.attrs["href"] if link else None


# --- what the page shows ------------------------------------------------------------------------------


def test_the_page_lists_the_addresses_in_force_newest_first(owner, stranger):
    _user, hosting, client = owner
    older = suppress(hosting, "old@example.org", minutes_ago=60, reason="550 5.1.1 <old@example.org>: User unknown")
    newer = suppress(hosting, "new@example.org", minutes_ago=5)
    suppress(hosting, "gone@example.org", expired=True)
    suppress(stranger[1], "theirs@example.org")

    response = client.get(url_of(hosting))

    assert response.status_code == 200
    assert rows(response) == [
        [
            "",
            "new@example.org",
            shown(newer.created_at, "SHORT_DATETIME_FORMAT"),
            shown(newer.expires_at, "SHORT_DATE_FORMAT"),
            "550 5.1.1 User unknown",
            "Remove",
        ],
        [
            "",
            "old@example.org",
            shown(older.created_at, "SHORT_DATETIME_FORMAT"),
            shown(older.expires_at, "SHORT_DATE_FORMAT"),
            "550 5.1.1 <old@example.org>: User unknown",
            "Remove",
        ],
    ]
    headers = [cell.text for cell in dom(response).find("table", id="suppressions").find("thead").find_all("th")]
    assert headers == ["Select", "Address", "Since", "Until", "Error", "Action"]
    page = dom(response)
    assert [box.attrs["value"] for box in page.find_all("input", type="checkbox", name="address")] == [
        "new@example.org",
        "old@example.org",
    ]
    assert page.find("button", name="remove_selected").text == "Remove the selected addresses"
    crumbs = page.find("p", class_="crumbs")
    assert [link.attrs["href"] for link in crumbs.find_all("a")][-1] == f"/hostings/{hosting.service_name}/emails/"
    assert "theirs@example.org" not in response.content.decode()


def test_the_page_says_what_suppression_means_with_the_configured_duration(owner, settings):
    _user, hosting, client = owner
    settings.SUPPRESSION_DAYS = 45

    explained = dom(client.get(url_of(hosting))).find("p", id="suppression-explained").text

    assert "permanent error" in explained
    assert "no longer sends to that address for 45 days" in explained
    assert "lets the next e-mail go to it" in explained


def test_an_empty_list_says_so(owner):
    _user, hosting, client = owner
    response = client.get(url_of(hosting))
    assert rows(response) == [["No suppressed addresses."]]
    assert dom(response).find("button", name="remove_selected") is None


def test_the_scripts_email_page_links_to_it_near_the_errors(owner):
    _user, hosting, client = owner
    page = dom(client.get(f"/hostings/{hosting.service_name}/emails/"))
    link = page.find("a", href=url_of(hosting))
    assert link is not None and link.text == "Suppressed addresses"


def test_a_visitor_must_log_in_first(owner):
    _user, hosting, _client = owner
    response = Client().get(url_of(hosting))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


# --- search and pages ----------------------------------------------------------------------------


def test_the_search_keeps_the_addresses_containing_the_text(owner):
    _user, hosting, client = owner
    suppress(hosting, "jean.dupont@webmail.example", minutes_ago=2)
    suppress(hosting, "marie+news@webmail.example", minutes_ago=1)
    suppress(hosting, "contact@other.example")

    response = client.get(url_of(hosting), {"q": "  WEBMAIL "})

    assert addresses(response) == ["marie+news@webmail.example", "jean.dupont@webmail.example"]
    assert dom(response).find("input", name="q", type="text").attrs["value"] == "WEBMAIL"
    assert addresses(client.get(url_of(hosting), {"q": "+news"})) == ["marie+news@webmail.example"]
    nothing = client.get(url_of(hosting), {"q": "<b>zz</b>"})
    assert rows(nothing) == [["No suppressed address contains “<b>zz</b>”."]]
    assert "<b>zz</b>" not in nothing.content.decode()  # escaped


def test_a_nul_character_is_no_server_error(owner):
    _user, hosting, client = owner
    suppress(hosting, "a@example.org")
    assert client.get(url_of(hosting), {"q": "a@\x00"}).status_code == 404  # the portal's answer to NUL in a URL
    response = client.post(url_of(hosting), {"remove": "a@example.org\x00"}, follow=True)
    assert flash_messages(response) == ["1 address removed from the suppression list."]


def test_pages_follow_one_another_by_key_without_counting(owner):
    _user, hosting, client = owner
    many(hosting, 2 * PAGE_SIZE + 7)
    # Two entries of the same second on the edge of a page: the id decides, none is lost or repeated.
    edge = Suppression.objects.get(address=f"user{PAGE_SIZE}@example.org")
    Suppression.objects.filter(address=f"user{PAGE_SIZE - 1}@example.org").update(created_at=edge.created_at)

    seen, url, pages = [], url_of(hosting), 0
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        sql = " ".join(query["sql"].upper() for query in captured)
        assert "COUNT(" not in sql and "OFFSET" not in sql
        seen += addresses(response)
        url, pages = next_link(response), pages + 1
        if pages > 1:
            assert dom(response).find("a", href=url_of(hosting)).text == "First page"

    assert pages == 3
    expected = list(
        Suppression.objects.filter(hosting=hosting).order_by("-created_at", "-id").values_list("address", flat=True)
    )
    assert seen == expected
    assert len(set(seen)) == 2 * PAGE_SIZE + 7


def test_pages_keep_the_search(owner):
    _user, hosting, client = owner
    many(hosting, PAGE_SIZE + 5)
    for number in range(PAGE_SIZE + 5):
        suppress(hosting, f"other{number}@elsewhere.example", minutes_ago=number)

    first = client.get(url_of(hosting), {"q": "@example.org"})
    second = client.get(next_link(first))

    assert len(addresses(first)) == PAGE_SIZE and len(addresses(second)) == 5
    assert all(address.endswith("@example.org") for address in addresses(first) + addresses(second))
    assert next_link(second) is None


@pytest.mark.parametrize("cursor", ["x", "1.2.3", "99999999999999999999999.1", "", "-1.abc", "9" * 5000 + ".1"])
def test_a_damaged_page_link_shows_the_first_page(owner, cursor):
    _user, hosting, client = owner
    many(hosting, 3)
    response = client.get(url_of(hosting), {"after": cursor})
    assert response.status_code == 200
    assert addresses(response) == ["user0@example.org", "user1@example.org", "user2@example.org"]


def test_the_page_costs_the_same_few_queries_with_100000_entries(owner, django_assert_max_num_queries):
    _user, hosting, client = owner
    many(hosting, 10)
    client.get(url_of(hosting))
    with CaptureQueriesContext(connection) as few:
        client.get(url_of(hosting))
    many_at = timezone.now() - datetime.timedelta(days=1)
    Suppression.objects.bulk_create(
        (
            Suppression(
                hosting=hosting,
                address=f"bulk{number}@example.net",
                created_at=many_at - datetime.timedelta(seconds=number),
                expires_at=many_at + datetime.timedelta(days=90),
            )
            for number in range(100_000)
        ),
        batch_size=5_000,
    )
    # session, user, hosting, one page of rows (the messages' storage reads nothing more)
    with django_assert_max_num_queries(4):
        response = client.get(url_of(hosting))
    assert len(addresses(response)) == PAGE_SIZE
    with django_assert_max_num_queries(4):
        client.get(next_link(response))
    with django_assert_max_num_queries(4):
        client.get(url_of(hosting), {"q": "bulk99999"})
    assert len(few) <= 4


# --- removing ------------------------------------------------------------------------------------


def test_one_address_is_removed_with_its_row_button(owner):
    user, hosting, client = owner
    suppress(hosting, "marie+news@webmail.example")
    suppress(hosting, "kept@example.org")

    response = client.post(url_of(hosting), {"remove": "marie+news@webmail.example", "q": "webmail"})

    assert response.status_code == 302
    assert response["Location"] == f"{url_of(hosting)}?q=webmail"
    assert list(Suppression.objects.filter(hosting=hosting).values_list("address", flat=True)) == ["kept@example.org"]
    event = Event.objects.get(hosting=hosting)
    assert (event.action, event.actor_kind, event.actor_user, event.message_count) == (
        "unsuppress",
        ActorKind.CUSTOMER,
        user,
        1,
    )
    assert event.detail == "marie+news@webmail.example"
    page = client.get(response["Location"])
    assert flash_messages(page) == ["1 address removed from the suppression list."]


def test_the_row_button_removes_its_address_only_even_with_other_boxes_ticked(owner):
    _user, hosting, client = owner
    for address in ("a@example.org", "b@example.org"):
        suppress(hosting, address)
    client.post(url_of(hosting), {"remove": "a@example.org", "address": ["b@example.org"]})
    assert list(Suppression.objects.values_list("address", flat=True)) == ["b@example.org"]


def test_the_selected_addresses_are_removed_together(owner):
    _user, hosting, client = owner
    for number, address in enumerate(["a@example.org", "b@example.org", "c@example.org"]):
        suppress(hosting, address, minutes_ago=number)

    response = client.post(url_of(hosting), {"address": ["a@example.org", "c@example.org"]}, follow=True)

    assert addresses(response) == ["b@example.org"]
    assert flash_messages(response) == ["2 addresses removed from the suppression list."]
    assert Event.objects.get(hosting=hosting).message_count == 2


def test_removing_keeps_the_page_of_the_list(owner):
    _user, hosting, client = owner
    many(hosting, PAGE_SIZE + 3)
    second_page = next_link(client.get(url_of(hosting)))
    cursor = re.search(r"after=([0-9.]+)", second_page).group(1)

    response = client.post(url_of(hosting), {"remove": f"user{PAGE_SIZE + 1}@example.org", "after": cursor})

    assert response["Location"] == f"{url_of(hosting)}?after={cursor}"
    assert addresses(client.get(response["Location"])) == [
        f"user{PAGE_SIZE}@example.org",
        f"user{PAGE_SIZE + 2}@example.org",
    ]


def test_nothing_selected_says_so_and_changes_nothing(owner):
    _user, hosting, client = owner
    suppress(hosting, "a@example.org")

    response = client.post(url_of(hosting), {"remove_selected": "1"}, follow=True)

    assert flash_messages(response) == ["Select at least one address to remove."]
    assert Suppression.objects.count() == 1
    assert not Event.objects.exists()


def test_an_address_no_longer_listed_is_reported_and_writes_no_event(owner):
    _user, hosting, client = owner
    response = client.post(url_of(hosting), {"remove": "never@example.org"}, follow=True)
    assert flash_messages(response) == ["These addresses were no longer on the list."]
    assert not Event.objects.exists()


def test_removing_needs_the_csrf_token(owner):
    user, hosting, _client = owner
    suppress(hosting, "a@example.org")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.post(url_of(hosting), {"remove": "a@example.org"}).status_code == 403
    assert Suppression.objects.count() == 1


def test_the_remove_buttons_post_with_the_csrf_token(owner):
    _user, hosting, client = owner
    suppress(hosting, "a@example.org")
    form = dom(client.get(url_of(hosting))).find("form", method="post", action=url_of(hosting))
    assert form.find("input", name="csrfmiddlewaretoken") is not None
    assert form.find("button", name="remove", value="a@example.org").text == "Remove"


# --- tenancy --------------------------------------------------------------------------------------


def test_another_customers_list_is_a_404_and_nothing_is_removed(owner, stranger):
    _user, _hosting, client = owner
    _their_user, their_hosting, _their_client = stranger
    suppress(their_hosting, "theirs@example.org")

    assert client.get(url_of(their_hosting)).status_code == 404
    assert client.get(url_of(their_hosting), {"q": "theirs"}).status_code == 404
    assert client.post(url_of(their_hosting), {"remove": "theirs@example.org"}).status_code == 404
    assert client.post(url_of(their_hosting), {"address": ["theirs@example.org"]}).status_code == 404
    unknown = client.get("/hostings/no-such-site.example/emails/suppressions/")
    assert unknown.status_code == 404

    assert Suppression.objects.filter(hosting=their_hosting).count() == 1
    assert not Event.objects.exists()
    assert "theirs@example.org" not in text(client.get(url_of(owner[1])))
