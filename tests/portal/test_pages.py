"""The portal's pages as a customer sees them: hosting list, hosting page, Scripts e-mail page."""

import datetime

import pytest
from django.utils import formats, timezone, translation
from django.utils.translation import pgettext

from mailqueue.blocking import mail_service_block
from mailqueue.models import ErrorKind, MailService, MessageStatus
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.factories import (
    DailyCounterFactory,
    DeliveryErrorFactory,
    HostingFactory,
    MembershipFactory,
    MessageFactory,
    UserFactory,
)
from tests.portal.pages import dom, facts, text

pytestmark = pytest.mark.django_db

INFO = "Cette page ne concerne que les e-mails envoyés depuis des scripts CGI/PERL/PHP."


def emails_url(hosting) -> str:
    return f"/hostings/{hosting.service_name}/emails/"


def local(value: datetime.datetime, fmt: str) -> str:
    with translation.override("fr"):
        return formats.date_format(timezone.localtime(value), fmt)


def block(tenant):
    mail_service_block(hosting=tenant.hosting, actor=Actor.customer(tenant.user))


def purge(tenant):
    block(tenant)
    mail_service_purge_request(hosting=tenant.hosting, actor=Actor.customer(tenant.user))
    return MailService.objects.get(hosting=tenant.hosting)


# --- `/` ------------------------------------------------------------------------------------


def test_home_lists_exactly_the_users_hostings_with_their_state(tenant, stranger):
    blocked = HostingFactory(customer=tenant.customer, service_name="b-blocked.example")
    purging = HostingFactory(customer=tenant.customer, service_name="c-purging.example")
    user = Actor.customer(tenant.user)
    mail_service_block(hosting=blocked, actor=user)
    mail_service_block(hosting=purging, actor=user)
    mail_service_purge_request(hosting=purging, actor=user)

    response = tenant.client.get("/")

    assert response.status_code == 200
    rows = {row.find("a").text: row.find_all("td")[3].text for row in dom(response).find("tbody").find_all("tr")}
    assert rows == {
        tenant.hosting.service_name: "Actif",
        "b-blocked.example": "Inactif — bloqué par le client",
        "c-purging.example": "Purge",  # the block's reason is no longer the news
    }
    assert stranger.hosting.service_name not in text(response)
    link = dom(response).find("a", href=f"/hostings/{tenant.hosting.service_name}/")
    assert link is not None


def test_home_of_a_member_of_two_customers_shows_both(tenant, stranger):
    MembershipFactory(user=tenant.user, customer=stranger.customer)

    names = [row.find("a").text for row in dom(tenant.client.get("/")).find("tbody").find_all("tr")]

    assert names == sorted([tenant.hosting.service_name, stranger.hosting.service_name])


def test_home_of_a_user_without_customer_is_empty(client):
    client.force_login(UserFactory())

    response = client.get("/")

    assert response.status_code == 200
    assert "Aucun hébergement." in text(response)


# --- `/hostings/<sn>/` ---------------------------------------------------------------------------


def test_hosting_page_has_the_plus_menu_leading_to_scripts_email(tenant):
    response = tenant.client.get(f"/hostings/{tenant.hosting.service_name}/")

    assert response.status_code == 200
    page = dom(response)
    assert page.find("h1").text == tenant.hosting.service_name
    menu = page.find("details", class_="menu")
    assert menu.find("summary").text == "Plus +"
    link = menu.find("a", href=emails_url(tenant.hosting))
    assert link is not None and link.text == "Scripts e-mail"
    assert menu.find("a", href=f"/hostings/{tenant.hosting.service_name}/smtp/") is not None


# --- `/hostings/<sn>/emails/` -----------------------------------------------------------------------


def test_emails_page_of_an_active_service(tenant):
    response = tenant.client.get(emails_url(tenant.hosting))

    assert response.status_code == 200
    page = dom(response)
    assert page.find("h1").text == "Scripts e-mail"
    assert page.find("p", class_="info").text == INFO
    shown = facts(response)
    assert shown["État du service\u00a0:"] == "Actif"
    assert page.find("span", class_="badge-active").text == "Actif"
    assert shown["Rapport d'erreurs à\u00a0:"] == f"{tenant.customer.contact_email} Changer le destinataire"
    link = page.find("a", href=f"{emails_url(tenant.hosting)}recipient/")
    assert link.text == "Changer le destinataire"
    assert shown["Total des e-mails envoyés\u00a0:"] == "0 (depuis la mise en service\u202f; 0 ces 30 derniers jours)"
    assert shown["E-mails envoyés aujourd’hui\u00a0:"] == "0 (limite\u00a0: 100 par heure)"
    assert shown["Total des e-mails en erreur\u00a0:"] == "0 (depuis la mise en service\u202f; 0 ces 30 derniers jours)"
    assert shown["E-mails en attente\u00a0:"] == "aucun"
    assert "Aucun e-mail en erreur." in text(response)


def test_emails_page_shows_the_reason_of_a_block(tenant):
    mail_service_block(hosting=tenant.hosting, actor=Actor.operator(UserFactory()), reason="spam")

    response = tenant.client.get(emails_url(tenant.hosting))

    assert facts(response)["État du service\u00a0:"] == "Inactif — envoi abusif (spam)"  # no parentheses in parentheses
    assert dom(response).find("span", class_="badge-blocked").text == "Inactif"


def test_emails_page_shows_the_progress_and_expected_end_of_a_purge(tenant):
    service = purge(tenant)
    due, end = service.purge_due_at, service.purge_requested_at + datetime.timedelta(minutes=10)

    response = tenant.client.get(emails_url(tenant.hosting))

    state = facts(response)["État du service\u00a0:"]
    assert state.startswith("Purge ")
    assert "bloqué par le client" not in state
    assert f"La suppression commencera à {local(due, 'H:i')}." in state
    assert f"Fin prévue au plus tard à {local(end, 'H:i')}." in state
    assert dom(response).find("section", id="service").attrs["data-status-url"].endswith("/emails/status.json")

    MailService.objects.filter(hosting=tenant.hosting).update(purge_started_at=timezone.now(), purge_deleted=12)
    state = facts(tenant.client.get(emails_url(tenant.hosting)))["État du service\u00a0:"]
    assert "Suppression en cours\u00a0: 12 e-mails supprimés." in state
    assert f"Fin prévue au plus tard à {local(end, 'H:i')}." in state


def test_emails_page_shows_the_chosen_recipient(tenant):
    MailService.objects.filter(hosting=tenant.hosting).update(report_recipient="errors@shop.example")

    shown = facts(tenant.client.get(emails_url(tenant.hosting)))

    assert shown["Rapport d'erreurs à\u00a0:"].startswith("errors@shop.example ")


def test_emails_page_counters_come_from_the_daily_counters(tenant):
    today = timezone.localdate()
    DailyCounterFactory(hosting=tenant.hosting, day=today, sent=12, errors=2)
    DailyCounterFactory(hosting=tenant.hosting, day=today - datetime.timedelta(days=1), sent=30, errors=5)
    DailyCounterFactory(hosting=tenant.hosting, day=today - datetime.timedelta(days=40), sent=100, errors=1)
    DailyCounterFactory(day=today, sent=999, errors=999)  # another hosting's
    DeliveryErrorFactory.create_batch(3, hosting=tenant.hosting)  # the rows are not what is counted

    shown = facts(tenant.client.get(emails_url(tenant.hosting)))

    # The totals since the start beside the 30 days of the chart, each saying which it is.
    since = "depuis la mise en service\u202f;"
    assert shown["Total des e-mails envoyés\u00a0:"] == f"142 ({since} 42 ces 30 derniers jours)"
    assert shown["E-mails envoyés aujourd’hui\u00a0:"] == "12 (limite\u00a0: 100 par heure)"
    assert shown["Total des e-mails en erreur\u00a0:"] == "8 (depuis la mise en service\u202f; 7 ces 30 derniers jours)"


def test_emails_page_shows_an_operators_hourly_limit(tenant):
    MailService.objects.filter(hosting=tenant.hosting).update(hourly_limit_override=7)

    shown = facts(tenant.client.get(emails_url(tenant.hosting)))

    assert shown["E-mails envoyés aujourd’hui\u00a0:"] == "0 (limite\u00a0: 7 par heure)"


def test_emails_page_counters_use_the_french_thousands_separator(tenant, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    DailyCounterFactory(hosting=tenant.hosting, sent=1234567, errors=12345)
    with translation.override("fr"):
        sent, errors = formats.number_format(1234567), formats.number_format(12345)
    assert sent not in ("1234567", "1,234,567")  # the French grouping, not none nor the English one

    shown = facts(tenant.client.get(emails_url(tenant.hosting)))

    assert shown["Total des e-mails envoyés\u00a0:"].startswith(f"{sent} (")
    assert shown["Total des e-mails en erreur\u00a0:"].startswith(f"{errors} (")


def test_emails_page_summarises_the_held_queue(tenant):
    block(tenant)
    now = timezone.now()
    oldest = now - datetime.timedelta(hours=50)
    for held_at in (oldest, now - datetime.timedelta(hours=2), now):
        MessageFactory(
            hosting=tenant.hosting,
            status=MessageStatus.HELD,
            held_at=held_at,
            held_until=held_at + datetime.timedelta(hours=72),
        )
    MessageFactory(hosting=tenant.hosting, status=MessageStatus.SENT)
    MessageFactory(status=MessageStatus.HELD)  # another hosting's

    held = facts(tenant.client.get(emails_url(tenant.hosting)))["E-mails en attente\u00a0:"]

    expiry = oldest + datetime.timedelta(hours=72)
    assert held == (
        f"3 — le plus ancien reçu le {local(oldest, 'SHORT_DATETIME_FORMAT')}, "
        f"prochaine expiration le {local(expiry, 'SHORT_DATETIME_FORMAT')}"
    )


def test_emails_page_draws_thirty_days_of_history_as_svg(tenant):
    today = timezone.localdate()
    DailyCounterFactory(hosting=tenant.hosting, day=today, sent=12, errors=2)
    DailyCounterFactory(hosting=tenant.hosting, day=today - datetime.timedelta(days=29), sent=7, errors=1)
    DailyCounterFactory(hosting=tenant.hosting, day=today - datetime.timedelta(days=30), sent=500, errors=50)

    response = tenant.client.get(emails_url(tenant.hosting))

    page = dom(response)
    headings = [heading.text for heading in page.find_all("h2")]
    assert "Historique des e-mails envoyés" in headings
    svg = page.find("svg")
    assert svg.attrs["role"] == "img"
    assert svg.find("title").text == "Historique des e-mails envoyés"
    assert len(svg.find_all("rect", class_="sent")) == 30
    assert len(svg.find_all("circle", class_="errors")) == 30  # a line on its own axis: 2 errors stay visible
    heights = [float(rect.attrs["height"]) for rect in svg.find_all("rect", class_="sent")]
    assert heights[-1] > heights[0] > 0  # today's 12 above the first day's 7; the 500 is outside
    assert sum(1 for height in heights if height > 0) == 2
    # Round steps: the top tick of the sent axis is 20, not the peak of 12; of the errors, 4 (not 2).
    ticks = [text.text for text in svg.find_all("text", class_="tick") if "tick-errors" not in text.attrs["class"]]
    errors_ticks = [text.text for text in svg.find_all("text", class_="tick-errors")]
    assert ticks[:5] == ["0", "5", "10", "15", "20"]
    assert errors_ticks == ["0", "1", "2", "3", "4"]
    assert page.find("svg", **{"aria-labelledby": "chart-title-narrow chart-desc-narrow"}) is not None
    assert "30 derniers jours\u00a0: 19 envoyés, 3 en erreur." in text(response)
    rows = page.find("details").find("tbody").find_all("tr")
    assert len(rows) == 30
    with translation.override("fr"):
        first_day = formats.date_format(today - datetime.timedelta(days=29), "SHORT_DATE_FORMAT")
        last_day = formats.date_format(today, "SHORT_DATE_FORMAT")
    assert [cell.text for cell in rows[0].find_all("td")] == [first_day, "7", "1"]
    assert [cell.text for cell in rows[-1].find_all("td")] == [last_day, "12", "2"]


def _errors(hosting, count):
    now = timezone.now()
    return [
        DeliveryErrorFactory(
            hosting=hosting,
            recipient=f"nobody{index}@example.org",
            reply=f"550 5.1.1 <nobody{index}@example.org> User unknown",
            created_at=now - datetime.timedelta(minutes=index),
        )
        for index in range(count)
    ]


def _error_rows(response) -> list[list[str]]:
    table = next(t for t in dom(response).find_all("table") if "Message" in t.find("thead").text)
    return [[cell.text for cell in row.find_all("td")] for row in table.find("tbody").find_all("tr")]


def test_errors_table_shows_the_newest_twenty_by_default(tenant, stranger):
    errors = _errors(tenant.hosting, 25)
    _errors(stranger.hosting, 3)

    response = tenant.client.get(emails_url(tenant.hosting))

    rows = _error_rows(response)
    assert len(rows) == 20
    assert rows[0][:3] == [local(errors[0].created_at, "SHORT_DATETIME_FORMAT"), errors[0].recipient, errors[0].reply]
    assert [row[1] for row in rows] == [error.recipient for error in errors[:20]]
    table = next(t for t in dom(response).find_all("table") if "Message" in t.find("thead").text)
    assert [cell.text for cell in table.find("thead").find_all("th")][:3] == ["Date", "E-mail", "Message"]
    assert len(table.find("thead").find_all("th")) == 4  # and the error's type
    limit = dom(response).find("input", name="limit")
    assert limit.attrs["value"] == "20"
    assert dom(response).find("label", for_=limit.attrs["id"]).text == "Nombre d’e-mails (max 100)\u00a0:"


@pytest.mark.parametrize(("limit", "shown"), [("1", 1), ("5", 5), ("100", 25)])
def test_errors_table_honours_the_limit(tenant, limit, shown):
    _errors(tenant.hosting, 25)

    response = tenant.client.get(emails_url(tenant.hosting), {"limit": limit})

    assert response.status_code == 200
    assert len(_error_rows(response)) == shown
    assert dom(response).find("input", name="limit").attrs["value"] == limit


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-5", "", "2.5"])
def test_errors_table_refuses_a_bad_limit_with_a_clear_message(tenant, limit):
    _errors(tenant.hosting, 25)

    response = tenant.client.get(emails_url(tenant.hosting), {"limit": limit})

    assert response.status_code == 400
    alert = dom(response).find(role="alert")
    assert alert.text == "Le nombre d’e-mails doit être un entier entre 1 et 100."
    field = dom(response).find("input", name="limit")
    assert field.attrs["aria-invalid"] == "true" and field.attrs["aria-describedby"] == alert.attrs["id"]
    assert len(_error_rows(response)) == 20  # the page stays usable with the default


def test_each_error_says_whether_it_is_permanent_and_where_it_came_from(tenant):
    now = timezone.now()
    kinds = [(ErrorKind.RELAY, True), (ErrorKind.DSN, False), (ErrorKind.SUPPRESSED, True)]
    for minutes, (kind, permanent) in enumerate(kinds):
        DeliveryErrorFactory(
            hosting=tenant.hosting, kind=kind, permanent=permanent, created_at=now - datetime.timedelta(minutes=minutes)
        )

    response = tenant.client.get(emails_url(tenant.hosting))

    with translation.override("fr"):
        permanent, temporary = pgettext("delivery error", "permanent"), pgettext("delivery error", "temporary")
        expected = [
            f"{permanent} {ErrorKind.RELAY.label}",
            f"{temporary} {ErrorKind.DSN.label}",
            f"{permanent} {ErrorKind.SUPPRESSED.label}",
        ]
    assert [row[3] for row in _error_rows(response)] == expected
    cells = dom(response).find_all("td", class_="error-kind")
    assert [(cell.attrs["data-kind"], cell.attrs["data-permanent"]) for cell in cells] == [
        ("relay", "true"),
        ("dsn", "false"),
        ("suppressed", "true"),
    ]


def test_an_unrelated_query_parameter_is_not_a_bad_limit(tenant):
    response = tenant.client.get(emails_url(tenant.hosting), {"utm_source": "newsletter"})

    assert response.status_code == 200
    assert dom(response).find(role="alert") is None


# --- status.json ------------------------------------------------------------------------------------


def test_status_json_follows_the_service(tenant):
    url = f"{emails_url(tenant.hosting)}status.json"

    assert tenant.client.get(url).json() == {
        "state": "active",
        "label": "Actif",
        "purge_started": False,
        "purge_deleted": 0,
    }
    purge(tenant)
    assert tenant.client.get(url).json()["state"] == "purging"
    MailService.objects.filter(hosting=tenant.hosting).update(purge_started_at=timezone.now(), purge_deleted=40)
    response = tenant.client.get(url)
    assert response.json() == {"state": "purging", "label": "Purge", "purge_started": True, "purge_deleted": 40}
    assert "no-store" in response["Cache-Control"]


def test_pages_accept_only_get(tenant):
    for url in (
        "/",
        f"/hostings/{tenant.hosting.service_name}/",
        emails_url(tenant.hosting),
        f"{emails_url(tenant.hosting)}status.json",
    ):
        assert tenant.client.post(url).status_code == 405, url


# --- language ---------------------------------------------------------------------------------------


def test_french_is_the_default_language(tenant):
    response = tenant.client.get(emails_url(tenant.hosting))

    assert dom(response).find("html").attrs["lang"] == "fr"


def test_the_language_switch_serves_the_pages_in_english(tenant):
    page = tenant.client.get(emails_url(tenant.hosting))
    switch = next(form for form in dom(page).find_all("form") if form.attrs.get("action") == "/i18n/setlang/")
    assert {option.attrs["value"] for option in switch.find_all("option")} == {"fr", "en"}
    assert switch.find("input", name="next").attrs["value"] == emails_url(tenant.hosting)

    response = tenant.client.post("/i18n/setlang/", {"language": "en", "next": emails_url(tenant.hosting)})

    assert response.status_code == 302
    assert response["Location"] == emails_url(tenant.hosting)
    for url in ("/", emails_url(tenant.hosting)):
        response = tenant.client.get(url)
        assert response.status_code == 200
        assert dom(response).find("html").attrs["lang"] == "en"
    assert dom(response).find("select", name="language").find("option", selected=True).attrs["value"] == "en"
