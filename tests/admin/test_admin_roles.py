"""Who may do what in the operators' admin (SPEC §6): Support reads, Operators act.

Also what the admin never shows (a message's content), how messages are found, and the
rows that only the product's services write (no add, change or delete for anyone).
"""

import re

import pytest

from hosting.models import Customer, Hosting
from mailqueue.blocking import mail_service_block
from mailqueue.models import DeliveryError, Event, MailService, Message, MessageStatus, RecipientStatus
from mailqueue.state import Actor
from reports.models import ErrorDigest
from tests.admin.conftest import HOSTINGS_URL, page_text, run_action, run_confirmed_action, shown_messages
from tests.factories import (
    CustomerFactory,
    DeliveryErrorFactory,
    ErrorDigestFactory,
    EventFactory,
    HostingFactory,
    MembershipFactory,
    MessageFactory,
)

pytestmark = pytest.mark.django_db

SECRET_BODY = "Le code confidentiel est 7431-ZEBRA"


@pytest.fixture
def one_of_each():
    """One row of every model the admin lists, all about the same hosting."""
    customer = CustomerFactory(slug="acme", name="ACME SARL")
    hosting = HostingFactory(service_name="acme-shop.fr", customer=customer)
    message = MessageFactory(
        hosting=hosting,
        subject="Votre commande",
        raw=f"Subject: Votre commande\r\n\r\n{SECRET_BODY}\r\n".encode(),
    )
    return {
        "hosting": hosting,
        "customer": customer,
        "message": message,
        "deliveryerror": DeliveryErrorFactory(hosting=hosting, message=message, recipient="gone@nowhere.example"),
        "event": EventFactory(hosting=hosting, actor_label="system"),
        "errordigest": ErrorDigestFactory(hosting=hosting, recipient="reports@acme.example"),
    }


PAGES = [
    ("hosting", "/admin/hosting/hosting/", "acme-shop.fr"),
    ("customer", "/admin/hosting/customer/", "acme"),
    ("message", "/admin/mailqueue/message/", "Votre commande"),
    ("deliveryerror", "/admin/mailqueue/deliveryerror/", "gone@nowhere.example"),
    ("event", "/admin/mailqueue/event/", "acme-shop.fr"),
    ("errordigest", "/admin/reports/errordigest/", "reports@acme.example"),
]


def cells(response, column: str) -> list[str]:
    """The texts of one column of a changelist, top to bottom."""
    pattern = rf'<(?:td|th) class="field-{column}[^"]*">(?:<a [^>]*>)?(.*?)(?:</a>)?</(?:td|th)>'
    return [text.strip() for text in re.findall(pattern, page_text(response), re.S)]


# --- Support: sees everything, changes nothing ------------------------------------------------------


@pytest.mark.parametrize(("model", "url", "shown"), PAGES, ids=[page[0] for page in PAGES])
def test_support_sees_every_list_and_page(support_client, one_of_each, model, url, shown):
    listing = support_client.get(url)
    assert listing.status_code == 200
    assert shown in page_text(listing)

    page = support_client.get(f"{url}{one_of_each[model].pk}/change/")
    assert page.status_code == 200
    assert shown in page_text(page)
    assert 'name="_save"' not in page_text(page)  # read-only: no save button


def test_support_is_offered_no_action_and_cannot_post_one(support_client, one_of_each):
    hosting = one_of_each["hosting"]
    assert 'value="block"' not in page_text(support_client.get(HOSTINGS_URL))

    for action in ("block", "block_spam", "purge", "change_recipient", "set_limit"):
        response = run_action(support_client, action, [hosting])
        assert response.status_code == 200
        assert shown_messages(response) == []  # the list again: no action ran, none is announced

    assert MailService.objects.get(hosting=hosting).state == "active"
    assert not Event.objects.filter(hosting=hosting).exclude(pk=one_of_each["event"].pk).exists()


def test_support_cannot_unblock(support_client):
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("setup"))

    run_action(support_client, "unblock", [hosting])

    assert MailService.objects.get(hosting=hosting).state == "blocked"
    assert Event.objects.filter(hosting=hosting).count() == 1  # the setup's block only


def test_support_cannot_change_a_hosting_or_a_customer(support_client, one_of_each):
    hosting, customer = one_of_each["hosting"], one_of_each["customer"]

    response = support_client.post(
        f"/admin/hosting/hosting/{hosting.pk}/change/",
        {"service_name": "stolen.example", "customer": customer.pk, "plan": "performance"},
    )
    assert response.status_code == 403
    hosting.refresh_from_db()
    assert (hosting.service_name, hosting.plan) == ("acme-shop.fr", "perso")

    response = support_client.post(
        f"/admin/hosting/customer/{customer.pk}/change/",
        {"slug": "acme", "name": "Renamed", "contact_email": "x@example.org", "language": "en"},
    )
    assert response.status_code == 403
    assert Customer.objects.get(pk=customer.pk).name == "ACME SARL"

    assert support_client.get("/admin/hosting/hosting/add/").status_code == 403
    assert support_client.post(f"/admin/hosting/hosting/{hosting.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Hosting.objects.filter(pk=hosting.pk).exists()


# --- Operators: act through the services, but edit no field ------------------------------------------


def test_operator_is_offered_the_actions_and_runs_them(operator_client, operator):
    hosting = HostingFactory()
    listing = page_text(operator_client.get(HOSTINGS_URL))
    for action in ("block", "block_spam", "unblock", "purge", "cancel_purge", "change_recipient", "set_limit"):
        assert f'value="{action}"' in listing
    assert 'value="delete_selected"' not in listing

    response = run_confirmed_action(operator_client, "block", [hosting])

    assert shown_messages(response) == ["Envoi bloqué pour 1 hébergement."]
    assert MailService.objects.get(hosting=hosting).state == "blocked"
    assert Event.objects.get(hosting=hosting).actor_user == operator


def test_operator_cannot_edit_fields(operator_client):
    hosting = HostingFactory(plan="perso")

    response = operator_client.post(
        f"/admin/hosting/hosting/{hosting.pk}/change/",
        {"service_name": hosting.service_name, "customer": hosting.customer_id, "plan": "performance"},
    )

    assert response.status_code == 403
    hosting.refresh_from_db()
    assert hosting.plan == "perso"


# --- customers stay out -----------------------------------------------------------------------------


def test_a_customer_user_is_sent_to_the_admin_login(client):
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    client.force_login(membership.user)

    for url in (HOSTINGS_URL, f"{HOSTINGS_URL}{hosting.pk}/change/", "/admin/mailqueue/message/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")

    response = client.post(HOSTINGS_URL, {"action": "block", "_selected_action": [hosting.pk], "index": "0"})
    assert response.status_code == 302
    assert MailService.objects.get(hosting=hosting).state == "active"
    assert not Event.objects.filter(hosting=hosting).exists()


# --- messages: never the content; found by service, message-id and recipient ---------------------------


def test_the_message_content_is_never_shown(superuser_client, support_client, one_of_each):
    message = one_of_each["message"]
    assert SECRET_BODY.encode() in bytes(Message.objects.get(pk=message.pk).raw)  # the content is stored

    for client in (superuser_client, support_client):
        for url in ("/admin/mailqueue/message/", f"/admin/mailqueue/message/{message.pk}/change/"):
            response = client.get(url)
            assert response.status_code == 200
            assert "Votre commande" in page_text(response)
            assert "7431-ZEBRA" not in page_text(response)


def _recipients(*addresses):
    return [{"address": address, "status": RecipientStatus.PENDING, "code": None, "reply": ""} for address in addresses]


@pytest.fixture
def searchable():
    shop, blog = HostingFactory(service_name="shop.example"), HostingFactory(service_name="blog.example")
    HostingFactory(service_name="shop.example.org")  # a longer name: an exact search must not find it
    MessageFactory(hosting=shop, subject="alpha", message_id="<alpha@shop.example>", recipients=_recipients("a@x.fr"))
    MessageFactory(
        hosting=shop, subject="beta", message_id="<beta@shop.example>", recipients=_recipients("a@x.fr", "b@y.fr")
    )
    MessageFactory(hosting=blog, subject="gamma", message_id="<gamma@blog.example>", recipients=_recipients("c@z.fr"))
    MessageFactory(
        hosting=blog,
        subject="delta",
        message_id="<delta@blog.example>",
        recipients=_recipients("b@y.fr"),
        status=MessageStatus.HELD,
    )


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ({"q": "shop.example"}, ["beta", "alpha"]),
        ({"q": "blog.example"}, ["delta", "gamma"]),
        ({"q": "<gamma@blog.example>"}, ["gamma"]),
        ({"q": "<gamma@blog"}, []),  # message-id: exact only
        ({"q": "gamma@blog.example"}, ["gamma"]),  # message-id pasted without its brackets
        ({"q": "b@y.fr"}, ["delta", "beta"]),
        ({"q": "c@z.fr"}, ["gamma"]),
        ({"q": "b@y.fr", "status__exact": "held"}, ["delta"]),  # the filter still applies
        ({"q": "nobody@nowhere.fr"}, []),
    ],
)
def test_messages_are_found_by_service_message_id_and_recipient(superuser_client, searchable, query, subjects):
    response = superuser_client.get("/admin/mailqueue/message/", query)

    assert response.status_code == 200
    assert cells(response, "subject") == subjects


def test_hostings_are_found_by_service_name_and_customer(superuser_client):
    HostingFactory(service_name="shop.example", customer=CustomerFactory(slug="acme"))
    HostingFactory(service_name="blog.example", customer=CustomerFactory(slug="globex"))

    assert cells(superuser_client.get(HOSTINGS_URL, {"q": "shop"}), "service_name") == ["shop.example"]
    assert cells(superuser_client.get(HOSTINGS_URL, {"q": "globex"}), "service_name") == ["blog.example"]


# --- rows written only by the services ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "model", "key"),
    [
        ("/admin/mailqueue/message/", Message, "message"),
        ("/admin/mailqueue/deliveryerror/", DeliveryError, "deliveryerror"),
        ("/admin/mailqueue/event/", Event, "event"),
        ("/admin/reports/errordigest/", ErrorDigest, "errordigest"),
    ],
)
def test_service_written_rows_have_no_add_change_or_delete(superuser_client, one_of_each, url, model, key):
    row = one_of_each[key]
    listing = page_text(superuser_client.get(url))
    assert f'href="{url}add/"' not in listing
    assert 'value="delete_selected"' not in listing

    assert superuser_client.get(f"{url}add/").status_code == 403
    assert superuser_client.post(f"{url}add/", {}).status_code == 403
    change_page = superuser_client.get(f"{url}{row.pk}/change/")
    assert change_page.status_code == 200
    assert 'name="_save"' not in page_text(change_page)
    assert superuser_client.post(f"{url}{row.pk}/change/", {"subject": "x"}).status_code == 403
    assert superuser_client.post(f"{url}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    superuser_client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "index": "0", "post": "yes"})

    assert model.objects.filter(pk=row.pk).exists()
