"""What the bounce door does with what comes back (SPEC §10.1): attribute it by its return-path
token, then record it once. `Action: failed` → a Delivery error (and maybe a suppression);
`delayed` → noted on the recipient; a complaint → counted against the hosting. Anything that
cannot be attributed is kept whole for operators (UnattributedBounce), never dropped, never
counted against a tenant the token does not prove."""

import dataclasses
import logging
import re
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailqueue.bounce_parsing import BounceReport, RecipientReport, bounce_parse
from mailqueue.counters import counter_add
from mailqueue.models import (
    BounceProblem,
    Complaint,
    DeliveryError,
    ErrorKind,
    Message,
    MessageStatus,
    RecipientStatus,
    UnattributedBounce,
    WebhookEvent,
)
from mailqueue.return_path import ForgedToken, ReturnPathToken, return_path_parse
from mailqueue.suppression import suppressions_add
from mailqueue.webhooks import message_data, webhook_hosting_event

logger = logging.getLogger(__name__)
_REPLY_CODE = re.compile(r"^\s*([245]\d\d)\b")


@dataclasses.dataclass(frozen=True)
class BounceOutcome:
    result: str  # error, duplicate, delayed, noted, complaint, unattributed
    hosting_id: int | None = None
    message_pk: int | None = None
    problem: str = ""


def _candidates(raw: bytes, envelope_recipients: Sequence[str]) -> list[str]:
    """Return paths to try: the envelope's first (the bounce was sent to one), then any written
    inside the report (a complaint quotes the original's Return-Path; Postfix its X-Postfix-Sender)."""
    pattern = re.compile(
        rb"[\w.+-]*"
        + re.escape(settings.BOUNCE_LOCAL_PART.encode())
        + rb"\+[0-9a-z-]+@"
        + re.escape(settings.BOUNCE_DOMAIN.encode()),
        re.IGNORECASE,
    )
    inside = [match.group().decode("ascii", "replace") for match in pattern.finditer(raw)]
    return [*envelope_recipients, *dict.fromkeys(inside)]


def _token_find(raw: bytes, envelope_recipients: Sequence[str]) -> tuple[ReturnPathToken | None, str]:
    forged = False
    for address in _candidates(raw, envelope_recipients):
        try:
            token = return_path_parse(address)
        except ForgedToken:
            forged = True
            continue
        if token is not None:
            return token, ""
    return None, BounceProblem.FORGED if forged else BounceProblem.NO_TOKEN


def bounce_receive(*, raw: bytes, envelope_recipients: Sequence[str] = (), envelope_sender: str = "") -> BounceOutcome:
    """Read one message received for the bounce domain and record what it says, exactly once:
    the same report received twice changes nothing the second time. Never raises on bad input
    (what it cannot read is kept as unattributed); database errors propagate, so the door
    answers 451 and the sender's MTA tries again."""
    report = bounce_parse(raw)
    token, problem = _token_find(raw, envelope_recipients)
    if not problem and report.kind == "unrecognised":
        problem = BounceProblem.UNRECOGNISED
    if problem:
        return _unattributed(raw, report, problem, envelope_recipients, envelope_sender)
    with transaction.atomic():
        # The message's row lock: a report arriving twice at once waits for the first, then
        # finds the recipient already failed.
        message = Message.objects.select_for_update().filter(pk=token.message_pk, hosting_id=token.hosting_id).first()
        if message is not None and token.index < len(message.recipients):
            if report.kind == "complaint":
                return _complaint(message, token, report)
            return _report(message, token, report.worst)
    return _unattributed(raw, report, BounceProblem.UNKNOWN_MESSAGE, envelope_recipients, envelope_sender)


def _unattributed(raw, report: BounceReport, problem: str, recipients, sender: str) -> BounceOutcome:
    kept = UnattributedBounce.objects.create(
        problem=problem,
        envelope_sender=sender[:320],
        envelope_recipients=[str(address)[:320] for address in recipients][:100],
        subject=report.subject,
        size=len(raw),
        raw=raw,
    )
    logger.warning("bounce door: unattributed message kept as %s (%s)", kept.pk, problem)
    return BounceOutcome("unattributed", problem=problem)


def _complaint(message: Message, token: ReturnPathToken, report: BounceReport) -> BounceOutcome:
    recipient = message.recipients[token.index]["address"]
    _complaint_row, created = Complaint.objects.get_or_create(
        message_id=message.pk,
        recipient=recipient,
        defaults={"hosting_id": message.hosting_id, "feedback_type": report.feedback_type, "reporter": report.reporter},
    )
    logger.warning(
        "complaint about message %s of hosting %s%s",
        message.pk,
        message.hosting_id,
        "" if created else " (again)",
        extra={"hosting_id": message.hosting_id, "message_pk": message.pk},
    )
    return BounceOutcome("complaint" if created else "duplicate", message.hosting_id, message.pk)


def _code(report: RecipientReport) -> int:
    match = _REPLY_CODE.match(report.diagnostic)
    if match:
        return int(match.group(1))
    return 550 if report.permanent else 450


def _report(message: Message, token: ReturnPathToken, report: RecipientReport) -> BounceOutcome:
    """Record one recipient's report on `message` (locked by the caller)."""
    recipient = message.recipients[token.index]
    now = timezone.now()
    outcome = BounceOutcome("noted", message.hosting_id, message.pk)
    note = {"at": now.isoformat(), "status": report.status, "diagnostic": report.diagnostic}
    if report.action == "delayed":
        recipient["delayed"] = note
        outcome = dataclasses.replace(outcome, result="delayed")
    elif report.action == "failed":
        if recipient.get("status") == RecipientStatus.FAILED:
            return dataclasses.replace(outcome, result="duplicate")
        _recipient_fail(message, recipient, report, note, now)
        outcome = dataclasses.replace(outcome, result="error")
    else:
        return outcome  # delivered, relayed, expanded: nothing to record
    message.save(update_fields=["recipients", "status", "completed_at", "last_reply"])
    logger.info(
        "bounce report for message %s of hosting %s: %s %s",
        message.pk,
        message.hosting_id,
        report.action,
        report.status,
        extra={"hosting_id": message.hosting_id, "message_pk": message.pk},
    )
    return outcome


def _recipient_fail(message: Message, recipient: dict, report: RecipientReport, note: dict, now) -> None:
    """The recipient failed after all: a Delivery error, counted today, maybe a suppression; the
    message failed when no recipient got it (then it counts in the hour's bounce ratio)."""
    code = _code(report)
    text = report.diagnostic or f"{code} {report.status} ({report.action})"
    recipient.update(status=RecipientStatus.FAILED, code=code, reply=text[:500], bounce=note)
    message.last_reply = f"{code} {text}"[:500] if not text.startswith(str(code)) else text[:500]
    statuses = {entry.get("status") for entry in message.recipients}
    if message.status == MessageStatus.SENT and statuses == {RecipientStatus.FAILED}:
        # The ratio counts messages finished in the last hour: this one's outcome is known now.
        message.status = MessageStatus.FAILED
        message.completed_at = now
    error = DeliveryError.objects.create(
        hosting_id=message.hosting_id,
        message_id=message.pk,
        created_at=now,
        recipient=recipient["address"],
        reply=text[:500],
        subject=message.subject,
        kind=ErrorKind.DSN,
        permanent=report.permanent,
        status=report.status,
    )
    suppressions_add([error])
    data = message_data(message) | {"bounce": {"recipient": recipient["address"], **note}}
    webhook_hosting_event(hosting=message.hosting_id, event_type=WebhookEvent.MESSAGE_BOUNCED, data=data)
    # Last: the day's counter row stays locked until commit, so it is taken as late as possible.
    counter_add(hosting_id=message.hosting_id, errors=1)
