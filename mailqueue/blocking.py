"""Block and unblock sending (SPEC §3, §9.1): by people, and by the platform on abuse
thresholds; Force, the active state with a doubled error tolerance after a `bounce` block."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue import dispatch
from mailqueue.counters import counter_add
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, ActorKind, BlockReason, MailService, Message, State
from mailqueue.state import Actor, MailServiceError, event_record, mail_service_check, state_set

_DEFAULT_BLOCK_REASON = {
    ActorKind.CUSTOMER: BlockReason.CUSTOMER,
    ActorKind.API: BlockReason.CUSTOMER,
    ActorKind.OPERATOR: BlockReason.OPERATOR,
    ActorKind.SYSTEM: BlockReason.SPAM,
}
_REASONS_BY_ACTOR = {
    ActorKind.CUSTOMER: {BlockReason.CUSTOMER},
    ActorKind.API: {BlockReason.CUSTOMER},
    ActorKind.OPERATOR: {BlockReason.OPERATOR, BlockReason.SPAM},
    ActorKind.SYSTEM: {BlockReason.RATE, BlockReason.BOUNCE, BlockReason.SPAM},
}


def _reason_check(reason: BlockReason, actor: Actor) -> None:
    if reason not in _REASONS_BY_ACTOR[actor.kind]:
        raise MailServiceError(_("This block reason is not allowed."), code="invalid")


def _block(*, hosting: Hosting, actor: Actor, action: Action, reason: BlockReason, detail: str = "") -> MailService:
    """Block under the hosting's lock; the block's Event is `service.block_event` afterwards."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, action, actor)
        now = timezone.now()
        from_state = service.state
        state_set(service, State.BLOCKED, now)
        service.block_reason = reason
        service.support_only = reason == BlockReason.SPAM and service.spam_repeat_at(now)
        service.save(update_fields=["state", "state_changed_at", "block_reason", "support_only"])
        # Queued and deferred messages become held for HOLD_HOURS, in the block's transaction.
        held = Message.objects.filter(hosting_id=hosting.pk).pending().hold(now)
        counter_add(hosting_id=hosting.pk, held=held)
        event = event_record(
            service=service,
            action=action,
            actor=actor,
            from_state=from_state,
            reason=reason,
            message_count=held,
            detail=detail[:300],
        )
        if reason == BlockReason.SPAM:
            dispatch.abuse_notify(event_id=event.pk)  # « Abus avec votre hébergement … », once
    service.block_event = event
    return service


def mail_service_block(
    *, hosting: Hosting, actor: Actor, reason: BlockReason | str | None = None, comment: str = ""
) -> MailService:
    """Active → blocked. Queued and deferred messages become held; new ones will be held.

    Customers and API clients block with reason `customer`; operators with `operator` or `spam`,
    and a `comment` kept in the Event and told to the customer in the notice of SPEC §10.3.
    """
    reason = BlockReason(reason) if reason else _DEFAULT_BLOCK_REASON[actor.kind]
    _reason_check(reason, actor)
    return _block(hosting=hosting, actor=actor, action=Action.BLOCK, reason=reason, detail=comment.strip())


def mail_service_auto_block(*, hosting: Hosting, reason: BlockReason | str, detail: str = "") -> MailService:
    """Active → blocked by the platform (abuse thresholds); the contact is told once, after commit."""
    reason = BlockReason(reason)
    actor = Actor.system()
    _reason_check(reason, actor)
    with transaction.atomic():
        service = _block(hosting=hosting, actor=actor, action=Action.AUTO_BLOCK, reason=reason, detail=detail)
        if reason != BlockReason.SPAM:  # a spam block sends the abuse notice instead
            dispatch.auto_block_notify(event_id=service.block_event.pk)
    return service


FORCED = "force"  # the detail of an Event that turned Force on


def mail_service_unblock(*, hosting: Hosting, actor: Actor, comment: str = "") -> MailService:
    """Blocked → active. Every held message goes back to delivery at once. Unblocking a
    `bounce` block gives Force: the error ratio allowed before the next block is doubled.
    An operator's `comment` is kept in the Event and told to the customer (SPEC §10.3)."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.UNBLOCK, actor)
        now = timezone.now()
        from_state, reason = service.state, service.block_reason
        state_set(service, State.ACTIVE, now)
        service.block_reason = ""
        service.support_only = False
        service.forced = service.forced or reason == BlockReason.BOUNCE
        service.save(update_fields=["state", "state_changed_at", "block_reason", "support_only", "forced"])
        released = Message.objects.filter(hosting_id=hosting.pk).held().release(now)
        event_record(
            service=service,
            action=Action.UNBLOCK,
            actor=actor,
            from_state=from_state,
            reason=reason,
            message_count=released,
            detail=FORCED if reason == BlockReason.BOUNCE else comment.strip()[:300],
        )
        if released:
            dispatch.delivery_now()  # the delivery sweep picks them up if the broker is down
    return service


def mail_service_force_reset(*, hosting: Hosting, actor: Actor) -> MailService:
    """Force → the normal error tolerance (operators; a completed purge does it too)."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.RESET_FORCE, actor)
        service.forced = False
        service.save(update_fields=["forced"])
        event_record(service=service, action=Action.RESET_FORCE, actor=actor, from_state=service.state)
    return service
