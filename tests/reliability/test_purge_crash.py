"""A purge whose worker process dies (SIGKILL) half-way (SPEC §3): the watchdog finishes it, the
service is active again, nothing held is left, and every count is right."""

import os
import signal

import pytest
from django.utils import timezone

from mailqueue import purge
from mailqueue.blocking import mail_service_block
from mailqueue.models import Action, DailyCounter, Event, MailService, Message, MessageStatus, State
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from tests.factories import HostingFactory, MessageFactory
from tests.support import wait_until, worker_process

HELD = 3000
BATCH = 3  # small batches: the purge takes seconds, time enough to kill it in the middle


def held_count(hosting) -> int:
    return Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count()


def purge_deleted(hosting) -> int:
    return MailService.objects.values_list("purge_deleted", flat=True).get(hosting=hosting)


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_a_purge_killed_mid_way_is_finished_by_the_watchdog_with_the_right_counts(
    settings, _isolated_celery_queue, tmp_path
):
    settings.PURGE_GRACE_SECONDS = 0
    settings.PURGE_BATCH_SIZE = BATCH
    hosting = HostingFactory()
    bystander = HostingFactory()  # another hosting's held mail is never touched
    actor = Actor.api("reliability")
    mail_service_block(hosting=hosting, actor=actor)
    mail_service_block(hosting=bystander, actor=actor)
    now = timezone.now()
    held = [
        MessageFactory.build(hosting=owner, status=MessageStatus.HELD, held_at=now, next_attempt_at=None)
        for owner in [hosting] * HELD + [bystander] * 5
    ]
    Message.objects.bulk_create(held, batch_size=500)
    assert held_count(hosting) == HELD

    log = tmp_path / "worker.log"
    with worker_process(
        queue=_isolated_celery_queue, log=log, PURGE_BATCH_SIZE=str(BATCH), PURGE_GRACE_SECONDS="0"
    ) as worker:
        mail_service_purge_request(hosting=hosting, actor=actor)  # enqueues the run (no grace delay)
        started = wait_until(lambda: purge_deleted(hosting) >= 10 * BATCH, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    assert started, log.read_text()

    left = held_count(hosting)
    assert 0 < left < HELD, f"the worker was to die in the middle of the purge ({left} held left)"
    service = MailService.objects.get(hosting=hosting)
    assert service.state == State.PURGING
    assert service.purge_deleted == HELD - left  # each batch counted with its deletion, crash or not

    due = purge.purges_due()
    assert hosting.pk in due
    for hosting_id in due:
        purge.purge_run(hosting_id=hosting_id)

    service.refresh_from_db()
    assert service.state == State.ACTIVE
    assert (service.purge_started_at, service.purge_deleted) == (None, 0)
    assert held_count(hosting) == 0
    assert not Message.objects.filter(hosting=hosting).exists()
    [completion] = Event.objects.filter(hosting=hosting, action=Action.COMPLETE_PURGE)
    assert completion.message_count == HELD
    assert DailyCounter.objects.get(hosting=hosting, day=timezone.localdate()).purged == HELD
    assert held_count(bystander) == 5
    assert purge.purges_due() == []
    assert purge.purge_run(hosting_id=hosting.pk) is None  # a second watchdog run does nothing
