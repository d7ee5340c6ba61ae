"""The mail service's state machine against SPEC §3 and §9.1: every action × state × actor.

The expected outcomes are written here by hand from the SPEC's tables, not read from
`mailqueue.state.TRANSITIONS`, so that a wrong entry in the product's table fails a test.
"""

import dataclasses
import datetime

import pytest
from django.utils import timezone

from mailqueue.blocking import (
    mail_service_auto_block,
    mail_service_block,
    mail_service_force_reset,
    mail_service_unblock,
)
from mailqueue.hourly_limit import mail_service_limit_set
from mailqueue.models import Event, MailService, Message, MessageStatus
from mailqueue.purge import (
    mail_service_purge_cancel,
    mail_service_purge_complete,
    mail_service_purge_request,
    mail_service_purge_start,
    purge_run,
)
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.state import Actor, MailServiceError
from mailqueue.submission import message_accept
from tests.factories import HostingFactory, MembershipFactory, MessageFactory, UserFactory

T0 = datetime.datetime(2025, 3, 3, 9, 0, tzinfo=datetime.UTC)

# --- the SPEC §3 table, by hand -----------------------------------------------------------

CUSTOMER, OPERATOR, API, SYSTEM = "customer", "operator", "api", "system"
ACTOR_KINDS = [CUSTOMER, OPERATOR, API, SYSTEM]
PEOPLE = {CUSTOMER, OPERATOR, API}
ALL_STATES = {"active", "blocked", "purging"}

# action: (states it may start from, state it leads to (None: unchanged), who may do it)
SPEC_TABLE = {
    "block": ({"active"}, "blocked", PEOPLE | {SYSTEM}),
    "unblock": ({"blocked"}, "active", PEOPLE),
    "purge": ({"blocked"}, "purging", PEOPLE),
    "cancel_purge": ({"purging"}, "blocked", PEOPLE),
    "change_recipient": (ALL_STATES, None, PEOPLE),
    "set_limit": (ALL_STATES, None, {OPERATOR}),
    "reset_force": (ALL_STATES, None, {OPERATOR}),  # only while forced
}

# The reason a block records when the actor gives none.
DEFAULT_BLOCK_REASON = {CUSTOMER: "customer", API: "customer", OPERATOR: "operator", SYSTEM: "spam"}


@dataclasses.dataclass(frozen=True)
class Situation:
    state: str
    reason: str = ""
    purge_started: bool = False
    forced: bool = False
    spam_repeated: bool = False  # a spam block within SPAM_REPEAT_DAYS of one the customer purged


SITUATIONS = {
    "active": Situation("active"),
    "active-forced": Situation("active", forced=True),
    "blocked-spam-repeated": Situation("blocked", "spam", spam_repeated=True),
    "blocked-customer": Situation("blocked", "customer"),
    "blocked-operator": Situation("blocked", "operator"),
    "blocked-rate": Situation("blocked", "rate"),
    "blocked-bounce": Situation("blocked", "bounce"),
    "blocked-spam": Situation("blocked", "spam"),
    "purging-customer": Situation("purging", "customer"),
    "purging-spam": Situation("purging", "spam"),
    "purging-started": Situation("purging", "customer", purge_started=True),
}


def expected_state(action: str, actor_kind: str, situation: Situation) -> str | None:
    """The state after `action` per SPEC §3, or None when it must be refused."""
    sources, target, who = SPEC_TABLE[action]
    if actor_kind not in who or situation.state not in sources:
        return None
    lifting = action in ("unblock", "purge", "cancel_purge")
    if situation.spam_repeated and lifting and actor_kind in (CUSTOMER, API):
        return None  # §9.1: a repeated spam block is lifted by support only
    if action == "unblock" and situation.reason == "spam" and actor_kind != OPERATOR:
        return None  # §9.1: a spam block is lifted by a purge, which the customer may do
    if action == "reset_force" and not situation.forced:
        return None
    if action == "cancel_purge" and situation.purge_started:
        return None  # "allowed until the deletion has started"
    return target or situation.state


def expected_reason(action: str, actor_kind: str, situation: Situation) -> str:
    if action == "block":
        return DEFAULT_BLOCK_REASON[actor_kind]
    if action == "unblock":
        return ""
    return situation.reason  # purge and cancel keep the block's reason; the others touch nothing


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Users are built in every test: the production PBKDF2 cost would dominate the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people():
    """A hosting, one of its customer's members and an operator."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    operator = UserFactory(is_staff=True)
    return hosting, membership.user, operator


def make_actor(kind: str, *, customer_user, operator) -> Actor:
    return {
        CUSTOMER: lambda: Actor.customer(customer_user),
        OPERATOR: lambda: Actor.operator(operator),
        API: lambda: Actor.api("ci-key-7"),
        SYSTEM: lambda: Actor.system(),
    }[kind]()


def bring_to(hosting, situation: Situation, *, operator, time_machine, settings) -> None:
    """Drive the hosting's service into `situation` through the services themselves."""
    if situation.forced:
        mail_service_auto_block(hosting=hosting, reason="bounce")
        mail_service_unblock(hosting=hosting, actor=Actor.api("setup"))
    if situation.spam_repeated:  # a first spam block, purged by the customer
        mail_service_auto_block(hosting=hosting, reason="spam")
        mail_service_purge_request(hosting=hosting, actor=Actor.api("setup"))
        time_machine.shift(datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS + 1))
        assert purge_run(hosting_id=hosting.pk) is not None
        time_machine.shift(datetime.timedelta(days=settings.SPAM_REPEAT_DAYS - 1))
    if situation.state == "active":
        assert MailService.objects.get(hosting=hosting).forced == situation.forced
        return
    if situation.reason == "customer":
        mail_service_block(hosting=hosting, actor=Actor.api("setup"))
    elif situation.reason == "operator":
        mail_service_block(hosting=hosting, actor=Actor.operator(operator))
    else:
        mail_service_auto_block(hosting=hosting, reason=situation.reason)
    if situation.state == "purging":
        mail_service_purge_request(hosting=hosting, actor=Actor.operator(operator))
    if situation.purge_started:
        time_machine.shift(datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS + 1))
        assert mail_service_purge_start(hosting=hosting) is not None
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason, service.purge_started_at is not None) == (
        situation.state,
        situation.reason,
        situation.purge_started,
    )


MESSAGE_FIELDS = [field.attname for field in Message._meta.concrete_fields if field.name != "raw"]


def snapshot(hosting) -> tuple:
    """Everything a refused action must leave as it was."""
    service = MailService.objects.filter(hosting=hosting).values().get()
    messages = list(Message.objects.filter(hosting=hosting).order_by("id").values(*MESSAGE_FIELDS))
    events = list(Event.objects.filter(hosting=hosting).order_by("id").values())
    return service, messages, events


def last_event_id(hosting) -> int:
    return Event.objects.filter(hosting=hosting).order_by("-id").values_list("id", flat=True).first() or 0


def do_action(action: str, *, hosting, actor: Actor):
    if action == "block":
        return mail_service_block(hosting=hosting, actor=actor)
    if action == "unblock":
        return mail_service_unblock(hosting=hosting, actor=actor)
    if action == "purge":
        return mail_service_purge_request(hosting=hosting, actor=actor)
    if action == "cancel_purge":
        return mail_service_purge_cancel(hosting=hosting, actor=actor)
    if action == "change_recipient":
        return mail_service_recipient_change(hosting=hosting, actor=actor, email="reports@example.net")
    if action == "set_limit":
        return mail_service_limit_set(hosting=hosting, actor=actor, limit=42)
    if action == "reset_force":
        return mail_service_force_reset(hosting=hosting, actor=actor)
    raise AssertionError(action)


def pending_messages(hosting) -> None:
    """One message of each status, so a transition that loses or moves the wrong ones shows."""
    for status in MessageStatus.values:
        if status != MessageStatus.HELD:
            MessageFactory(hosting=hosting, status=status)


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("situation_name", list(SITUATIONS))
@pytest.mark.parametrize("actor_kind", ACTOR_KINDS)
@pytest.mark.parametrize("action", list(SPEC_TABLE))
def test_action_matrix(action, actor_kind, situation_name, people, time_machine, settings):
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, operator = people
    situation = SITUATIONS[situation_name]
    pending_messages(hosting)
    bring_to(hosting, situation, operator=operator, time_machine=time_machine, settings=settings)
    actor = make_actor(actor_kind, customer_user=customer_user, operator=operator)
    before = snapshot(hosting)
    events_before = last_event_id(hosting)
    time_machine.shift(datetime.timedelta(minutes=1))
    expected = expected_state(action, actor_kind, situation)

    if expected is None:
        with pytest.raises(MailServiceError) as refused:
            do_action(action, hosting=hosting, actor=actor)
        assert str(refused.value.message)
        assert snapshot(hosting) == before
        return

    returned = do_action(action, hosting=hosting, actor=actor)

    service = MailService.objects.get(hosting=hosting)
    assert returned.state == service.state == expected
    assert service.block_reason == expected_reason(action, actor_kind, situation)
    (event,) = Event.objects.filter(hosting=hosting, id__gt=events_before)
    assert event.action == action
    assert (event.from_state, event.to_state) == (situation.state, expected)
    assert event.actor_kind == actor_kind
    assert event.actor_user == {CUSTOMER: customer_user, OPERATOR: operator}.get(actor_kind)
    assert (
        event.actor_label
        == {
            CUSTOMER: customer_user.username,
            OPERATOR: operator.username,
            API: "ci-key-7",
            SYSTEM: "system",
        }[actor_kind]
    )
    assert event.created_at == timezone.now()
    if action not in ("block", "unblock"):
        assert snapshot(hosting)[1] == before[1]  # no message moved
    if expected != situation.state:
        assert service.state_changed_at == timezone.now()
    else:
        assert service.state_changed_at == before[0]["state_changed_at"]


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["rate", "bounce", "spam"])
@pytest.mark.parametrize("situation_name", list(SITUATIONS))
def test_automatic_block_only_from_active(situation_name, reason, people, time_machine, settings):
    time_machine.move_to(T0, tick=False)
    hosting, _customer_user, operator = people
    situation = SITUATIONS[situation_name]
    bring_to(hosting, situation, operator=operator, time_machine=time_machine, settings=settings)
    before = snapshot(hosting)
    events_before = last_event_id(hosting)

    if situation.state != "active":
        with pytest.raises(MailServiceError):
            mail_service_auto_block(hosting=hosting, reason=reason, detail="too many")
        assert snapshot(hosting) == before
        return

    mail_service_auto_block(hosting=hosting, reason=reason, detail="too many")

    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == ("blocked", reason)
    (event,) = Event.objects.filter(hosting=hosting, id__gt=events_before)
    assert (event.action, event.from_state, event.to_state, event.reason) == ("auto_block", "active", "blocked", reason)
    assert (event.actor_kind, event.actor_user) == ("system", None)
    assert event.detail == "too many"


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["customer", "operator"])
def test_automatic_block_refuses_reasons_of_people(reason, people):
    hosting, _customer_user, _operator = people
    before = snapshot(hosting)
    with pytest.raises(MailServiceError):
        mail_service_auto_block(hosting=hosting, reason=reason)
    assert snapshot(hosting) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor_kind", "reason", "allowed"),
    [
        (CUSTOMER, "customer", True),
        (CUSTOMER, "spam", False),
        (CUSTOMER, "operator", False),
        (API, "customer", True),
        (API, "spam", False),
        (API, "rate", False),
        (OPERATOR, "operator", True),
        (OPERATOR, "spam", True),
        (SYSTEM, "spam", True),
        (SYSTEM, "rate", True),
        (SYSTEM, "bounce", True),
    ],
)
def test_block_reason_depends_on_who_blocks(actor_kind, reason, allowed, people):
    hosting, customer_user, operator = people
    actor = make_actor(actor_kind, customer_user=customer_user, operator=operator)
    before = snapshot(hosting)
    if not allowed:
        with pytest.raises(MailServiceError):
            mail_service_block(hosting=hosting, actor=actor, reason=reason)
        assert snapshot(hosting) == before
        return
    mail_service_block(hosting=hosting, actor=actor, reason=reason)
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == ("blocked", reason)
    assert Event.objects.get(hosting=hosting).reason == reason


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor_kind", "allowed"), [(CUSTOMER, False), (API, False), (SYSTEM, False), (OPERATOR, True)]
)
def test_only_an_operator_lifts_a_spam_block(actor_kind, allowed, people):
    hosting, customer_user, operator = people
    mail_service_block(hosting=hosting, actor=Actor.operator(operator), reason="spam")
    held = MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    actor = make_actor(actor_kind, customer_user=customer_user, operator=operator)
    if not allowed:
        with pytest.raises(MailServiceError):
            mail_service_unblock(hosting=hosting, actor=actor)
        service = MailService.objects.get(hosting=hosting)
        assert (service.state, service.block_reason) == ("blocked", "spam")
        assert Message.objects.get(pk=held.pk).status == MessageStatus.HELD
        assert Event.objects.filter(hosting=hosting).count() == 1
        return
    mail_service_unblock(hosting=hosting, actor=actor)
    assert MailService.objects.get(hosting=hosting).state == "active"
    assert Message.objects.get(pk=held.pk).status == MessageStatus.QUEUED


@pytest.mark.django_db
def test_cancelling_a_spam_purge_keeps_the_spam_block(people):
    hosting, customer_user, _operator = people
    mail_service_auto_block(hosting=hosting, reason="spam")
    mail_service_purge_request(hosting=hosting, actor=Actor.customer(customer_user))  # §9.1: the way out
    mail_service_purge_cancel(hosting=hosting, actor=Actor.customer(customer_user))
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == ("blocked", "spam")
    with pytest.raises(MailServiceError):
        mail_service_unblock(hosting=hosting, actor=Actor.customer(customer_user))


# --- effects on messages ------------------------------------------------------------------------


def message_rows(*messages) -> dict:
    return {
        row["id"]: row
        for row in Message.objects.filter(pk__in=[m.pk for m in messages]).values(
            "id", "status", "held_at", "held_until", "next_attempt_at", "attempts", "claim_token", "completed_at"
        )
    }


@pytest.mark.django_db
@pytest.mark.parametrize("hold_hours", [72, 5])
def test_block_holds_queued_and_deferred_messages_for_hold_hours(hold_hours, people, time_machine, settings):
    settings.HOLD_HOURS = hold_hours
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, _operator = people
    queued = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    deferred = MessageFactory(
        hosting=hosting, status=MessageStatus.DEFERRED, attempts=2, next_attempt_at=T0 + datetime.timedelta(hours=1)
    )
    untouched = [
        MessageFactory(hosting=hosting, status=MessageStatus.SENDING, claimed_at=T0),
        MessageFactory(hosting=hosting, status=MessageStatus.SENT, completed_at=T0, next_attempt_at=None),
        MessageFactory(hosting=hosting, status=MessageStatus.FAILED, completed_at=T0, next_attempt_at=None),
    ]
    other_hosting_queued = MessageFactory(status=MessageStatus.QUEUED)
    untouched_before = message_rows(*untouched, other_hosting_queued)
    blocked_at = T0 + datetime.timedelta(minutes=7)
    time_machine.move_to(blocked_at, tick=False)

    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))

    for message in (queued, deferred):
        message.refresh_from_db()
        assert message.status == MessageStatus.HELD
        assert message.held_at == blocked_at
        assert message.held_until == blocked_at + datetime.timedelta(hours=hold_hours)
        assert message.next_attempt_at is None
    assert message_rows(*untouched, other_hosting_queued) == untouched_before
    assert Event.objects.get(hosting=hosting, action="block").message_count == 2

    # A message submitted while blocked is held too, for the same duration from its arrival.
    time_machine.move_to(blocked_at + datetime.timedelta(minutes=3), tick=False)
    late = message_accept(
        hosting=hosting, sender="www-data@test.example", recipients=["x@example.org"], raw=b"Subject: hi\r\n\r\nhi\r\n"
    )
    assert late.status == MessageStatus.HELD
    assert late.held_until == timezone.now() + datetime.timedelta(hours=hold_hours)
    assert not Message.objects.filter(hosting=hosting, status=MessageStatus.QUEUED).exists()


@pytest.mark.django_db
def test_unblock_puts_every_held_message_back_to_delivery_at_once(people, time_machine):
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, _operator = people
    queued = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    deferred = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED, attempts=1)
    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))
    arrived_blocked = message_accept(
        hosting=hosting, sender="www-data@test.example", recipients=["y@example.org"], raw=b"\r\nbody\r\n"
    )
    untouched = [
        MessageFactory(hosting=hosting, status=MessageStatus.SENDING, claimed_at=T0),
        MessageFactory(hosting=hosting, status=MessageStatus.SENT, completed_at=T0, next_attempt_at=None),
        MessageFactory(hosting=hosting, status=MessageStatus.FAILED, completed_at=T0, next_attempt_at=None),
    ]
    untouched_before = message_rows(*untouched)
    unblocked_at = T0 + datetime.timedelta(hours=5)
    time_machine.move_to(unblocked_at, tick=False)

    mail_service_unblock(hosting=hosting, actor=Actor.customer(customer_user))

    for message in (queued, deferred, arrived_blocked):
        message.refresh_from_db()
        assert message.status == MessageStatus.QUEUED
        assert (message.held_at, message.held_until) == (None, None)
        assert message.next_attempt_at == unblocked_at
    assert message_rows(*untouched) == untouched_before
    assert Event.objects.get(hosting=hosting, action="unblock").message_count == 3
    # Nothing is held any more: a new message is queued.
    fresh = message_accept(
        hosting=hosting, sender="www-data@test.example", recipients=["z@example.org"], raw=b"\r\nbody\r\n"
    )
    assert fresh.status == MessageStatus.QUEUED


@pytest.mark.django_db
def test_purge_request_and_cancel_set_and_clear_the_schedule(people, time_machine, settings):
    settings.PURGE_GRACE_SECONDS = 300
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, _operator = people
    held = MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))

    mail_service_purge_request(hosting=hosting, actor=Actor.customer(customer_user))
    service = MailService.objects.get(hosting=hosting)
    assert service.purge_requested_at == T0
    assert service.purge_due_at == T0 + datetime.timedelta(minutes=5)
    assert service.purge_started_at is None

    mail_service_purge_cancel(hosting=hosting, actor=Actor.customer(customer_user))
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.purge_requested_at, service.purge_due_at) == ("blocked", None, None)
    assert Message.objects.get(pk=held.pk).status == MessageStatus.HELD  # cancelling deletes nothing


@pytest.mark.django_db
def test_purge_does_not_start_before_its_grace_delay(people, time_machine, settings):
    settings.PURGE_GRACE_SECONDS = 300
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, _operator = people
    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))
    mail_service_purge_request(hosting=hosting, actor=Actor.customer(customer_user))
    time_machine.shift(datetime.timedelta(seconds=299))
    assert mail_service_purge_start(hosting=hosting) is None
    assert MailService.objects.get(hosting=hosting).purge_started_at is None
    mail_service_purge_cancel(hosting=hosting, actor=Actor.customer(customer_user))  # still cancellable
    assert MailService.objects.get(hosting=hosting).state == "blocked"


# --- purge completion (the platform only) ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("situation_name", list(SITUATIONS))
def test_purge_completion_only_ends_a_started_purge(situation_name, people, time_machine, settings):
    time_machine.move_to(T0, tick=False)
    hosting, _customer_user, operator = people
    situation = SITUATIONS[situation_name]
    pending_messages(hosting)
    bring_to(hosting, situation, operator=operator, time_machine=time_machine, settings=settings)
    before = snapshot(hosting)
    events_before = last_event_id(hosting)

    if not situation.purge_started:
        assert mail_service_purge_complete(hosting=hosting) is None
        assert snapshot(hosting) == before
        return

    held_before = Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count()
    assert held_before == 2  # the queued and the deferred one, held by the block
    service = mail_service_purge_complete(hosting=hosting)

    assert service is not None
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == ("active", "")
    assert (service.purge_requested_at, service.purge_due_at, service.purge_started_at) == (None, None, None)
    (event,) = Event.objects.filter(hosting=hosting, id__gt=events_before)
    assert (event.action, event.from_state, event.to_state) == ("complete_purge", "purging", "active")
    assert (event.actor_kind, event.actor_user) == ("system", None)
    assert event.message_count == held_before
    assert not Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).exists()
    # sending, sent and failed messages are not the purge's business
    assert sorted(Message.objects.filter(hosting=hosting).values_list("status", flat=True)) == sorted(
        ["sending", "sent", "failed"]
    )
    # a second run is harmless
    assert mail_service_purge_complete(hosting=hosting) is None
    assert Event.objects.filter(hosting=hosting, id__gt=events_before).count() == 1


@pytest.mark.django_db
def test_purge_deletes_messages_that_arrived_while_purging(people, time_machine, settings):
    time_machine.move_to(T0, tick=False)
    hosting, customer_user, _operator = people
    MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))
    mail_service_purge_request(hosting=hosting, actor=Actor.customer(customer_user))
    during = message_accept(
        hosting=hosting, sender="www-data@test.example", recipients=["a@example.org"], raw=b"\r\nx\r\n"
    )
    assert during.status == MessageStatus.HELD
    time_machine.shift(datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS))
    assert mail_service_purge_start(hosting=hosting) is not None
    with pytest.raises(MailServiceError):
        mail_service_purge_cancel(hosting=hosting, actor=Actor.customer(customer_user))

    mail_service_purge_complete(hosting=hosting)

    assert not Message.objects.filter(hosting=hosting).exists()
    assert MailService.objects.get(hosting=hosting).state == "active"
    assert Event.objects.get(hosting=hosting, action="complete_purge").message_count == 2


# --- recipient and limit ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "two@@example.com",
        "spaces in@example.com",
        "ok@example.com\r\nBcc: evil@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_invalid_recipient_is_refused_and_changes_nothing(address, people):
    hosting, customer_user, _operator = people
    mail_service_recipient_change(hosting=hosting, actor=Actor.customer(customer_user), email="keep@example.net")
    before = snapshot(hosting)
    with pytest.raises(MailServiceError) as refused:
        mail_service_recipient_change(hosting=hosting, actor=Actor.customer(customer_user), email=address)
    assert refused.value.code == "invalid"
    assert snapshot(hosting) == before
    assert MailService.objects.get(hosting=hosting).report_recipient == "keep@example.net"


@pytest.mark.django_db
@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_recipient_means_the_customer_contact(empty, people):
    hosting, customer_user, _operator = people
    actor = Actor.customer(customer_user)
    mail_service_recipient_change(hosting=hosting, actor=actor, email=" reports@example.net ")
    service = MailService.objects.get(hosting=hosting)
    assert service.effective_report_recipient == "reports@example.net"

    mail_service_recipient_change(hosting=hosting, actor=actor, email=empty)

    service = MailService.objects.get(hosting=hosting)
    assert service.report_recipient == ""
    assert service.effective_report_recipient == hosting.customer.contact_email
    assert Event.objects.filter(hosting=hosting, action="change_recipient").count() == 2


@pytest.mark.django_db
def test_operator_sets_and_clears_the_hourly_limit(people):
    hosting, _customer_user, operator = people
    actor = Actor.operator(operator)
    mail_service_limit_set(hosting=hosting, actor=actor, limit=7)
    assert MailService.objects.get(hosting=hosting).hourly_limit == 7
    mail_service_limit_set(hosting=hosting, actor=actor, limit=None)
    assert MailService.objects.get(hosting=hosting).hourly_limit == 100  # perso plan
    before = snapshot(hosting)
    with pytest.raises(MailServiceError):
        mail_service_limit_set(hosting=hosting, actor=actor, limit=0)
    assert snapshot(hosting) == before


# --- the event log ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_are_append_only(people):
    hosting, customer_user, _operator = people
    mail_service_block(hosting=hosting, actor=Actor.customer(customer_user))
    event = Event.objects.get(hosting=hosting)

    event.to_state = "active"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        Event.objects.get(pk=event.pk).delete()

    stored = Event.objects.get(pk=event.pk)
    assert (stored.action, stored.to_state) == ("block", "blocked")
