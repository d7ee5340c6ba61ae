"""A real worker on the configured broker (filesystem or Redis) runs a task that reads the database."""

import pytest

from mailqueue import tasks
from mailqueue.blocking import mail_service_block
from mailqueue.models import Event, MailService, Message, MessageStatus, State
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.factories import HostingFactory, MessageFactory
from tests.support import wait_until


@pytest.mark.django_db(transaction=True)
def test_worker_runs_purge_watchdog_against_the_database(celery_worker_live, settings):
    settings.PURGE_GRACE_SECONDS = 3600
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("test"))
    mail_service_purge_request(hosting=hosting, actor=Actor.api("test"))
    MailService.objects.filter(hosting=hosting).update(purge_due_at="2000-01-01T00:00:00Z")

    tasks.purge_watchdog.delay()

    assert wait_until(lambda: MailService.objects.get(hosting=hosting).state == State.ACTIVE, timeout=20)


@pytest.mark.django_db(transaction=True)
def test_purge_request_enqueues_after_commit_and_worker_completes_it(celery_worker_live, settings):
    """The purge request's own task, sent on commit, runs the purge on a real worker."""
    settings.PURGE_GRACE_SECONDS = 0
    hosting = HostingFactory()
    MessageFactory(hosting=hosting, status=MessageStatus.QUEUED)
    sent = MessageFactory(hosting=hosting, status=MessageStatus.SENT, next_attempt_at=None)
    mail_service_block(hosting=hosting, actor=Actor.api("test"))
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count() == 1

    mail_service_purge_request(hosting=hosting, actor=Actor.api("test"))

    assert wait_until(lambda: MailService.objects.get(hosting=hosting).state == State.ACTIVE, timeout=20)
    assert list(Message.objects.filter(hosting=hosting)) == [sent]
    assert Event.objects.get(hosting=hosting, action="complete_purge").message_count == 1
