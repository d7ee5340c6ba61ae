"""The purge (SPEC §3): blocked → purging → active, held mail deleted in batches, once."""

import datetime
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from mailqueue import dispatch, purge, tasks
from mailqueue.blocking import mail_service_block
from mailqueue.models import Action, DailyCounter, Event, MailService, Message, MessageStatus, State
from mailqueue.purge import (
    mail_service_purge_cancel,
    mail_service_purge_delete_batch,
    mail_service_purge_request,
    mail_service_purge_start,
)
from mailqueue.state import Actor, MailServiceError
from tests.factories import HostingFactory, MessageFactory
from tests.support import wait_until

CUSTOMER = Actor.api("test-client")


def _state(hosting) -> str:
    return MailService.objects.get(hosting=hosting).state


def _purged_today(hosting) -> int:
    counter = DailyCounter.objects.filter(hosting=hosting, day=timezone.localdate()).first()
    return counter.purged if counter else 0


def _completions(hosting):
    return list(Event.objects.filter(hosting=hosting, action=Action.COMPLETE_PURGE))


@pytest.fixture
def blocked_hosting_with_mail():
    """A blocked hosting holding 12 messages, plus sent/failed ones, and another blocked
    hosting holding 3 messages: (hosting, other_hosting)."""
    hosting = HostingFactory()
    other = HostingFactory()
    MessageFactory.create_batch(12, hosting=hosting, status=MessageStatus.QUEUED)
    MessageFactory.create_batch(2, hosting=hosting, status=MessageStatus.SENT, next_attempt_at=None)
    MessageFactory(hosting=hosting, status=MessageStatus.FAILED, next_attempt_at=None)
    MessageFactory.create_batch(3, hosting=other, status=MessageStatus.QUEUED)
    mail_service_block(hosting=hosting, actor=CUSTOMER)
    mail_service_block(hosting=other, actor=CUSTOMER)
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 12
    return hosting, other


@pytest.fixture
def lost_purge_tasks(monkeypatch):
    """The purge tasks never reach a worker (lost message, broker restart): the names and
    arguments enqueued are recorded, nothing is sent."""
    sent = []
    monkeypatch.setattr(dispatch, "task_send", lambda name, *args, **kwargs: sent.append((name, args)))
    return sent


def _assert_purged(hosting, other, *, held: int = 12):
    assert _state(hosting) == State.ACTIVE
    assert not Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).exists()
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count() == 2
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.FAILED).count() == 1
    assert Message.objects.filter(hosting=other, status=MessageStatus.HELD).count() == 3
    assert _state(other) == State.BLOCKED
    completions = _completions(hosting)
    assert [event.message_count for event in completions] == [held]
    assert completions[0].from_state == State.PURGING and completions[0].to_state == State.ACTIVE
    assert _purged_today(hosting) == held
    service = MailService.objects.get(hosting=hosting)
    assert service.purge_due_at is None and service.purge_started_at is None and service.block_reason == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("grace", [0, 3])
def test_purge_end_to_end_with_a_real_worker(
    celery_worker_live, beat_purge_watchdog, blocked_hosting_with_mail, settings, grace
):
    hosting, other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = grace
    settings.PURGE_BATCH_SIZE = 5  # several batches
    requested = time.monotonic()

    service = mail_service_purge_request(hosting=hosting, actor=CUSTOMER)
    assert service.state == State.PURGING
    assert service.purge_due_at == service.purge_requested_at + datetime.timedelta(seconds=grace)
    if grace:
        time.sleep(1)  # well inside the grace delay: nothing deleted, still cancellable
        assert _state(hosting) == State.PURGING
        assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 12

    # No countdown: once due, beat's watchdog runs it (a grace of 0 kicks it at once).
    assert wait_until(lambda: _state(hosting) == State.ACTIVE, timeout=grace + 20)
    assert time.monotonic() - requested >= grace
    _assert_purged(hosting, other)
    actions = list(Event.objects.filter(hosting=hosting).order_by("id").values_list("action", "to_state"))
    assert actions == [
        (Action.BLOCK, State.BLOCKED),
        (Action.PURGE, State.PURGING),
        (Action.COMPLETE_PURGE, State.ACTIVE),
    ]


@pytest.mark.django_db(transaction=True)
def test_watchdog_finishes_a_purge_whose_task_was_lost(
    celery_worker_live, blocked_hosting_with_mail, lost_purge_tasks, monkeypatch, settings
):
    hosting, other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 0
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)
    assert len(lost_purge_tasks) == 1
    monkeypatch.undo()  # the watchdog's own tasks get through
    time.sleep(0.5)
    assert _state(hosting) == State.PURGING  # nobody runs it

    tasks.purge_watchdog.delay()

    assert wait_until(lambda: _state(hosting) == State.ACTIVE, timeout=20)
    _assert_purged(hosting, other)


@pytest.mark.django_db
def test_watchdog_leaves_purges_not_yet_due(blocked_hosting_with_mail, lost_purge_tasks, settings):
    hosting, _other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 300
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)

    assert purge.purges_due() == []
    assert purge.purge_run(hosting_id=hosting.pk) is None
    assert _state(hosting) == State.PURGING
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 12
    # Still cancellable: the deletion has not started.
    assert mail_service_purge_cancel(hosting=hosting, actor=CUSTOMER).state == State.BLOCKED


@pytest.mark.django_db(transaction=True)
def test_two_purge_runs_at_once_delete_and_complete_once(
    blocked_hosting_with_mail, lost_purge_tasks, settings, is_postgres
):
    hosting, other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 0
    settings.PURGE_BATCH_SIZE = 2
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)
    results = []

    def run(barrier=None):
        try:
            if barrier is not None:
                barrier.wait(timeout=10)
            results.append(purge.purge_run(hosting_id=hosting.pk))
        finally:
            connections.close_all()

    if is_postgres:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(barrier,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    else:  # SQLite serialises writers: the second run comes after the first
        run()
        run()

    assert len(results) == 2
    assert sum(result is not None for result in results) == 1
    _assert_purged(hosting, other)


@pytest.mark.django_db
def test_cancel_before_the_deletion_starts_keeps_the_held_mail(blocked_hosting_with_mail, lost_purge_tasks, settings):
    hosting, _other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 0
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)

    service = mail_service_purge_cancel(hosting=hosting, actor=CUSTOMER)

    assert service.state == State.BLOCKED and service.block_reason == "customer"
    # The purge task arrives late: it does nothing.
    assert tasks.purge_run(hosting.pk) is False
    assert _state(hosting) == State.BLOCKED
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 12
    assert not _completions(hosting)


@pytest.mark.django_db
def test_cancel_after_the_deletion_started_is_refused(blocked_hosting_with_mail, lost_purge_tasks, settings):
    hosting, _other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 0
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)
    assert mail_service_purge_start(hosting=hosting) is not None

    with pytest.raises(MailServiceError, match="a déjà commencé"):
        mail_service_purge_cancel(hosting=hosting, actor=CUSTOMER)

    assert _state(hosting) == State.PURGING
    assert not Event.objects.filter(hosting=hosting, action=Action.CANCEL_PURGE).exists()


@pytest.mark.django_db
def test_a_purge_that_crashed_between_batches_resumes_and_counts_the_total(
    blocked_hosting_with_mail, lost_purge_tasks, settings
):
    hosting, other = blocked_hosting_with_mail
    settings.PURGE_GRACE_SECONDS = 0
    settings.PURGE_BATCH_SIZE = 5
    mail_service_purge_request(hosting=hosting, actor=CUSTOMER)
    started = mail_service_purge_start(hosting=hosting)
    assert mail_service_purge_delete_batch(hosting=hosting, purge=started) == 5
    # …the worker dies here. A message arrives meanwhile: it is held, and purged too.
    MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    assert purge.purges_due() == [hosting.pk]

    assert purge.purge_run(hosting_id=hosting.pk) is not None

    _assert_purged(hosting, other, held=13)
    assert purge.purge_run(hosting_id=hosting.pk) is None  # a late redelivery: nothing more
    assert len(_completions(hosting)) == 1
    assert connection.vendor in {"sqlite", "postgresql"}
