"""Actions on one message or a selection, from the delivery log (SPEC §10.3): delete a held or
queued message, retry a deferred one now. Each runs under the hosting's lock and writes one
Event with the number of messages it changed; messages in any other status are left alone."""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from hosting.models import Hosting
from mailqueue import dispatch
from mailqueue.counters import counter_add
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, Message, MessageStatus
from mailqueue.state import Actor, event_record, mail_service_check

DELETABLE = (MessageStatus.HELD, MessageStatus.QUEUED)


def _ids_text(ids: list[int]) -> str:
    text = ", ".join(str(pk) for pk in ids[:40])
    return text + (f" … (+{len(ids) - 40})" if len(ids) > 40 else "")


def messages_delete(*, hosting: Hosting, message_ids: Iterable[int], actor: Actor) -> int:
    """Delete those of `message_ids` that are the hosting's and held or queued (never one being
    delivered, deferred or finished); counted as purged today. Returns how many."""
    ids = sorted({int(pk) for pk in message_ids})
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.DELETE_MESSAGES, actor)
        targets = Message.objects.filter(hosting_id=hosting.pk, pk__in=ids, status__in=DELETABLE)
        deleted_ids = list(targets.values_list("pk", flat=True))
        if not deleted_ids:
            return 0
        deleted, _per_model = Message.objects.filter(pk__in=deleted_ids, status__in=DELETABLE).delete()
        counter_add(hosting_id=hosting.pk, purged=deleted)
        event_record(
            service=service,
            action=Action.DELETE_MESSAGES,
            actor=actor,
            from_state=service.state,
            message_count=deleted,
            detail=_ids_text(deleted_ids),
        )
    return deleted


def messages_retry(*, hosting: Hosting, message_ids: Iterable[int], actor: Actor) -> int:
    """Put those of `message_ids` that are the hosting's and deferred back in the queue, due now,
    and kick delivery (while the service is active: a blocked one holds its mail). Returns how many."""
    ids = sorted({int(pk) for pk in message_ids})
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.RETRY_MESSAGES, actor)
        targets = Message.objects.filter(hosting_id=hosting.pk, pk__in=ids, status=MessageStatus.DEFERRED)
        retried_ids = list(targets.values_list("pk", flat=True))
        if not retried_ids:
            return 0
        retried = Message.objects.filter(pk__in=retried_ids, status=MessageStatus.DEFERRED).update(
            status=MessageStatus.QUEUED, next_attempt_at=timezone.now()
        )
        event_record(
            service=service,
            action=Action.RETRY_MESSAGES,
            actor=actor,
            from_state=service.state,
            message_count=retried,
            detail=_ids_text(retried_ids),
        )
        dispatch.delivery_now()
    return retried
