"""Reading what comes back to the return path (SPEC §10.1), with the standard library's `email`
package: RFC 3464 delivery status notifications, RFC 5965 feedback reports (complaints), and
the non-standard bounces GNU Mailman's detectors (`flufl.bounce`) recognise. Pure functions:
bytes in, a `BounceReport` out; `mailqueue.bounces` decides what it means for a hosting."""

import dataclasses
import email
import email.policy
import re
from email.message import Message as EmailMessage

from flufl.bounce import all_failures

# RFC 3463 enhanced status codes: class.subject.detail.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ACTION_RANK = {"failed": 3, "delayed": 2, "delivered": 1, "relayed": 1, "expanded": 1}
DIAGNOSTIC_CHARS = 500


@dataclasses.dataclass(frozen=True)
class RecipientReport:
    address: str  # Final-Recipient (or Original-Recipient), or the address a detector found
    action: str  # failed, delayed, delivered, relayed, expanded (RFC 3464 §2.3.3)
    status: str = ""  # e.g. "5.1.1"; empty when the bounce gives none
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        """Hard (5.x.x) or, with no status, a failure the detectors called permanent."""
        return self.status.startswith("5") or (not self.status and self.action == "failed")


@dataclasses.dataclass(frozen=True)
class BounceReport:
    kind: str  # "dsn", "complaint", "bounce" (non-standard), "unrecognised"
    recipients: tuple[RecipientReport, ...] = ()
    subject: str = ""
    feedback_type: str = ""  # complaints: abuse, fraud, …
    reporter: str = ""  # complaints: the report's User-Agent
    complainant: str = ""  # complaints: Original-Rcpt-To, when the report gives it

    @property
    def worst(self) -> RecipientReport | None:
        """The recipient report that matters most: a failure before a delay before the rest."""
        return max(self.recipients, key=lambda report: _ACTION_RANK.get(report.action, 0), default=None)


def status_of(text: str) -> str:
    """The first RFC 3463 status code in `text` (a DSN's Status, an SMTP reply), or ""."""
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else ""


def _typed(value: str) -> str:
    """`rfc822; user@example.com` → `user@example.com` (RFC 3464 address-type / diagnostic-type)."""
    _type, sep, rest = (value or "").partition(";")
    return " ".join((rest if sep else value).split()).strip().strip("<>")


def _text(value) -> str:
    return " ".join(str(value or "").split())


def _dsn_recipients(part: EmailMessage) -> list[RecipientReport]:
    """The per-recipient blocks of a message/delivery-status part (the first block is per message)."""
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    reports = []
    for block in blocks[1:] or blocks:
        address = _typed(block.get("Final-Recipient", "")) or _typed(block.get("Original-Recipient", ""))
        action = _text(block.get("Action", "")).lower()
        if not address and not action:
            continue
        diagnostic = _typed(block.get("Diagnostic-Code", ""))
        status = status_of(block.get("Status", "")) or status_of(diagnostic)
        reports.append(RecipientReport(address, action or "failed", status, diagnostic[:DIAGNOSTIC_CHARS]))
    return reports


def _first_text(message: EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            try:
                return part.get_content()
            except (LookupError, UnicodeError, AssertionError):
                return part.get_payload(decode=True).decode("utf-8", "replace")
    return ""


def _nonstandard(message: EmailMessage, compat: EmailMessage) -> list[RecipientReport]:
    """Bounces written as prose (Exim, qmail, old Exchange…), by flufl.bounce's detectors."""
    temporary, permanent = all_failures(compat)
    body = [line.strip() for line in _first_text(message).splitlines() if line.strip()]
    reports = []
    for found, action in ((permanent, "failed"), (temporary, "delayed")):
        for raw_address in sorted(found):
            address = raw_address.decode("utf-8", "replace") if isinstance(raw_address, bytes) else raw_address
            # The diagnostic is the line naming the address, or the line after it (Exim's layout).
            near = [i for i, line in enumerate(body) if address.lower() in line.lower()]
            lines = body[near[0] : near[0] + 2] if near else body[:2]
            diagnostic = _text(" ".join(lines))
            reports.append(RecipientReport(address, action, status_of(diagnostic), diagnostic[:DIAGNOSTIC_CHARS]))
    return reports


def bounce_parse(raw: bytes) -> BounceReport:
    """What `raw` reports. Never raises on malformed input: what it cannot read is `unrecognised`."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = _text(message.get("Subject", ""))[:255]
    parts = list(message.walk())
    feedback = next((part for part in parts if part.get_content_type() == "message/feedback-report"), None)
    if feedback is not None:
        fields = feedback.get_payload()
        fields = fields[0] if isinstance(fields, list) and fields else feedback
        return BounceReport(
            kind="complaint",
            subject=subject,
            feedback_type=_text(fields.get("Feedback-Type", "abuse")).lower()[:40],
            reporter=_text(fields.get("User-Agent", ""))[:200],
            complainant=_typed(fields.get("Original-Rcpt-To", "")),
        )
    status_parts = [part for part in parts if part.get_content_type() == "message/delivery-status"]
    recipients = [report for part in status_parts for report in _dsn_recipients(part)]
    if recipients:
        return BounceReport(kind="dsn", recipients=tuple(recipients), subject=subject)
    recipients = _nonstandard(message, email.message_from_bytes(raw, policy=email.policy.compat32))
    if recipients:
        return BounceReport(kind="bounce", recipients=tuple(recipients), subject=subject)
    return BounceReport(kind="unrecognised", subject=subject)
