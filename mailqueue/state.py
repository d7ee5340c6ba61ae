"""The mail service's state machine (SPEC §3): who may do what in which state, and the Event
that every action writes.

The transitions themselves live in rooms named after them (`blocking`, `purge`,
`report_recipient`, `hourly_limit`); each runs in one transaction holding the hosting's lock
(`locks.mail_service_lock`), calls `mail_service_check`, writes one Event with `event_record`
and raises `MailServiceError` (translatable message) when refused, having changed nothing.
"""

import dataclasses
import datetime
import logging

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from mailqueue import dispatch
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, ActorKind, BlockReason, Event, MailService, State, WebhookEvent
from mailqueue.service_notices import notice_wanted
from mailqueue.webhooks import webhook_hosting_event

logger = logging.getLogger(__name__)


class MailServiceError(Exception):
    """An action refused by the state machine; `message` is shown to the person who asked."""

    def __init__(self, message, *, code: str = "refused"):
        super().__init__(str(message))
        self.message = message
        self.code = code


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acts: a customer's user, an operator, an API credential or the platform itself."""

    kind: ActorKind
    user: object = None
    label: str = ""

    @classmethod
    def customer(cls, user) -> "Actor":
        return cls(ActorKind.CUSTOMER, user, user.get_username())

    @classmethod
    def operator(cls, user) -> "Actor":
        return cls(ActorKind.OPERATOR, user, user.get_username())

    @classmethod
    def api(cls, label: str, user=None) -> "Actor":
        return cls(ActorKind.API, user, label)

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(ActorKind.SYSTEM, None, label)


@dataclasses.dataclass(frozen=True)
class Transition:
    sources: frozenset
    target: State | None  # None: the state does not change
    actors: frozenset


PEOPLE = frozenset({ActorKind.CUSTOMER, ActorKind.OPERATOR, ActorKind.API})
_ANY_STATE = frozenset(State)

# The allowed-transition table of SPEC §3; anything not here is refused.
TRANSITIONS: dict[Action, Transition] = {
    Action.BLOCK: Transition(frozenset({State.ACTIVE}), State.BLOCKED, PEOPLE | {ActorKind.SYSTEM}),
    Action.UNBLOCK: Transition(frozenset({State.BLOCKED}), State.ACTIVE, PEOPLE),
    Action.PURGE: Transition(frozenset({State.BLOCKED}), State.PURGING, PEOPLE),
    Action.CANCEL_PURGE: Transition(frozenset({State.PURGING}), State.BLOCKED, PEOPLE),
    Action.COMPLETE_PURGE: Transition(frozenset({State.PURGING}), State.ACTIVE, frozenset({ActorKind.SYSTEM})),
    Action.AUTO_BLOCK: Transition(frozenset({State.ACTIVE}), State.BLOCKED, frozenset({ActorKind.SYSTEM})),
    Action.CHANGE_RECIPIENT: Transition(_ANY_STATE, None, PEOPLE),
    Action.SET_LIMIT: Transition(_ANY_STATE, None, frozenset({ActorKind.OPERATOR})),
    # Force ends when a purge completes, or when an operator resets it (SPEC §9.1).
    Action.RESET_FORCE: Transition(_ANY_STATE, None, frozenset({ActorKind.OPERATOR})),
    Action.UNSUPPRESS: Transition(_ANY_STATE, None, PEOPLE),
    # One message or a selection, from the delivery log (SPEC §10.3): delete held or queued ones,
    # retry deferred ones now (only while delivery runs: a blocked service holds them).
    Action.DELETE_MESSAGES: Transition(_ANY_STATE, None, PEOPLE),
    Action.RETRY_MESSAGES: Transition(frozenset({State.ACTIVE}), None, PEOPLE),
    Action.SET_SENDER_DOMAINS: Transition(_ANY_STATE, None, frozenset({ActorKind.OPERATOR})),
}

# A spam block is lifted by a purge (SPEC §9.1); only support may unblock it, or act at all
# on a spam block repeated within SPAM_REPEAT_DAYS of one the customer purged.
_SUPPORT = frozenset({ActorKind.OPERATOR, ActorKind.SYSTEM})
_LIFTING_ACTIONS = frozenset({Action.UNBLOCK, Action.PURGE, Action.CANCEL_PURGE})

ALREADY_BLOCKED = _("E-mail sending is already blocked.")
PURGING_ALREADY_BLOCKED = _("A purge is in progress: sending is already blocked.")
NO_PURGE = _("No purge is in progress.")
NOT_FORCED = _("The error tolerance is not doubled.")

_STATE_REFUSALS = {
    (Action.BLOCK, State.BLOCKED): ALREADY_BLOCKED,
    (Action.BLOCK, State.PURGING): PURGING_ALREADY_BLOCKED,
    (Action.UNBLOCK, State.ACTIVE): _("E-mail sending is not blocked."),
    (Action.UNBLOCK, State.PURGING): _("A purge is in progress: cancel it before unblocking sending."),
    (Action.PURGE, State.ACTIVE): _("To purge the e-mails, you must first block sending."),
    (Action.PURGE, State.PURGING): _("A purge is already in progress."),
    (Action.CANCEL_PURGE, State.ACTIVE): NO_PURGE,
    (Action.CANCEL_PURGE, State.BLOCKED): NO_PURGE,
    (Action.COMPLETE_PURGE, State.ACTIVE): NO_PURGE,
    (Action.COMPLETE_PURGE, State.BLOCKED): NO_PURGE,
    (Action.AUTO_BLOCK, State.BLOCKED): ALREADY_BLOCKED,
    (Action.AUTO_BLOCK, State.PURGING): PURGING_ALREADY_BLOCKED,
    (Action.RETRY_MESSAGES, State.BLOCKED): _("Sending is blocked: unblock it to retry the e-mails."),
    (Action.RETRY_MESSAGES, State.PURGING): _("A purge is in progress: the e-mails cannot be retried."),
}


def transition_refusal(*, service: MailService, action: Action, actor: Actor):
    """The reason `actor` may not do `action` now, or None if allowed. Reads only."""
    transition = TRANSITIONS[action]
    if actor.kind not in transition.actors:
        return _("You are not allowed to perform this action.")
    if service.state not in transition.sources:
        return _STATE_REFUSALS[(action, State(service.state))]
    if action in _LIFTING_ACTIONS and actor.kind not in _SUPPORT and service.block_reason == BlockReason.SPAM:
        if service.support_only:
            return _(
                "This block for abusive sending can only be lifted by our support team. Reply to the e-mail “Abuse "
                "with your web hosting %(service)s” you received."
            ) % {"service": service.hosting.service_name}
        if action == Action.UNBLOCK:
            return _("A block for abusive sending is lifted by purging the held e-mails.")
    if action == Action.RESET_FORCE and not service.forced:
        return NOT_FORCED
    if action == Action.CANCEL_PURGE and service.purge_started_at is not None:
        return _("The deletion of the e-mails has already started: the purge can no longer be cancelled.")
    return None


def mail_service_check(service: MailService, action: Action, actor: Actor) -> None:
    """Raise MailServiceError unless `actor` may do `action` now (call it under the lock)."""
    refusal = transition_refusal(service=service, action=action, actor=actor)
    if refusal is not None:
        raise MailServiceError(refusal)


def state_set(service: MailService, state: State, now: datetime.datetime) -> None:
    """Change the state in memory (the caller saves `state` and `state_changed_at`)."""
    service.state = state
    service.state_changed_at = now


def event_record(*, service: MailService, action: Action, actor: Actor, from_state: str, **fields) -> Event:
    """Write the action's Event (append-only) and log it, with the hosting's id; then, after
    commit, what follows from it: the notice of SPEC §10.3 when the customer did not ask for it,
    the webhooks `service.state_changed` and `message.purged` (SPEC §10.4)."""
    user = actor.user if getattr(actor.user, "pk", None) else None
    event = Event.objects.create(
        hosting_id=service.hosting_id,
        action=action,
        from_state=from_state,
        to_state=service.state,
        actor_kind=actor.kind,
        actor_user=user,
        actor_label=actor.label[:150],
        **fields,
    )
    logger.info(
        "mail service %s: %s %s → %s by %s %s",
        service.hosting_id,
        action,
        from_state,
        service.state,
        actor.kind,
        actor.label,
        extra={"hosting_id": service.hosting_id, "event_id": event.pk, "actor": actor.label},
    )
    if notice_wanted(action=action, actor_kind=actor.kind, reason=event.reason):
        dispatch.service_notice(event_id=event.pk)
    if from_state != service.state:
        data = {"from": from_state, "to": service.state, "reason": service.block_reason, "action": action}
        webhook_hosting_event(hosting=service.hosting_id, event_type=WebhookEvent.SERVICE_STATE_CHANGED, data=data)
    if action == Action.COMPLETE_PURGE:
        data = {"count": event.message_count or 0}
        webhook_hosting_event(hosting=service.hosting_id, event_type=WebhookEvent.MESSAGE_PURGED, data=data)
    return event


def _shown(value) -> str:
    return "-" if value is None or value == "" else str(value)


def mail_service_setting_change(*, hosting, actor: Actor, action: Action, field: str, value) -> MailService:
    """Set one setting of the service (`field`, e.g. the report recipient) under the hosting's
    lock, if `actor` may do `action`; one Event says "old → new". The caller has checked `value`."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, action, actor)
        old = getattr(service, field)
        setattr(service, field, value)
        service.save(update_fields=[field])
        event_record(
            service=service,
            action=action,
            actor=actor,
            from_state=service.state,
            detail=f"{_shown(old)} → {_shown(value)}",
        )
    return service
