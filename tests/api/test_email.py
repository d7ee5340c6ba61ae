"""GET/PUT …/email, POST …/email/request, GET …/email/bounces and …/email/volumes (SPEC §7)."""

import datetime
import time

import pytest
from django.utils import timezone

from mailqueue.blocking import mail_service_auto_block, mail_service_block
from mailqueue.models import BlockReason, DailyCounter, Event, MailService, MessageStatus, State
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.api.conftest import email_path
from tests.factories import DailyCounterFactory, DeliveryErrorFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


def service_of(hosting) -> MailService:
    return MailService.objects.get(hosting=hosting)


def test_auth_time_is_public_and_current(client):
    response = client.get("/1.0/auth/time")
    assert response.status_code == 200
    assert isinstance(response.json(), int)
    assert abs(response.json() - time.time()) <= 2


def test_hosting_list_is_exactly_the_callers_services(api, owner, other_hosting):
    from tests.factories import HostingFactory

    second = HostingFactory(customer=owner[1], service_name="aaa-first.example")
    response = api.get("/hosting/web")
    assert response.status_code == 200
    assert response.json() == sorted([owner[2].service_name, second.service_name])


def test_hosting_detail(api, hosting):
    response = api.get(f"/hosting/web/{hosting.service_name}")
    assert response.status_code == 200
    # OVH's hosting.web.Service names (SPEC §9.2), for what the platform has.
    assert response.json() == {
        "serviceName": hosting.service_name,
        "displayName": hosting.service_name,
        "offer": hosting.plan,
        "state": "active",
        "primaryLogin": hosting.service_name,
    }


def test_email_summary_fields(api, hosting):
    today = timezone.localdate()
    DailyCounterFactory(hosting=hosting, day=today, sent=7, errors=2)
    DailyCounterFactory(hosting=hosting, day=today - datetime.timedelta(days=3), sent=5, errors=1)
    service = service_of(hosting)
    service.report_recipient = "reports@example.net"
    service.save()
    response = api.get(email_path(hosting))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"bounce", "email", "maxPerDay", "sent", "sentToday", "state"}
    assert body["bounce"] == 3
    assert body["sent"] == 12
    assert body["sentToday"] == 7
    assert body["email"] == "reports@example.net"
    assert body["maxPerDay"] == service.hourly_limit * 24 > 0
    assert body["state"] == "ok"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (None, "ok"),
        (lambda hosting, operator: mail_service_block(hosting=hosting, actor=Actor.customer(operator)), "ko"),
        (lambda hosting, operator: mail_service_block(hosting=hosting, actor=Actor.operator(operator)), "ko"),
        (lambda hosting, operator: mail_service_auto_block(hosting=hosting, reason=BlockReason.RATE), "ko"),
        (lambda hosting, operator: mail_service_auto_block(hosting=hosting, reason=BlockReason.BOUNCE), "bounce"),
        (
            lambda hosting, operator: mail_service_block(
                hosting=hosting, actor=Actor.operator(operator), reason="spam"
            ),
            "spam",
        ),
        (
            lambda hosting, operator: (
                mail_service_block(hosting=hosting, actor=Actor.customer(operator)),
                mail_service_purge_request(hosting=hosting, actor=Actor.customer(operator)),
            ),
            "purging",
        ),
    ],
    ids=["active", "customer", "operator", "rate", "bounce", "spam", "purging"],
)
def test_email_state_uses_ovh_values(api, hosting, block, expected):
    if block is not None:
        block(hosting, UserFactory())
    assert api.get(email_path(hosting)).json()["state"] == expected


def test_put_email_changes_recipient_with_api_event(api, hosting):
    response = api.put(email_path(hosting), {"email": "ops@example.org"})
    assert response.status_code == 204
    assert response.content == b""
    assert service_of(hosting).report_recipient == "ops@example.org"
    assert api.get(email_path(hosting)).json()["email"] == "ops@example.org"
    event = Event.objects.get(hosting=hosting, action="change_recipient")
    assert event.actor_kind == "api"
    assert event.actor_label == f"api:{api.credentials.application_key}"


@pytest.mark.parametrize("empty", ["", None])
def test_put_empty_or_null_email_resets_to_the_contact(api, hosting, empty):
    api.put(email_path(hosting), {"email": "ops@example.org"})
    response = api.put(email_path(hosting), {"email": empty})
    assert response.status_code == 204
    assert service_of(hosting).report_recipient == ""
    # As OVH: what is configured, null when reports go to the customer's contact.
    assert api.get(email_path(hosting)).json()["email"] is None


def test_put_accepts_the_object_read_back_by_get(api, hosting):
    read = api.get(email_path(hosting)).json()
    response = api.put(email_path(hosting), {**read, "email": "ops@example.org"})
    assert response.status_code == 204
    assert api.get(email_path(hosting)).json() == {**read, "email": "ops@example.org"}


def test_put_of_an_object_read_before_a_delivery_is_accepted(api, hosting):
    read = api.get(email_path(hosting)).json()
    DailyCounterFactory(hosting=hosting, day=timezone.localdate(), sent=3, errors=1)  # mail went out meanwhile
    assert api.put(email_path(hosting), {**read, "email": "ops@example.org"}).status_code == 204
    assert service_of(hosting).report_recipient == "ops@example.org"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-address"},
        {"email": "a@b@example.org"},
        {"email": "x" * 250 + "@example.org"},
        {"email": ["ops@example.org"]},
        {},
        {"email": "ops@example.org", "state": "ko"},  # read-only, changed
        {"email": "ops@example.org", "maxPerDay": 1},
        {"email": "ops@example.org", "unknown": 1},
        ["ops@example.org"],
        "ops@example.org",
    ],
    ids=[
        "invalid",
        "two-ats",
        "too-long",
        "list",
        "missing",
        "read-only-state",
        "read-only-max-per-day",
        "unknown-field",
        "array",
        "string",
    ],
)
def test_put_email_bad_input_is_400_and_changes_nothing(api, hosting, payload):
    response = api.put(email_path(hosting), payload)
    assert response.status_code == 400
    assert set(response.json()) == {"message"}
    assert response.json()["message"]
    assert service_of(hosting).report_recipient == ""
    assert not Event.objects.filter(hosting=hosting).exists()


@pytest.mark.parametrize(
    ("action", "before", "after", "reason"),
    [
        ("BLOCK", State.ACTIVE, State.BLOCKED, "customer"),
        ("UNBLOCK", State.BLOCKED, State.ACTIVE, ""),
        ("PURGE", State.BLOCKED, State.PURGING, ""),
        ("CANCEL_PURGE", State.PURGING, State.BLOCKED, ""),
    ],
)
def test_request_action_changes_state_with_api_event(api, hosting, action, before, after, reason):
    person = Actor.customer(UserFactory())
    if before in (State.BLOCKED, State.PURGING):
        mail_service_block(hosting=hosting, actor=person)
    if before == State.PURGING:
        mail_service_purge_request(hosting=hosting, actor=person)
    events_before = Event.objects.filter(hosting=hosting).count()
    response = api.post(email_path(hosting, "/request"), {"action": action})
    assert response.status_code == 200, response.content
    assert isinstance(response.json(), str) and response.json()
    service = service_of(hosting)
    assert service.state == after
    event = Event.objects.filter(hosting=hosting).order_by("-id").first()
    assert Event.objects.filter(hosting=hosting).count() == events_before + 1
    assert (event.actor_kind, event.from_state, event.to_state) == ("api", before, after)


def test_block_holds_queued_messages(api, hosting):
    message = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    api.post(email_path(hosting, "/request"), {"action": "BLOCK"})
    message.refresh_from_db()
    assert message.status == MessageStatus.HELD


@pytest.mark.parametrize(
    ("action", "setup", "expected_message"),
    [
        ("BLOCK", "blocked", "L'envoi des e-mails est déjà bloqué."),
        ("UNBLOCK", "active", "L'envoi des e-mails n'est pas bloqué."),
        ("PURGE", "active", "Pour purger les e-mails, vous devez d'abord en demander le blocage."),
        ("CANCEL_PURGE", "blocked", "Aucune purge n'est en cours."),
        ("UNBLOCK", "spam", "Un blocage pour envoi abusif se lève en purgeant les e-mails en attente."),
        ("UNBLOCK", "purging", "Une purge est en cours : annulez-la avant de débloquer l'envoi."),
    ],
)
def test_refused_transition_is_409_with_domain_message_and_changes_nothing(
    api, hosting, action, setup, expected_message
):
    person = UserFactory()
    if setup == "blocked":
        mail_service_block(hosting=hosting, actor=Actor.customer(person))
    elif setup == "spam":
        mail_service_block(hosting=hosting, actor=Actor.operator(person), reason="spam")
    elif setup == "purging":
        mail_service_block(hosting=hosting, actor=Actor.customer(person))
        mail_service_purge_request(hosting=hosting, actor=Actor.customer(person))
    before = MailService.objects.filter(hosting=hosting).values().get()
    events = Event.objects.filter(hosting=hosting).count()
    response = api.post(email_path(hosting, "/request"), {"action": action}, HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 409
    assert response.json() == {"message": expected_message}
    assert MailService.objects.filter(hosting=hosting).values().get() == before
    assert Event.objects.filter(hosting=hosting).count() == events


@pytest.mark.parametrize(
    "payload",
    [{"action": "DELETE"}, {"action": "block"}, {"action": 1}, {"action": None}, {"action": ["BLOCK"]}, {}, []],
    ids=["unknown", "lowercase", "int", "null", "list", "missing", "array"],
)
def test_request_bad_action_is_400(api, hosting, payload):
    response = api.post(email_path(hosting, "/request"), payload)
    assert response.status_code == 400
    assert set(response.json()) == {"message"}
    assert service_of(hosting).state == State.ACTIVE
    assert not Event.objects.filter(hosting=hosting).exists()


def test_bounces_newest_first_with_default_limit(api, hosting):
    now = timezone.now()
    for minutes in range(25):
        DeliveryErrorFactory(
            hosting=hosting, recipient=f"r{minutes}@example.org", created_at=now - datetime.timedelta(minutes=minutes)
        )
    DeliveryErrorFactory()  # another hosting's
    response = api.get(email_path(hosting, "/bounces"))
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 20
    assert set(body[0]) == {"date", "to", "message"}
    assert [item["to"] for item in body] == [f"r{minutes}@example.org" for minutes in range(20)]
    assert body[0]["message"] == "550 5.1.1 User unknown"
    dates = [datetime.datetime.fromisoformat(item["date"]) for item in body]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(("limit", "count"), [("0", 0), ("1", 1), ("5", 5), ("100", 25)])
def test_bounces_limit(api, hosting, limit, count):
    for _ in range(25):
        DeliveryErrorFactory(hosting=hosting)
    response = api.get(email_path(hosting, f"/bounces?limit={limit}"))
    assert response.status_code == 200
    assert len(response.json()) == count


@pytest.mark.parametrize("limit", ["101", "abc", "-1", "1.5", "9" * 5000])
def test_bounces_bad_limit_is_400(api, hosting, limit):
    response = api.get(email_path(hosting, f"/bounces?limit={limit}"))
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


def test_volumes_are_thirty_days_with_zeros(api, hosting):
    today = timezone.localdate()
    DailyCounterFactory(hosting=hosting, day=today, sent=4)
    DailyCounterFactory(hosting=hosting, day=today - datetime.timedelta(days=29), sent=9)
    DailyCounterFactory(hosting=hosting, day=today - datetime.timedelta(days=30), sent=99)  # out of range
    response = api.get(email_path(hosting, "/volumes"))
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 30
    assert all(set(item) == {"date", "volume"} for item in body)

    # OVH's VolumeHistory: a datetime, the local midnight of the day.
    def midnight(day):
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time())).isoformat()

    assert body[-1] == {"date": midnight(today), "volume": 4}
    assert body[0] == {"date": midnight(today - datetime.timedelta(days=29)), "volume": 9}
    assert sum(item["volume"] for item in body) == 13
    assert DailyCounter.objects.filter(hosting=hosting).count() == 3
