"""Automatic blocks on the abuse thresholds (SPEC §3) and the one notice to the customer."""

import datetime
import time

import pytest
from django.core import mail
from django.utils import timezone

from hosting.models import Plan
from mailqueue import abuse, dispatch, tasks
from mailqueue.blocking import mail_service_unblock
from mailqueue.models import Action, Event, MailService, Message, MessageStatus, State
from mailqueue.state import Actor
from portal.celery import app as celery_app
from tests.factories import CustomerFactory, HostingFactory, MessageFactory
from tests.support import wait_until


def _hosting(**fields):
    """A hosting whose mail service has been active for a day."""
    hosting = HostingFactory(**fields)
    MailService.objects.filter(hosting=hosting).update(state_changed_at=timezone.now() - datetime.timedelta(days=1))
    return hosting


def _submitted(hosting, count: int, *, minutes_ago: int = 10, **fields) -> None:
    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    Message.objects.bulk_create([MessageFactory.build(hosting=hosting, created_at=at, **fields) for _ in range(count)])


def _finished(hosting, *, sent: int, failed: int) -> None:
    done = {"next_attempt_at": None, "completed_at": timezone.now() - datetime.timedelta(minutes=5)}
    _submitted(hosting, sent, status=MessageStatus.SENT, **done)
    _submitted(hosting, failed, status=MessageStatus.FAILED, **done)


def _service(hosting) -> MailService:
    return MailService.objects.get(hosting=hosting)


@pytest.fixture
def abuse_check(monkeypatch, django_capture_on_commit_callbacks):
    """abuse.abuse_check, the notice task run in-process when the block commits
    (unit tests without a worker)."""
    monkeypatch.setattr(dispatch, "task_send", lambda name, *args, **kwargs: celery_app.tasks[name](*args))

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return abuse.abuse_check()

    return run


@pytest.mark.django_db(transaction=True)
def test_rate_abuse_blocks_and_notifies_the_contact_once_through_the_worker(celery_worker_live, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    customer = CustomerFactory(contact_email="owner@acme.example", language="fr", name="Acme & Fils")
    hosting = _hosting(customer=customer, plan=Plan.STARTER)  # 20 per hour
    calm = _hosting(plan=Plan.STARTER)
    _submitted(hosting, 5 * 20 + 1)
    _submitted(calm, 5 * 20)

    assert tasks.abuse_check() == [(hosting.pk, "rate")]

    service = _service(hosting)
    assert (service.state, service.block_reason) == (State.BLOCKED, "rate")
    assert _service(calm).state == State.ACTIVE
    assert wait_until(lambda: mail.outbox, timeout=20)
    [notice] = mail.outbox
    assert notice.to == ["owner@acme.example"]
    assert notice.subject == f"[{hosting.service_name}] Envoi des e-mails bloqué automatiquement"
    assert "Bonjour Acme & Fils," in notice.body  # plain text: not HTML-escaped
    assert "trop d'e-mails en trop peu de temps" in notice.body
    assert "72 heures" in notice.body

    assert tasks.abuse_check() == []  # already blocked: nothing more
    block = Event.objects.get(hosting=hosting, action=Action.AUTO_BLOCK)
    assert tasks.auto_block_notify(block.pk) is False  # a redelivered notice is not sent twice
    time.sleep(1.5)  # room for a stray task to reach the worker
    assert len(mail.outbox) == 1
    assert Event.objects.filter(hosting=hosting, action=Action.AUTO_BLOCK, reason="rate").count() == 1


@pytest.mark.django_db
def test_bounce_abuse_blocks_with_reason_bounce_and_notifies_in_english(abuse_check):
    customer = CustomerFactory(contact_email="ops@globex.example", language="en")
    hosting = _hosting(customer=customer, plan=Plan.PRO)
    _finished(hosting, sent=24, failed=26)  # 52 % of 50

    assert abuse_check() == [(hosting.pk, "bounce")]

    service = _service(hosting)
    assert (service.state, service.block_reason) == (State.BLOCKED, "bounce")
    [notice] = mail.outbox
    assert notice.to == ["ops@globex.example"]
    assert notice.subject == f"[{hosting.service_name}] E-mail sending blocked automatically"
    assert "Reason: too many e-mails in error" in notice.body
    assert "held for 72 hours" in notice.body
    assert abuse_check() == []
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_under_the_thresholds_nothing_happens(abuse_check):
    at_rate_limit = _hosting(plan=Plan.PERSO)
    _submitted(at_rate_limit, 5 * 100)  # exactly 5 × the hourly limit
    half_failed = _hosting(plan=Plan.PRO)
    _finished(half_failed, sent=25, failed=25)  # 50 %: not above
    too_few = _hosting(plan=Plan.PRO)
    _finished(too_few, sent=0, failed=49)  # 100 % but under 50 messages
    old_burst = _hosting(plan=Plan.STARTER)
    _submitted(old_burst, 200, minutes_ago=61)  # outside the last hour

    assert abuse_check() == []

    assert set(MailService.objects.values_list("state", flat=True)) == {State.ACTIVE}
    assert mail.outbox == []
    assert not Event.objects.filter(action=Action.AUTO_BLOCK).exists()


@pytest.mark.django_db
def test_an_operator_limit_lower_than_every_plan_is_the_one_that_counts(abuse_check):
    hosting = _hosting(plan=Plan.PERFORMANCE)
    MailService.objects.filter(hosting=hosting).update(hourly_limit_override=5)
    _submitted(hosting, 26)

    assert abuse_check() == [(hosting.pk, "rate")]
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_unblocked_service_is_not_blocked_again_for_the_same_burst(abuse_check):
    hosting = _hosting(plan=Plan.STARTER)
    _submitted(hosting, 101)
    assert abuse_check() == [(hosting.pk, "rate")]

    mail_service_unblock(hosting=hosting, actor=Actor.api("test"))
    assert abuse_check() == []
    assert _service(hosting).state == State.ACTIVE

    _submitted(hosting, 101, minutes_ago=0)  # a new burst after the unblock
    assert abuse_check() == [(hosting.pk, "rate")]
    assert len(mail.outbox) == 2
