"""GET …/email/suppressions and DELETE …/email/suppressions/{address} (SPEC §10.2): the entries
in force newest first; one removed as the API credential, through the service; the caller's own
hostings only, within its access rules."""

import datetime

import ovh
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.services import api_credentials_create
from mailqueue.models import ActorKind, Event, Suppression
from tests.api.conftest import ApiClient, email_path
from tests.api.test_auth import assert_ovh_error
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db


def suppress(hosting, address, *, minutes_ago=0, reason="550 5.1.1 User unknown", expired=False):
    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    days = -1 if expired else settings.SUPPRESSION_DAYS
    return Suppression.objects.create(
        hosting=hosting, address=address, created_at=at, expires_at=at + datetime.timedelta(days=days), reason=reason
    )


def listed(hosting) -> list[str]:
    return sorted(Suppression.objects.filter(hosting=hosting).values_list("address", flat=True))


def delete(api, hosting, address, **kwargs):
    return api.call("DELETE", email_path(hosting, f"/suppressions/{address}"), **kwargs)


# --- GET ------------------------------------------------------------------------------------------


def test_the_list_is_the_entries_in_force_newest_first(api, hosting, other_hosting):
    older = suppress(hosting, "old@example.org", minutes_ago=30, reason="550 5.1.1 <old@example.org>: User unknown")
    suppress(hosting, "new@example.org", minutes_ago=1)
    suppress(hosting, "past@example.org", expired=True)
    suppress(other_hosting, "theirs@example.org")

    response = api.get(email_path(hosting, "/suppressions"))

    assert response.status_code == 200
    body = response.json()
    assert [item["address"] for item in body] == ["new@example.org", "old@example.org"]
    assert all(set(item) == {"address", "date", "expires", "reason"} for item in body)
    assert datetime.datetime.fromisoformat(body[1]["date"]) == older.created_at
    assert datetime.datetime.fromisoformat(body[1]["expires"]) == older.expires_at
    assert datetime.datetime.fromisoformat(body[1]["date"]).tzinfo is not None
    assert body[1]["reason"] == "550 5.1.1 <old@example.org>: User unknown"


def test_the_list_has_twenty_entries_by_default_and_up_to_the_limit(api, hosting):
    for minutes in range(25):
        suppress(hosting, f"r{minutes}@example.org", minutes_ago=minutes)
    assert [item["address"] for item in api.get(email_path(hosting, "/suppressions")).json()] == [
        f"r{minutes}@example.org" for minutes in range(20)
    ]
    for limit, count in (("1", 1), ("5", 5), ("100", 25)):
        assert len(api.get(email_path(hosting, f"/suppressions?limit={limit}")).json()) == count


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "search=" + "x" * 321])
def test_bad_query_parameters_are_400(api, hosting, query):
    response = api.get(email_path(hosting, f"/suppressions?{query}"))
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


def test_the_search_keeps_the_addresses_containing_it(api, hosting):
    suppress(hosting, "jean.dupont@webmail.example", minutes_ago=2)
    suppress(hosting, "marie+news@webmail.example", minutes_ago=1)
    suppress(hosting, "contact@other.example")

    found = api.get(email_path(hosting, "/suppressions?search=WebMail")).json()

    assert [item["address"] for item in found] == ["marie+news@webmail.example", "jean.dupont@webmail.example"]
    plus = api.get(email_path(hosting, "/suppressions?search=%2Bnews")).json()  # "+" in a query is a space
    assert [item["address"] for item in plus] == ["marie+news@webmail.example"]


def test_the_list_costs_the_same_few_queries_with_many_entries(api, hosting, django_assert_max_num_queries):
    suppress(hosting, "first@example.org")
    api.get(email_path(hosting, "/suppressions"))  # the credential's first use is recorded once
    with CaptureQueriesContext(connection) as few:
        api.get(email_path(hosting, "/suppressions?limit=100"))
    now = timezone.now()
    Suppression.objects.bulk_create(
        Suppression(
            hosting=hosting,
            address=f"bulk{number}@example.net",
            created_at=now - datetime.timedelta(seconds=number),
            expires_at=now + datetime.timedelta(days=90),
        )
        for number in range(5_000)
    )
    with django_assert_max_num_queries(len(few)):
        response = api.get(email_path(hosting, "/suppressions?limit=100"))
    assert len(response.json()) == 100
    assert len(few) <= 6


# --- DELETE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_an_address_with_at_and_plus_is_removed_as_the_credential(api, hosting, auth):
    suppress(hosting, "marie+news@webmail.example")
    suppress(hosting, "kept@example.org")

    response = delete(api, hosting, "marie+news@webmail.example", auth=auth)

    assert response.status_code == 204
    assert response.content == b""
    assert listed(hosting) == ["kept@example.org"]
    event = Event.objects.get(hosting=hosting, action="unsuppress")
    assert (event.actor_kind, event.message_count, event.detail) == (ActorKind.API, 1, "marie+news@webmail.example")
    # The same identity as the API's other writes.
    assert api.put(email_path(hosting), {"email": "ops@example.org"}, auth=auth).status_code == 204
    assert event.actor_label == Event.objects.get(hosting=hosting, action="change_recipient").actor_label
    assert event.actor_label


def test_a_percent_encoded_address_and_another_case_are_the_same_entry(api, hosting):
    suppress(hosting, "jean.dupont@webmail.example")
    assert delete(api, hosting, "Jean.Dupont%40WebMail.example", auth="bearer").status_code == 204
    assert listed(hosting) == []


@pytest.mark.parametrize(
    "address", ["never@example.org", "past@example.org", "theirs@example.org", "a%00b@example.org", "x" * 400]
)
def test_an_address_not_listed_is_a_404_and_changes_nothing(api, hosting, other_hosting, address):
    suppress(hosting, "kept@example.org")
    suppress(hosting, "past@example.org", expired=True)
    suppress(other_hosting, "theirs@example.org")

    response = delete(api, hosting, address, auth="bearer")

    assert response.status_code == 404
    assert set(response.json()) == {"message"}
    assert listed(hosting) == ["kept@example.org", "past@example.org"]
    assert listed(other_hosting) == ["theirs@example.org"]
    assert not Event.objects.exists()


def test_removing_twice_is_a_404_the_second_time(api, hosting):
    suppress(hosting, "a@example.org")
    assert delete(api, hosting, "a@example.org").status_code == 204
    assert delete(api, hosting, "a@example.org").status_code == 404
    assert Event.objects.filter(action="unsuppress").count() == 1


@pytest.mark.parametrize("auth", ["sign", "bearer"])
def test_another_customers_entries_are_the_same_404_as_an_unknown_service(api, other_hosting, auth):
    suppress(other_hosting, "theirs@example.org")
    for method, suffix in (("GET", "/suppressions"), ("DELETE", "/suppressions/theirs@example.org")):
        foreign = api.call(method, email_path(other_hosting, suffix), auth=auth)
        unknown = api.call(method, f"/hosting/web/no-such-site.example/email{suffix}", auth=auth)
        assert foreign.status_code == unknown.status_code == 404
        assert "theirs@example.org" not in foreign.content.decode()
    assert listed(other_hosting) == ["theirs@example.org"]
    assert not Event.objects.exists()


def test_a_session_may_delete_with_its_csrf_token_only(client, owner):
    user, _customer, hosting = owner
    suppress(hosting, "a@example.org")
    client.force_login(user)
    assert client.get(email_path_of(hosting, "/suppressions")).json()[0]["address"] == "a@example.org"
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.delete(email_path_of(hosting, "/suppressions/a@example.org")).status_code == 403
    assert listed(hosting) == ["a@example.org"]


def email_path_of(hosting, suffix) -> str:
    return "/1.0" + email_path(hosting, suffix)


# --- access rules ---------------------------------------------------------------------------------


def test_a_read_only_credential_lists_but_cannot_remove(client, owner, hosting):
    suppress(hosting, "a@example.org")
    reader = ApiClient(
        client, api_credentials_create(customer=owner[1], access_rules=[{"method": "GET", "path": "/hosting/web/*"}])
    )
    for auth in ("sign", "bearer"):
        assert reader.get(email_path(hosting, "/suppressions"), auth=auth).status_code == 200
        assert_ovh_error(delete(reader, hosting, "a@example.org", auth=auth), 403, "NOT_GRANTED_CALL")
    assert listed(hosting) == ["a@example.org"]
    assert not Event.objects.exists()


def test_a_credential_granted_deletes_only_removes_but_cannot_list(client, owner, hosting):
    suppress(hosting, "a@example.org")
    rules = [{"method": "DELETE", "path": "/hosting/web/*/email/suppressions/*"}]
    remover = ApiClient(client, api_credentials_create(customer=owner[1], access_rules=rules))
    assert_ovh_error(remover.get(email_path(hosting, "/suppressions")), 403, "NOT_GRANTED_CALL")
    assert_ovh_error(remover.call("DELETE", email_path(hosting, "/bounces")), 403, "NOT_GRANTED_CALL")
    assert delete(remover, hosting, "a@example.org").status_code == 204
    assert listed(hosting) == []


# --- the official client ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_ovh_client_lists_and_removes_an_address_with_plus(live_server, monkeypatch):
    hosting = HostingFactory(service_name="client-shop.example")
    suppress(hosting, "marie+news@webmail.example")
    credentials = api_credentials_create(customer=hosting.customer)
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-test", f"{live_server.url}/1.0")
    client = ovh.Client(
        endpoint="portal-test",
        application_key=credentials.application_key,
        application_secret=credentials.application_secret,
        consumer_key=credentials.consumer_key,
    )
    base = f"/hosting/web/{hosting.service_name}/email/suppressions"

    assert [item["address"] for item in client.get(base, search="+news")] == ["marie+news@webmail.example"]
    assert client.delete(f"{base}/marie+news@webmail.example") is None
    assert client.get(base) == []
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.delete(f"{base}/marie+news@webmail.example")
