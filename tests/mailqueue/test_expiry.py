"""The 72 h expiry of held mail (SPEC §3, §4.3), with the clock under control."""

import datetime
import zoneinfo

import pytest
import time_machine
from django.utils import timezone

from mailqueue import expiry, tasks
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.models import Action, DailyCounter, Event, Message, MessageStatus
from mailqueue.state import Actor
from mailqueue.submission import message_accept
from tests.factories import HostingFactory, MessageFactory

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
# 10:00 in Paris, so T+72h and T+96h fall on later local days.
T = datetime.datetime(2025, 3, 3, 10, 0, 0, tzinfo=PARIS)
HOLD = datetime.timedelta(hours=72)


def _held(hosting) -> int:
    return Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count()


def _expired_on(hosting, day: datetime.date) -> int:
    counter = DailyCounter.objects.filter(hosting=hosting, day=day).first()
    return counter.expired if counter else 0


def _expire_events(hosting):
    return list(Event.objects.filter(hosting=hosting, action=Action.EXPIRE).order_by("id"))


@pytest.fixture
def clock():
    with time_machine.travel(T, tick=False) as traveller:
        yield traveller


@pytest.mark.django_db
def test_a_message_held_at_t_expires_at_t_plus_72h_exactly(clock, settings):
    assert settings.HOLD_HOURS == 72
    hosting = HostingFactory()
    MessageFactory.create_batch(3, hosting=hosting, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=Actor.api("test"))  # held at T, until T+72h

    clock.move_to(T + HOLD - datetime.timedelta(seconds=1))
    assert expiry.held_expire() == {}
    assert _held(hosting) == 3
    assert _expire_events(hosting) == []

    clock.move_to(T + HOLD)
    assert tasks.held_expire() == {hosting.pk: 3}
    assert _held(hosting) == 0
    assert _expired_on(hosting, (T + HOLD).date()) == 3
    [event] = _expire_events(hosting)
    assert event.message_count == 3
    assert event.created_at == T + HOLD
    assert event.from_state == event.to_state == "blocked"


@pytest.mark.django_db
def test_expiry_counts_per_hosting_and_day_with_one_event_per_hosting_and_run(clock, settings):
    settings.PURGE_BATCH_SIZE = 2  # several batches per hosting
    first, second = HostingFactory(), HostingFactory()
    MessageFactory.create_batch(5, hosting=first, status=MessageStatus.QUEUED)
    MessageFactory.create_batch(2, hosting=second, status=MessageStatus.QUEUED)
    mail_service_block(hosting=first, actor=Actor.api("test"))
    mail_service_block(hosting=second, actor=Actor.api("test"))
    # Messages keep arriving while blocked: held at T+24h.
    clock.move_to(T + datetime.timedelta(hours=24))
    raw = b"From: a@site.example\r\nTo: b@example.org\r\nSubject: later\r\n\r\nHi\r\n"
    for _ in range(4):
        message_accept(hosting=first, sender="a@site.example", recipients=["b@example.org"], raw=raw)
    # Untouched by expiry whatever their age: queued, deferred, sending, sent and failed messages.
    other_statuses = [MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENT, MessageStatus.FAILED]
    untouched = [MessageFactory(status=status, held_until=T) for status in other_statuses]

    day_one, day_two = (T + HOLD).date(), (T + HOLD + datetime.timedelta(hours=24)).date()
    clock.move_to(T + HOLD)
    assert expiry.held_expire() == {first.pk: 5, second.pk: 2}
    assert expiry.held_expire() == {}  # a second run finds nothing: no empty Event

    clock.move_to(T + HOLD + datetime.timedelta(hours=24))
    assert expiry.held_expire() == {first.pk: 4}

    assert (_expired_on(first, day_one), _expired_on(first, day_two)) == (5, 4)
    assert (_expired_on(second, day_one), _expired_on(second, day_two)) == (2, 0)
    assert [event.message_count for event in _expire_events(first)] == [5, 4]
    assert [event.message_count for event in _expire_events(second)] == [2]
    assert _held(first) == _held(second) == 0
    assert sorted(Message.objects.filter(pk__in=[m.pk for m in untouched]).values_list("status", flat=True)) == sorted(
        other_statuses
    )
    assert timezone.now() == T + HOLD + datetime.timedelta(hours=24)


@pytest.mark.django_db
def test_unblocked_messages_no_longer_expire(clock):
    hosting = HostingFactory()
    MessageFactory.create_batch(2, hosting=hosting, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=Actor.api("test"))
    mail_service_unblock(hosting=hosting, actor=Actor.api("test"))
    clock.move_to(T + HOLD + datetime.timedelta(hours=1))

    assert expiry.held_expire() == {}
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.QUEUED).count() == 2
