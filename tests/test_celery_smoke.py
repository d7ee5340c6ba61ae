"""A real worker on the configured broker (filesystem or Redis) runs a task that reads the database."""

import time

import pytest

from mailqueue import tasks
from mailqueue.models import MailService, State
from mailqueue.services import Actor, mail_service_block, mail_service_purge_request
from tests.factories import HostingFactory


@pytest.mark.django_db(transaction=True)
def test_worker_runs_purge_watchdog_against_the_database(celery_worker_live, settings):
    settings.PURGE_GRACE_SECONDS = 3600
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.system(), reason="spam")
    mail_service_purge_request(hosting=hosting, actor=Actor.api("test"))
    MailService.objects.filter(hosting=hosting).update(purge_due_at="2000-01-01T00:00:00Z")

    tasks.purge_watchdog.delay()

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if MailService.objects.get(hosting=hosting).state == State.ACTIVE:
            break
        time.sleep(0.2)
    assert MailService.objects.get(hosting=hosting).state == State.ACTIVE
