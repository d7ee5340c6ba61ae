"""The operators' lists of what comes back after delivery (SPEC §6, §10.1, §10.2): suppressed
addresses (Operators remove them in bulk through the service, Support only reads), complaints and
unattributed bounces (read-only, their content shown as text), fast on large tables; and the roles
of migration 0014."""

import datetime
import importlib

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailqueue.admin import bounces as bounces_admin
from mailqueue.models import ActorKind, Complaint, Event, Suppression, UnattributedBounce
from tests.admin.conftest import logged_in, page_text, shown_messages, staff_user
from tests.admin.test_admin_roles import cells
from tests.factories import HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db

SUPPRESSIONS_URL = "/admin/mailqueue/suppression/"
COMPLAINTS_URL = "/admin/mailqueue/complaint/"
UNATTRIBUTED_URL = "/admin/mailqueue/unattributedbounce/"
LISTS = [SUPPRESSIONS_URL, COMPLAINTS_URL, UNATTRIBUTED_URL]
MAX_QUERIES = 12  # as the other lists: session, user, permissions, capped count, rows

BOUNCE = (
    b"From: MAILER-DAEMON@mx.example\r\nTo: nobody@portal.example\r\nSubject: Undelivered Mail\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<script>alert('owned')</script><p>Bonjour \xc3\xa9</p>\r\n"
    b"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
    b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b1--\r\n"
)


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"  # the admin's texts in their source language


def english(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


@pytest.fixture
def operator_client():
    return english(logged_in(staff_user("olivia", "Operators")))


@pytest.fixture
def support_client():
    return english(logged_in(staff_user("sam", "Support")))


@pytest.fixture
def superuser_client():
    return english(logged_in(staff_user("root", is_superuser=True)))


def suppress(hosting, address, *, minutes_ago=0, expired=False, reason="550 5.1.1 User unknown"):
    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    days = -1 if expired else settings.SUPPRESSION_DAYS
    return Suppression.objects.create(
        hosting=hosting, address=address, created_at=at, expires_at=at + datetime.timedelta(days=days), reason=reason
    )


@pytest.fixture
def rows():
    shop = HostingFactory(service_name="acme-shop.fr")
    blog = HostingFactory(service_name="acme-blog.fr")
    message = MessageFactory(hosting=shop, subject="Votre commande")
    return {
        "shop": shop,
        "blog": blog,
        "message": message,
        "suppressions": [
            suppress(shop, "jean@webmail.example", minutes_ago=3),
            suppress(shop, "marie+news@webmail.example", minutes_ago=2),
            suppress(blog, "paul@fai.example", minutes_ago=1),
        ],
        "complaint": Complaint.objects.create(
            hosting=shop, message=message, recipient="angry@fai.example", feedback_type="abuse", reporter="FBL/1.0"
        ),
        "unattributed": UnattributedBounce.objects.create(
            problem="unrecognised",
            envelope_sender="MAILER-DAEMON@mx.example",
            envelope_recipients=["bounce+zzz@portal.example", "other@portal.example"],
            subject="Undelivered Mail",
            size=len(BOUNCE),
            raw=BOUNCE,
        ),
    }


def remove(client, suppressions):
    data = {"action": "remove", "_selected_action": [row.pk for row in suppressions], "index": "0"}
    return client.post(SUPPRESSIONS_URL, data, follow=True)


# --- roles ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", LISTS)
def test_support_reads_every_list_and_page(support_client, rows, url):
    assert support_client.get(url).status_code == 200
    row = {SUPPRESSIONS_URL: rows["suppressions"][0], COMPLAINTS_URL: rows["complaint"]}.get(url, rows["unattributed"])
    page = support_client.get(f"{url}{row.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page_text(page)


def test_support_cannot_remove_a_suppression(support_client, rows):
    listing = page_text(support_client.get(SUPPRESSIONS_URL))
    assert 'value="remove"' not in listing
    assert 'name="_selected_action"' not in listing

    response = remove(support_client, rows["suppressions"])

    assert shown_messages(response) == []
    assert Suppression.objects.count() == 3
    assert not Event.objects.exists()


@pytest.mark.parametrize("who", ["operator", "superuser"])
def test_operators_remove_the_selection_through_the_service_per_hosting(operator_client, superuser_client, rows, who):
    client = operator_client if who == "operator" else superuser_client
    listing = page_text(client.get(SUPPRESSIONS_URL))
    assert 'value="remove"' in listing and "Remove the selected addresses" in listing
    assert 'value="delete_selected"' not in listing  # Django's delete would bypass the service and its Event

    response = remove(client, rows["suppressions"][1:])

    assert shown_messages(response) == ["2 addresses removed from the suppression lists of 2 hostings."]
    assert list(Suppression.objects.values_list("address", flat=True)) == ["jean@webmail.example"]
    events = Event.objects.order_by("hosting__service_name")
    assert [(event.hosting, event.action, event.actor_kind, event.detail) for event in events] == [
        (rows["blog"], "unsuppress", ActorKind.OPERATOR, "paul@fai.example"),
        (rows["shop"], "unsuppress", ActorKind.OPERATOR, "marie+news@webmail.example"),
    ]
    assert {event.actor_label for event in events} == {"olivia" if who == "operator" else "root"}


def test_a_large_selection_is_removed_in_batches(operator_client, monkeypatch):
    monkeypatch.setattr(bounces_admin, "REMOVE_BATCH", 2)
    hosting = HostingFactory()
    selection = [suppress(hosting, f"r{number}@example.org") for number in range(5)]

    response = remove(operator_client, selection)

    assert shown_messages(response) == ["5 addresses removed from the suppression list of 1 hosting."]
    assert not Suppression.objects.exists()
    assert sorted(Event.objects.values_list("message_count", flat=True)) == [1, 2, 2]


@pytest.mark.parametrize("url", LISTS)
def test_nobody_adds_changes_or_deletes_the_rows_by_hand(superuser_client, rows, url):
    row = {SUPPRESSIONS_URL: rows["suppressions"][0], COMPLAINTS_URL: rows["complaint"]}.get(url, rows["unattributed"])
    assert f'href="{url}add/"' not in page_text(superuser_client.get(url))
    assert superuser_client.get(f"{url}add/").status_code == 403
    assert superuser_client.post(f"{url}{row.pk}/change/", {"address": "x@example.org"}).status_code == 403
    assert superuser_client.post(f"{url}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    superuser_client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "index": "0", "post": "yes"})
    assert type(row).objects.filter(pk=row.pk).exists()


def test_a_staff_member_without_a_role_sees_none_of_it(rows):
    client = logged_in(staff_user("nobody"))
    for url in LISTS:
        assert client.get(url).status_code == 403


def test_migration_0014_grants_the_roles_and_takes_them_back():
    def codenames(name):
        return set(
            Group.objects.get(name=name)
            .permissions.filter(codename__regex=r"(suppression|complaint|unattributedbounce)$")
            .values_list("codename", flat=True)
        )

    support = {"view_suppression", "view_complaint", "view_unattributedbounce"}
    assert codenames("Support") == support
    assert codenames("Operators") == support | {"delete_suppression"}

    migration = importlib.import_module("mailqueue.migrations.0014_bounce_roles")
    migration.revoke(apps, None)
    assert codenames("Support") == codenames("Operators") == set()
    migration.grant(apps, None)
    assert codenames("Support") == support
    assert codenames("Operators") == support | {"delete_suppression"}
    assert apps.get_app_config("mailqueue").models_module is not True  # the registry left as it was


# --- the lists ------------------------------------------------------------------------------------------


def test_suppressions_list_shows_the_entries_and_filters_them(superuser_client, rows):
    suppress(rows["shop"], "past@example.org", expired=True)

    response = superuser_client.get(SUPPRESSIONS_URL)

    assert cells(response, "address") == [
        "past@example.org",
        "paul@fai.example",
        "marie+news@webmail.example",
        "jean@webmail.example",
    ]
    assert cells(response, "hosting")[1] == "acme-blog.fr"
    assert cells(response, "reason")[0] == "550 5.1.1 User unknown"
    assert len(cells(response, "created_at")) == len(cells(response, "expires_at")) == 4
    in_force = cells(superuser_client.get(SUPPRESSIONS_URL, {"in_force": "yes"}), "address")
    assert "past@example.org" not in in_force and len(in_force) == 3
    assert cells(superuser_client.get(SUPPRESSIONS_URL, {"in_force": "no"}), "address") == ["past@example.org"]


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("webmail", ["marie+news@webmail.example", "jean@webmail.example"]),
        ("MARIE+NEWS@WEBMAIL.EXAMPLE", ["marie+news@webmail.example"]),
        ("acme-blog.fr", ["paul@fai.example"]),
        ("nothing-like-it", []),
    ],
)
def test_suppressions_are_found_by_address_and_service_name(superuser_client, rows, term, found):
    assert cells(superuser_client.get(SUPPRESSIONS_URL, {"q": term}), "address") == found


def test_complaints_list_links_to_the_message_while_it_is_kept(superuser_client, rows):
    gone = Complaint.objects.create(hosting=rows["blog"], message_id=999_999, recipient="other@fai.example")

    response = superuser_client.get(COMPLAINTS_URL)

    assert cells(response, "recipient") == ["other@fai.example", "angry@fai.example"]
    assert cells(response, "feedback_type") == ["-", "abuse"]
    assert cells(response, "reporter") == ["-", "FBL/1.0"]
    assert cells(response, "hosting") == ["acme-blog.fr", "acme-shop.fr"]
    message_url = f"/admin/mailqueue/message/{rows['message'].pk}/change/"
    assert f'<a href="{message_url}">{rows["message"].pk}</a>' in page_text(response)
    assert "deleted (retention)" in page_text(response)
    assert cells(superuser_client.get(COMPLAINTS_URL, {"q": "acme-shop.fr"}), "recipient") == ["angry@fai.example"]
    assert cells(superuser_client.get(COMPLAINTS_URL, {"q": "other@fai.example"}), "recipient") == ["other@fai.example"]
    assert superuser_client.get(f"{COMPLAINTS_URL}{gone.pk}/change/").status_code == 200


def test_unattributed_bounces_are_listed_without_reading_their_content(superuser_client, rows):
    with CaptureQueriesContext(connection) as captured:
        response = superuser_client.get(UNATTRIBUTED_URL)

    assert cells(response, "envelope_sender") == ["MAILER-DAEMON@mx.example"]
    assert cells(response, "recipients") == ["bounce+zzz@portal.example, other@portal.example"]
    assert cells(response, "subject") == ["Undelivered Mail"]
    assert cells(response, "size") == [str(len(BOUNCE))]
    assert cells(response, "problem") == ["not recognised as a bounce"]
    bounce_queries = [query["sql"] for query in captured if "mailqueue_unattributedbounce" in query["sql"]]
    assert bounce_queries and not [sql for sql in bounce_queries if '"raw"' in sql]
    assert cells(superuser_client.get(UNATTRIBUTED_URL, {"problem__exact": "forged"}), "subject") == []


def test_an_unattributed_bounce_shows_its_headers_and_text_never_its_html(support_client, rows):
    response = support_client.get(f"{UNATTRIBUTED_URL}{rows['unattributed'].pk}/change/")

    content = response.content.decode()
    assert "Subject: Undelivered Mail" in page_text(response)
    assert "report-type=delivery-status" in page_text(response)
    assert "<script>alert" not in content and "<p>Bonjour" not in content
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;&lt;p&gt;Bonjour é" in content  # as text
    assert "Final-Recipient: rfc822; gone@example.org" in page_text(response)
    assert "Status: 5.1.1" in page_text(response)


def test_only_the_beginning_of_a_large_bounce_is_shown(superuser_client):
    body = b"".join(b"line %06d of a long report\r\n" % number for number in range(20_000))
    bounce = UnattributedBounce.objects.create(
        problem="no_token", size=len(body) + 30, raw=b"Subject: Long\r\n\r\n" + body, envelope_recipients=[]
    )

    response = superuser_client.get(f"{UNATTRIBUTED_URL}{bounce.pk}/change/")

    assert "line 000000 of a long report" in page_text(response)
    assert "line 019999" not in page_text(response)
    assert len(response.content) < 60_000


def test_a_bounce_that_is_no_message_at_all_still_shows(superuser_client):
    bounce = UnattributedBounce.objects.create(problem="no_token", size=5, raw=b"\xff\xfe\x00garbage", subject="")
    response = superuser_client.get(f"{UNATTRIBUTED_URL}{bounce.pk}/change/")
    assert response.status_code == 200


# --- large tables ---------------------------------------------------------------------------------------


def _bulk(count: int, hostings, *, start: int = 0) -> None:
    now = timezone.now()
    numbers = range(start, start + count)
    Suppression.objects.bulk_create(
        Suppression(
            hosting=hostings[number % len(hostings)],
            address=f"bulk{number}@example.net",
            created_at=now,
            expires_at=now + datetime.timedelta(days=90),
        )
        for number in numbers
    )
    Complaint.objects.bulk_create(
        Complaint(hosting=hostings[number % len(hostings)], recipient=f"c{number}@example.net", message_id=number)
        for number in numbers
    )
    UnattributedBounce.objects.bulk_create(
        UnattributedBounce(problem="no_token", size=10, raw=b"x" * 10, subject=f"b{number}") for number in numbers
    )


@pytest.mark.parametrize("url", LISTS)
def test_lists_cost_the_same_queries_whatever_the_rows_and_never_count_them_all(superuser_client, url):
    hostings = [HostingFactory() for _ in range(3)]
    _bulk(5, hostings)
    superuser_client.get(url)
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(url)

    _bulk(400, hostings + [HostingFactory() for _ in range(30)], start=5)
    with CaptureQueriesContext(connection) as many:
        response = superuser_client.get(url)

    assert response.status_code == 200
    assert len(many) == len(few) <= MAX_QUERIES
    counts = [query["sql"] for query in many if "COUNT(" in query["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts)  # the capped count, never the whole table
