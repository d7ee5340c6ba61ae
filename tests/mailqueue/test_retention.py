"""Retention (SPEC §4.2, §4.3): finished messages' metadata is kept RETENTION_DAYS, then deleted."""

import datetime

import pytest
from django.utils import timezone

from mailqueue import retention, tasks
from mailqueue.models import DeliveryError, Message, MessageStatus, RelayHandoff
from tests.factories import DeliveryErrorFactory, HostingFactory, MessageFactory


def _days_ago(days: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


@pytest.mark.django_db
def test_retention_deletes_finished_messages_older_than_the_retention_period(settings):
    assert settings.RETENTION_DAYS == 30
    settings.PURGE_BATCH_SIZE = 2  # several batches
    hosting = HostingFactory()
    old = [
        MessageFactory(hosting=hosting, status=status, raw=None, completed_at=_days_ago(31), created_at=_days_ago(31))
        for status in [MessageStatus.SENT, MessageStatus.SENT, MessageStatus.FAILED]
    ]
    young = [
        MessageFactory(hosting=hosting, status=status, raw=None, completed_at=_days_ago(29), created_at=_days_ago(31))
        for status in [MessageStatus.SENT, MessageStatus.FAILED]
    ]
    # Never deleted by retention, however old: messages still waiting or being delivered.
    waiting = [
        MessageFactory(hosting=hosting, status=status, created_at=_days_ago(90), completed_at=_days_ago(90))
        for status in [MessageStatus.HELD, MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING]
    ]
    old_error = DeliveryErrorFactory(hosting=hosting, created_at=_days_ago(31))
    young_error = DeliveryErrorFactory(hosting=hosting, created_at=_days_ago(29))
    RelayHandoff.objects.create(hosting=hosting, at=_days_ago(2))
    recent_handoff = RelayHandoff.objects.create(hosting=hosting, at=_days_ago(0.01))

    totals = tasks.retention_apply()

    assert totals == {
        "messages": 3,
        "delivery_errors": 1,
        "complaints": 0,
        "unattributed_bounces": 0,
        "suppressions": 0,
        "webhook_deliveries": 0,
        "handoffs": 1,
    }
    remaining = set(Message.objects.values_list("pk", flat=True))
    assert remaining == {message.pk for message in young + waiting}
    assert not remaining & {message.pk for message in old}
    assert list(DeliveryError.objects.values_list("pk", flat=True)) == [young_error.pk]
    assert old_error.pk != young_error.pk
    assert list(RelayHandoff.objects.values_list("pk", flat=True)) == [recent_handoff.pk]
    assert retention.retention_apply() == {
        "messages": 0,
        "delivery_errors": 0,
        "complaints": 0,
        "unattributed_bounces": 0,
        "suppressions": 0,
        "webhook_deliveries": 0,
        "handoffs": 0,
    }
