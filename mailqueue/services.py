"""The mail service's state machine (SPEC §3) and the one submission service (SPEC §4.1).

Every state change of a mail service goes through a function of this module. Each runs in
one transaction holding the hosting's row lock, checks `TRANSITIONS`, writes one Event and
raises `MailServiceError` (translatable message) when refused, having changed nothing.
"""

import dataclasses
import datetime
import email.header
import email.policy
import logging
import uuid
from email.parser import BytesHeaderParser

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue import rfc5322
from mailqueue.counters import counter_add, submitted_today_incr
from mailqueue.models import (
    Action,
    ActorKind,
    BlockReason,
    Event,
    MailService,
    Message,
    MessageStatus,
    RecipientStatus,
    State,
)

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


_PEOPLE = frozenset({ActorKind.CUSTOMER, ActorKind.OPERATOR, ActorKind.API})
_ANY_STATE = frozenset(State)

# The allowed-transition table of SPEC §3; anything not here is refused.
TRANSITIONS: dict[Action, Transition] = {
    Action.BLOCK: Transition(frozenset({State.ACTIVE}), State.BLOCKED, _PEOPLE | {ActorKind.SYSTEM}),
    Action.UNBLOCK: Transition(frozenset({State.BLOCKED}), State.ACTIVE, _PEOPLE),
    Action.PURGE: Transition(frozenset({State.BLOCKED}), State.PURGING, _PEOPLE),
    Action.CANCEL_PURGE: Transition(frozenset({State.PURGING}), State.BLOCKED, _PEOPLE),
    Action.COMPLETE_PURGE: Transition(frozenset({State.PURGING}), State.ACTIVE, frozenset({ActorKind.SYSTEM})),
    Action.AUTO_BLOCK: Transition(frozenset({State.ACTIVE}), State.BLOCKED, frozenset({ActorKind.SYSTEM})),
    Action.CHANGE_RECIPIENT: Transition(_ANY_STATE, None, _PEOPLE),
    Action.SET_LIMIT: Transition(_ANY_STATE, None, frozenset({ActorKind.OPERATOR})),
}

# Only operators and the platform may lift a block for spam.
_SPAM_UNBLOCKERS = frozenset({ActorKind.OPERATOR})

_STATE_REFUSALS = {
    (Action.BLOCK, State.BLOCKED): _("L'envoi des e-mails est déjà bloqué."),
    (Action.BLOCK, State.PURGING): _("Une purge est en cours : l'envoi est déjà bloqué."),
    (Action.UNBLOCK, State.ACTIVE): _("L'envoi des e-mails n'est pas bloqué."),
    (Action.UNBLOCK, State.PURGING): _("Une purge est en cours : annulez-la avant de débloquer l'envoi."),
    (Action.PURGE, State.ACTIVE): _("Pour purger les e-mails, vous devez d'abord en demander le blocage."),
    (Action.PURGE, State.PURGING): _("Une purge est déjà en cours."),
    (Action.CANCEL_PURGE, State.ACTIVE): _("Aucune purge n'est en cours."),
    (Action.CANCEL_PURGE, State.BLOCKED): _("Aucune purge n'est en cours."),
    (Action.COMPLETE_PURGE, State.ACTIVE): _("Aucune purge n'est en cours."),
    (Action.COMPLETE_PURGE, State.BLOCKED): _("Aucune purge n'est en cours."),
    (Action.AUTO_BLOCK, State.BLOCKED): _("L'envoi des e-mails est déjà bloqué."),
    (Action.AUTO_BLOCK, State.PURGING): _("Une purge est en cours : l'envoi est déjà bloqué."),
}


def transition_refusal(*, service: MailService, action: Action, actor: Actor):
    """The reason `actor` may not do `action` now, or None if allowed. Reads only."""
    transition = TRANSITIONS[action]
    if actor.kind not in transition.actors:
        return _("Vous n'êtes pas autorisé à effectuer cette action.")
    if service.state not in transition.sources:
        return _STATE_REFUSALS[(action, State(service.state))]
    # A purge ends in `active`, so purging a spam block would lift it: the same people only.
    if (
        action in (Action.UNBLOCK, Action.PURGE)
        and service.block_reason == BlockReason.SPAM
        and actor.kind not in _SPAM_UNBLOCKERS
    ):
        return _("Ce blocage pour envoi abusif ne peut être levé que par notre support.")
    if action == Action.CANCEL_PURGE and service.purge_started_at is not None:
        return _("La suppression des e-mails a déjà commencé : la purge ne peut plus être annulée.")
    return None


def allowed_actions(*, service: MailService, actor: Actor) -> set[Action]:
    """The actions `actor` may do on `service` now (for enabling buttons)."""
    return {action for action in TRANSITIONS if transition_refusal(service=service, action=action, actor=actor) is None}


# --- locking -----------------------------------------------------------------------------


# Namespace of the product's advisory locks (the upper 32 bits of the key): "mail".
_ADVISORY_NAMESPACE = 0x6D61696C << 32


def _advisory_lock(hosting_ids, *, shared: bool) -> None:
    """PostgreSQL: take the hostings' advisory locks until commit, in id order.

    Row share locks let new readers in while a writer waits, so a flood of submissions could
    hold a block off indefinitely; advisory lock waiters are served in order, so a block waits
    only for the submissions already in progress.
    """
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        for hosting_id in sorted(set(hosting_ids)):
            cursor.execute(f"SELECT {function}(%s)", [_ADVISORY_NAMESPACE + (hosting_id & 0xFFFFFFFF)])


def mail_service_lock(*, hosting_id: int) -> MailService:
    """The hosting's mail service, created if missing, locked exclusively until commit.

    On PostgreSQL: the hosting's advisory lock (fair against submissions), then the row FOR
    UPDATE. On SQLite, transactions are IMMEDIATE (settings): the database write lock serialises
    them. Only the service row is locked (`of`): a FOR UPDATE on the joined hosting would conflict
    with every insert referencing it (messages, hand-offs, counters) and deadlock with them.
    """
    _advisory_lock([hosting_id], shared=False)
    MailService.objects.get_or_create(hosting_id=hosting_id)
    return (
        MailService.objects.select_for_update(of=("self",))
        .select_related("hosting__customer")
        .get(hosting_id=hosting_id)
    )


def mail_service_lock_shared(*, hosting_ids) -> dict[int, str]:
    """The states of these hostings' services, under a shared lock until commit.

    Submissions and delivery results take this lock, transitions the exclusive one: a message
    stored under the shared lock is seen by the block that waits for it (no slip between).
    """
    hosting_ids = sorted(set(hosting_ids))
    _advisory_lock(hosting_ids, shared=True)
    table = MailService._meta.db_table
    placeholders = ", ".join(["%s"] * len(hosting_ids))
    sql = f"SELECT hosting_id, state FROM {table} WHERE hosting_id IN ({placeholders}) ORDER BY hosting_id"
    with connection.cursor() as cursor:
        cursor.execute(sql, hosting_ids)
        states = dict(cursor.fetchall())
        if len(states) < len(hosting_ids):  # a hosting without its service row yet
            for hosting_id in set(hosting_ids) - set(states):
                MailService.objects.get_or_create(hosting_id=hosting_id)
            cursor.execute(sql, hosting_ids)
            states = dict(cursor.fetchall())
    return states


def mail_service_get(*, hosting: Hosting) -> MailService:
    """The hosting's mail service (created on first use), without a lock."""
    service, _created = MailService.objects.select_related("hosting__customer").get_or_create(hosting=hosting)
    return service


def _event(*, service: MailService, action: Action, actor: Actor, from_state: str, **fields) -> Event:
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
    return event


def _check(service: MailService, action: Action, actor: Actor) -> None:
    refusal = transition_refusal(service=service, action=action, actor=actor)
    if refusal is not None:
        raise MailServiceError(refusal)


def _set_state(service: MailService, state: State, now: datetime.datetime) -> None:
    service.state = state
    service.state_changed_at = now


# --- transitions -------------------------------------------------------------------------


def _hold_pending_messages(*, hosting_id: int, now: datetime.datetime) -> int:
    """Queued and deferred messages become held for HOLD_HOURS (inside the block's transaction)."""
    held = Message.objects.filter(
        hosting_id=hosting_id, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]
    ).update(
        status=MessageStatus.HELD,
        held_at=now,
        held_until=now + datetime.timedelta(hours=settings.HOLD_HOURS),
        next_attempt_at=None,
    )
    counter_add(hosting_id=hosting_id, held=held)
    return held


def _block(*, hosting: Hosting, actor: Actor, action: Action, reason: BlockReason, detail: str = "") -> MailService:
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, action, actor)
        now = timezone.now()
        from_state = service.state
        _set_state(service, State.BLOCKED, now)
        service.block_reason = reason
        service.save(update_fields=["state", "state_changed_at", "block_reason"])
        held = _hold_pending_messages(hosting_id=hosting.pk, now=now)
        _event(
            service=service,
            action=action,
            actor=actor,
            from_state=from_state,
            reason=reason,
            message_count=held,
            detail=detail[:300],
        )
    return service


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


def mail_service_block(*, hosting: Hosting, actor: Actor, reason: BlockReason | str | None = None) -> MailService:
    """Active → blocked. Queued and deferred messages become held; new ones will be held.

    Customers and API clients block with reason `customer`; operators with `operator` or `spam`.
    """
    reason = BlockReason(reason) if reason else _DEFAULT_BLOCK_REASON[actor.kind]
    if reason not in _REASONS_BY_ACTOR[actor.kind]:
        raise MailServiceError(_("Cette raison de blocage n'est pas permise."), code="invalid")
    return _block(hosting=hosting, actor=actor, action=Action.BLOCK, reason=reason)


def mail_service_auto_block(*, hosting: Hosting, reason: BlockReason | str, detail: str = "") -> MailService:
    """Active → blocked by the platform (abuse thresholds); the contact is told once, after commit."""
    reason = BlockReason(reason)
    if reason not in _REASONS_BY_ACTOR[ActorKind.SYSTEM]:
        raise MailServiceError(_("Cette raison de blocage n'est pas permise."), code="invalid")
    service = _block(hosting=hosting, actor=Actor.system(), action=Action.AUTO_BLOCK, reason=reason, detail=detail)
    from mailqueue import tasks

    # robust: the block is committed; a broker outage must not turn it into an error.
    transaction.on_commit(lambda: tasks.notify_auto_block.delay(hosting.pk, reason), robust=True)
    return service


def mail_service_unblock(*, hosting: Hosting, actor: Actor) -> MailService:
    """Blocked → active. Every held message goes back to delivery at once."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, Action.UNBLOCK, actor)
        now = timezone.now()
        from_state, reason = service.state, service.block_reason
        _set_state(service, State.ACTIVE, now)
        service.block_reason = ""
        service.save(update_fields=["state", "state_changed_at", "block_reason"])
        released = Message.objects.filter(hosting_id=hosting.pk, status=MessageStatus.HELD).update(
            status=MessageStatus.QUEUED, held_at=None, held_until=None, next_attempt_at=now
        )
        _event(
            service=service,
            action=Action.UNBLOCK,
            actor=actor,
            from_state=from_state,
            reason=reason,
            message_count=released,
        )
        if released:
            from mailqueue import tasks

            # robust: the unblock is committed; if the broker is down, the delivery sweep picks them up.
            transaction.on_commit(tasks.deliver_due.delay, robust=True)
    return service


def mail_service_purge_request(*, hosting: Hosting, actor: Actor) -> MailService:
    """Blocked → purging. After PURGE_GRACE_SECONDS a worker deletes every held message, then
    the service returns to active by itself (the purge watchdog guarantees it)."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, Action.PURGE, actor)
        now = timezone.now()
        from_state = service.state
        _set_state(service, State.PURGING, now)
        service.purge_requested_at = now
        service.purge_due_at = now + datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS)
        service.purge_started_at = None
        service.purge_deleted = 0
        service.save(
            update_fields=[
                "state",
                "state_changed_at",
                "purge_requested_at",
                "purge_due_at",
                "purge_started_at",
                "purge_deleted",
            ]
        )
        _event(service=service, action=Action.PURGE, actor=actor, from_state=from_state, reason=service.block_reason)
        from mailqueue import tasks

        countdown = max(0, settings.PURGE_GRACE_SECONDS)
        # robust: the request is committed; if the broker is down, the purge watchdog runs it when due.
        transaction.on_commit(lambda: tasks.run_purge.apply_async((hosting.pk,), countdown=countdown), robust=True)
    return service


def mail_service_purge_cancel(*, hosting: Hosting, actor: Actor) -> MailService:
    """Purging → blocked, allowed until the deletion has started; held messages stay held."""
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, Action.CANCEL_PURGE, actor)
        from_state = service.state
        _set_state(service, State.BLOCKED, timezone.now())
        service.purge_requested_at = service.purge_due_at = None
        service.save(update_fields=["state", "state_changed_at", "purge_requested_at", "purge_due_at"])
        _event(
            service=service,
            action=Action.CANCEL_PURGE,
            actor=actor,
            from_state=from_state,
            reason=service.block_reason,
        )
    return service


def _delete_held_batch(*, hosting_id: int, batch_size: int) -> int:
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
    ids = list(
        Message.objects.filter(hosting_id=hosting_id, status=MessageStatus.HELD)
        .order_by("id")
        .values_list("id", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    deleted, _per_model = Message.objects.filter(id__in=ids, status=MessageStatus.HELD).delete()
    return deleted


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
        deleted = _delete_held_batch(hosting_id=hosting.pk, batch_size=settings.PURGE_BATCH_SIZE)
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
        while deleted := _delete_held_batch(hosting_id=hosting.pk, batch_size=settings.PURGE_BATCH_SIZE):
            remaining += deleted
        counter_add(hosting_id=hosting.pk, purged=remaining)
        from_state, reason = service.state, service.block_reason
        total = service.purge_deleted + remaining
        _set_state(service, State.ACTIVE, timezone.now())
        service.block_reason = ""
        service.purge_requested_at = service.purge_due_at = service.purge_started_at = None
        service.purge_deleted = 0
        service.save(
            update_fields=[
                "state",
                "state_changed_at",
                "block_reason",
                "purge_requested_at",
                "purge_due_at",
                "purge_started_at",
                "purge_deleted",
            ]
        )
        _event(
            service=service,
            action=Action.COMPLETE_PURGE,
            actor=Actor.system(),
            from_state=from_state,
            reason=reason,
            message_count=total,
        )
    return service


def mail_service_recipient_change(*, hosting: Hosting, actor: Actor, email: str) -> MailService:
    """Set the error-report recipient; empty means the customer's contact e-mail."""
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise MailServiceError(_("L'adresse e-mail n'est pas valide."), code="invalid") from None
        if len(email) > 254:
            raise MailServiceError(_("L'adresse e-mail n'est pas valide."), code="invalid")
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, Action.CHANGE_RECIPIENT, actor)
        old = service.report_recipient
        service.report_recipient = email
        service.save(update_fields=["report_recipient"])
        _event(
            service=service,
            action=Action.CHANGE_RECIPIENT,
            actor=actor,
            from_state=service.state,
            detail=f"{old or '-'} → {email or '-'}",
        )
    return service


def mail_service_limit_set(*, hosting: Hosting, actor: Actor, limit: int | None) -> MailService:
    """Override the plan's hourly limit (None: back to the plan's); operators only."""
    if limit is not None and (not isinstance(limit, int) or limit < 1 or limit > 1_000_000):
        raise MailServiceError(_("La limite doit être un entier entre 1 et 1 000 000."), code="invalid")
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        _check(service, Action.SET_LIMIT, actor)
        old = service.hourly_limit_override
        service.hourly_limit_override = limit
        service.save(update_fields=["hourly_limit_override"])
        _event(
            service=service,
            action=Action.SET_LIMIT,
            actor=actor,
            from_state=service.state,
            detail=f"{old if old is not None else '-'} → {limit if limit is not None else '-'}",
        )
    return service


# --- submission (SPEC §4.1) ----------------------------------------------------------------


class SubmissionError(Exception):
    """A message refused at submission, with the SMTP reply every door maps it to."""

    def __init__(self, message, *, smtp_code: int, enhanced_code: str):
        super().__init__(str(message))
        self.message = message
        self.smtp_code = smtp_code
        self.enhanced_code = enhanced_code

    @property
    def smtp_reply(self) -> str:
        return f"{self.smtp_code} {self.enhanced_code} {self.message}"


def _clean_text(value: str, limit: int) -> str:
    """Header text made safe to store: valid UTF-8, unfolded, no NUL or line breaks, at most `limit` chars."""
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    value = value.replace("\r\n", "").replace("\x00", "").replace("\r", " ").replace("\n", " ").strip()
    return value[:limit]


def _header_chunk_text(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    if charset is None:  # decode_header's encoding of the text between encoded-words
        return chunk.decode("raw-unicode-escape")
    try:
        return chunk.decode(charset, "replace")
    except LookupError:
        return chunk.decode("utf-8", "replace")


def _decoded_header(value) -> str:
    """A header's display text: RFC 2047 encoded-words decoded, raw 8-bit read as UTF-8."""
    if value is None:
        return ""
    try:
        parts = email.header.decode_header(value)
        if len(parts) == 1 and parts[0][1] == "unknown-8bit":
            # Raw 8-bit text (PHP mail() sends subjects as they are), maybe with encoded-words.
            parts = email.header.decode_header(parts[0][0].decode("utf-8", "replace"))
        return "".join(_header_chunk_text(chunk, charset) for chunk, charset in parts)
    except Exception:  # malformed encoded-words: keep the header as it came
        return str(value)


def _storable_text(value: str) -> bool:
    """No control character (CR, LF, NUL…) and no lone surrogate (which no database stores)."""
    return not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or 0xD800 <= ord(char) <= 0xDFFF for char in value)


def address_validate(address: str, *, field: str = "recipient") -> str:
    """A bare envelope address, checked; SubmissionError (553) when it is not one (not a string,
    a line break, NUL or other control character, a lone surrogate, a list separator…)."""
    address = (address if isinstance(address, str) else "").strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    try:
        if len(address) > 254 or any(char in address for char in "<>,;") or not _storable_text(address):
            raise ValidationError("bad")
        validate_email(address)
    except ValidationError:
        if field == "sender":
            raise SubmissionError(_("Adresse d'expéditeur invalide."), smtp_code=553, enhanced_code="5.1.7") from None
        raise SubmissionError(_("Adresse de destinataire invalide."), smtp_code=553, enhanced_code="5.1.3") from None
    return address


def message_size_check(size: int) -> None:
    if size > settings.MAX_MESSAGE_BYTES:
        raise SubmissionError(
            _("Message trop volumineux (%(limit)d octets au plus).") % {"limit": settings.MAX_MESSAGE_BYTES},
            smtp_code=552,
            enhanced_code="5.3.4",
        )


def message_lines_check(raw: bytes) -> None:
    """SubmissionError (554 5.6.0) when a line of the normalised message is over 998 octets."""
    overlong = rfc5322.overlong_line(raw)
    if overlong is not None:
        line, length = overlong
        raise SubmissionError(
            _(
                "Ligne %(line)d trop longue : %(length)d octets, %(limit)d au plus (RFC 5322). "
                "Encodez le corps en quoted-printable ou en base64."
            )
            % {"line": line, "length": length, "limit": rfc5322.MAX_LINE_OCTETS},
            smtp_code=554,
            enhanced_code="5.6.0",
        )


def sender_validate(sender) -> str:
    """The envelope sender, checked (see address_validate). The null sender `<>` is refused
    (553 5.7.1): it is the reverse-path of bounces and delivery reports (RFC 5321 §4.5.5), which
    a hosting's scripts have no reason to send and which nobody could answer."""
    if sender is None or (isinstance(sender, str) and sender.strip() in ("", "<>")):
        raise SubmissionError(
            _("L'expéditeur vide (<>) est réservé aux avis de non-remise : indiquez l'adresse de l'expéditeur."),
            smtp_code=553,
            enhanced_code="5.7.1",
        )
    return address_validate(sender, field="sender")


def recipients_validate(recipients) -> list[str]:
    """Checked, deduplicated recipients; SubmissionError for none (501), a bad one (553), too many (452)."""
    first_seen: dict[str, str] = {}  # lower-cased address → the address as first given
    for recipient in recipients or ():
        address = address_validate(recipient)
        first_seen.setdefault(address.lower(), address)
    unique = list(first_seen.values())
    if not unique:
        raise SubmissionError(_("Au moins un destinataire valide est requis."), smtp_code=501, enhanced_code="5.5.4")
    if len(unique) > settings.MAX_RECIPIENTS:
        raise SubmissionError(
            _("Trop de destinataires (%(limit)d au plus).") % {"limit": settings.MAX_RECIPIENTS},
            smtp_code=452,
            enhanced_code="4.5.3",
        )
    return unique


def message_accept(*, hosting: Hosting, sender: str, recipients, raw: bytes) -> Message:
    """Store one submitted message, queued (service active) or held (blocked or purging).

    The one submission path of every door (SMTP, sendmail, API). Bad input raises
    SubmissionError and stores nothing; the message is stored with CRLF line ends only and
    over-long header lines folded (`rfc5322.message_normalise`). The service's state is read under a share lock, so a
    block either sees this message (and holds it) or commits first (and this message is held).
    Delivery is enqueued after commit.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise SubmissionError(_("Le message doit être fourni en octets."), smtp_code=554, enhanced_code="5.6.0")
    raw = rfc5322.message_normalise(bytes(raw))
    message_size_check(len(raw))
    message_lines_check(raw)
    sender = sender_validate(sender)
    addresses = recipients_validate(recipients)
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    subject = _clean_text(_decoded_header(headers.get("Subject")), 255)
    message_id = _clean_text(str(headers.get("Message-ID") or ""), 255)
    if not message_id:
        message_id = f"<{uuid.uuid4().hex}@{settings.SMTP_INGRESS_HOSTNAME}>"
    now = timezone.now()
    with transaction.atomic():
        state = mail_service_lock_shared(hosting_ids=[hosting.pk])[hosting.pk]
        held = state != State.ACTIVE
        message = Message.objects.create(
            hosting=hosting,
            message_id=message_id,
            sender=sender,
            recipients=[
                {"address": address, "status": RecipientStatus.PENDING, "code": None, "reply": ""}
                for address in addresses
            ],
            recipient_count=len(addresses),
            subject=subject,
            size=len(raw),
            raw=raw,
            status=MessageStatus.HELD if held else MessageStatus.QUEUED,
            created_at=now,
            held_at=now if held else None,
            held_until=now + datetime.timedelta(hours=settings.HOLD_HOURS) if held else None,
            next_attempt_at=None if held else now,
        )
        if held:
            # Only held mail touches the day's counter row: a counter updated by every
            # submission would serialise a hosting's concurrent submissions on its row lock.
            counter_add(hosting_id=hosting.pk, held=1)
        else:
            from mailqueue import tasks

            # robust: the message is stored; a broker hiccup must not turn that into an error
            # (the client would submit it again), the periodic delivery sweep picks it up.
            transaction.on_commit(tasks.deliver_soon, robust=True)
        transaction.on_commit(submitted_today_incr, robust=True)
    return message
