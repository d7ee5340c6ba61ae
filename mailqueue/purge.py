"""The purge (SPEC §3, §4.3): request, cancel, run in batches, complete, and the watchdog.

A request only writes a due time (`purge_due_at`, PURGE_GRACE_SECONDS ahead); the every-minute
watchdog runs every purge that is due and unfinished, so a lost task, a dead worker or a broker
outage delays a purge by a minute at most. Each step takes the hosting's lock; a second run at
the same time deletes and completes nothing more.
"""

import datetime
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from hosting.models import Hosting
from mailqueue import dispatch
from mailqueue.counters import counter_add
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, ActorKind, BlockReason, Event, MailService, Message, MessageStatus, State
from mailqueue.state import Actor, event_record, mail_service_check, state_set

logger = logging.getLogger(__name__)

# Longest a purge may take from its request (SPEC §3): the page shows it as the expected end.
PURGE_DEADLINE = datetime.timedelta(minutes=10)

_PURGE_FIELDS = ["purge_requested_at", "purge_due_at", "purge_started_at", "purge_deleted"]


def mail_service_purge_request(*, hosting: Hosting, actor: Actor, comment: str = "") -> MailService:
    """Blocked → purging. After PURGE_GRACE_SECONDS the watchdog runs the purge, which deletes
    every held message and returns the service to active by itself. `comment`: an operator's
    reason, kept in the Event."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.PURGE, actor)
        now = timezone.now()
        from_state = service.state
        state_set(service, State.PURGING, now)
        service.purge_requested_at = now
        service.purge_due_at = now + datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS)
        service.purge_started_at = None
        service.purge_deleted = 0
        service.save(update_fields=["state", "state_changed_at", *_PURGE_FIELDS])
        event_record(
            service=service,
            action=Action.PURGE,
            actor=actor,
            from_state=from_state,
            reason=service.block_reason,
            detail=comment.strip(),
        )
        if settings.PURGE_GRACE_SECONDS <= 0:
            dispatch.purge_run_now(hosting_id=hosting.pk)  # no grace: no need to wait for the watchdog
    return service


def mail_service_purge_cancel(*, hosting: Hosting, actor: Actor, comment: str = "") -> MailService:
    """Purging → blocked, allowed until the deletion has started; held messages stay held.
    `comment`: an operator's reason, kept in the Event."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.CANCEL_PURGE, actor)
        from_state = service.state
        state_set(service, State.BLOCKED, timezone.now())
        service.purge_requested_at = service.purge_due_at = None
        service.save(update_fields=["state", "state_changed_at", "purge_requested_at", "purge_due_at"])
        event_record(
            service=service,
            action=Action.CANCEL_PURGE,
            actor=actor,
            from_state=from_state,
            reason=service.block_reason,
            detail=comment.strip(),
        )
    return service


def _held_delete_batch(*, hosting_id: int, batch_size: int) -> int:
    """Delete up to `batch_size` held messages of the hosting; return how many went.

    On PostgreSQL one statement finds the rows through the held partial index and deletes them
    by physical address (a TID scan: no primary-key lookups), re-checking hosting and status.
    """
    if connection.vendor == "postgresql":
        table = Message._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {table} WHERE hosting_id = %s AND status = %s LIMIT %s"
                f")) AND hosting_id = %s AND status = %s",
                [hosting_id, MessageStatus.HELD, batch_size, hosting_id, MessageStatus.HELD],
            )
            return cursor.rowcount
    return Message.objects.filter(hosting_id=hosting_id).held().delete_batch(batch_size)


def mail_service_purge_start(*, hosting: Hosting) -> datetime.datetime | None:
    """Mark the purge as started (no cancel from now on) if the service is purging and due.

    Returns the purge's identity (its request time) for `mail_service_purge_delete_batch`,
    or None when there is nothing to do. Safe to call twice.
    """
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        if service.state != State.PURGING or service.purge_due_at is None or service.purge_due_at > timezone.now():
            return None
        if service.purge_started_at is None:
            service.purge_started_at = timezone.now()
            service.save(update_fields=["purge_started_at"])
    return service.purge_requested_at


def mail_service_purge_delete_batch(*, hosting: Hosting, purge: datetime.datetime) -> int:
    """Delete one batch of held messages for the started purge `purge`, counted in the same
    transaction (so a crash loses no count). Returns 0 once nothing is held, or when that purge
    is no longer the one running (completed by a concurrent run, or a new one requested)."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        if service.state != State.PURGING or service.purge_started_at is None or service.purge_requested_at != purge:
            return 0
        deleted = _held_delete_batch(hosting_id=hosting.pk, batch_size=settings.PURGE_BATCH_SIZE)
        if deleted:
            counter_add(hosting_id=hosting.pk, purged=deleted)
            MailService.objects.filter(hosting_id=hosting.pk).update(purge_deleted=F("purge_deleted") + deleted)
    return deleted


def mail_service_purge_complete(*, hosting: Hosting) -> MailService | None:
    """Purging → active: delete what is still held and return to active under the hosting's
    lock, so no message slips between. Returns None (and does nothing) unless a started purge
    is in progress, so a second run is harmless."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        if service.state != State.PURGING or service.purge_started_at is None:
            return None
        remaining = 0
        while deleted := _held_delete_batch(hosting_id=hosting.pk, batch_size=settings.PURGE_BATCH_SIZE):
            remaining += deleted
        counter_add(hosting_id=hosting.pk, purged=remaining)
        from_state, reason = service.state, service.block_reason
        total = service.purge_deleted + remaining
        now = timezone.now()
        if reason == BlockReason.SPAM and _requested_by_the_customer(hosting_id=hosting.pk):
            service.spam_purged_at = now  # a second spam block soon after is support's (SPEC §9.1)
        state_set(service, State.ACTIVE, now)
        service.block_reason = ""
        service.forced = False  # back to the normal error tolerance
        service.support_only = False
        service.purge_requested_at = service.purge_due_at = service.purge_started_at = None
        service.purge_deleted = 0
        service.save(
            update_fields=[
                "state",
                "state_changed_at",
                "block_reason",
                "forced",
                "support_only",
                "spam_purged_at",
                *_PURGE_FIELDS,
            ]
        )
        event_record(
            service=service,
            action=Action.COMPLETE_PURGE,
            actor=Actor.system(),
            from_state=from_state,
            reason=reason,
            message_count=total,
        )
    return service


def _requested_by_the_customer(*, hosting_id: int) -> bool:
    """Whether the purge being completed was asked for by the customer (portal or API)."""
    request = Event.objects.filter(hosting_id=hosting_id, action=Action.PURGE).order_by("-created_at", "-id").first()
    return request is not None and request.actor_kind in (ActorKind.CUSTOMER, ActorKind.API)


def purge_run(*, hosting_id: int) -> MailService | None:
    """Run the hosting's purge if it is purging and due: delete held mail in batches, then
    return to active. Resumable after a crash; a concurrent second run deletes and completes
    nothing more. Returns the completed service, or None when there was nothing to do (a
    cancelled, finished or not-yet-due purge is left alone)."""
    hosting = Hosting.objects.filter(pk=hosting_id).first()
    if hosting is None:
        return None
    purge = mail_service_purge_start(hosting=hosting)
    if purge is None:
        return None
    while mail_service_purge_delete_batch(hosting=hosting, purge=purge):
        pass
    service = mail_service_purge_complete(hosting=hosting)
    if service is not None:
        logger.info("purge of %s complete", hosting.service_name, extra={"hosting_id": hosting.pk})
    return service


def purges_due() -> list[int]:
    """Hostings whose purge is due and not finished."""
    return list(
        MailService.objects.filter(state=State.PURGING, purge_due_at__lte=timezone.now())
        .order_by("purge_due_at")
        .values_list("hosting_id", flat=True)
    )


def purge_watchdog() -> list[int]:
    """Enqueue the run of every purge that is due and unfinished (requested, lost, or left by a
    dead worker). A run already in progress is harmless: batches are taken under the hosting's
    lock and the completion happens once."""
    due = purges_due()
    for hosting_id in due:
        dispatch.purge_run_now(hosting_id=hosting_id)
    return due
