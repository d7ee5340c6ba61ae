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

# RFC 3463 enhanced status codes: class.subject.detail; not a piece of a dotted number (an IPv4
# address such as 10.4.12.7 or [5.135.12.40] in "host mx.example.org [5.135.12.40]: 550 5.1.1 …").
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# What a detector reports must look like a mailbox (local@domain), not a piece of a broken header.
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_ACTION_RANK = {"failed": 3, "delayed": 2, "delivered": 1, "relayed": 1, "expanded": 1}
DIAGNOSTIC_CHARS = 500
# What a prose delay warning says before the addresses: Exim's "has not yet been delivered", Postfix's
# and Sendmail's "THIS IS A WARNING (MESSAGE) ONLY", and the phrases flufl.bounce's SimpleWarning knows.
_WARNING = re.compile(
    r"not yet been delivered|still being retried|warning (?:message )?only|just a warning|has been delayed"
    r"|will be retried|delivery attempts will continue",
    re.IGNORECASE,
)
_PARAGRAPH_LINES = 8


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


def _status_refined(status: str, diagnostic: str) -> str:
    """`status`, or, when it is a bare class (X.0.0, as Exim always writes), the more precise code
    of the same class the server's reply gives (550 5.1.1 …)."""
    detailed = status_of(diagnostic)
    if status.endswith(".0.0") and detailed[:1] == status[:1] and detailed != status:
        return detailed
    return status


def _typed(value: str) -> str:
    """`rfc822; user@example.com` → `user@example.com` (RFC 3464 address-type / diagnostic-type)."""
    _type, sep, rest = (value or "").partition(";")
    return " ".join((rest if sep else value).split()).strip().strip("<>")


def _text(value) -> str:
    return " ".join(str(value or "").split())


def _dsn_recipients(part: EmailMessage) -> list[RecipientReport]:
    """The per-recipient blocks of a message/delivery-status part (the first block is per message).
    A missing Action, or one RFC 3464 does not define, counts as failed."""
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
        status = _status_refined(status_of(block.get("Status", "")), diagnostic) or status_of(diagnostic)
        action = action if action in _ACTION_RANK else "failed"
        reports.append(RecipientReport(address, action, status, diagnostic[:DIAGNOSTIC_CHARS]))
    return reports


def _first_text(message: EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            try:
                return part.get_content()
            except (LookupError, UnicodeError, AssertionError):
                return part.get_payload(decode=True).decode("utf-8", "replace")
    return ""


def _paragraph(lines: list[str], address: str) -> list[str]:
    """The lines of the text's paragraph about `address`: from the first line naming it to the next
    blank line (Exim: the address, then the host and the server's reply; qmail: `<address>:`, then
    what the remote host said), at most _PARAGRAPH_LINES; the text's first two lines if none names it."""
    start = next((i for i, line in enumerate(lines) if address.lower() in line.lower()), None)
    if start is None:
        return [line for line in lines if line][:2]
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start : min(end, start + _PARAGRAPH_LINES)]


def _nonstandard(message: EmailMessage, compat: EmailMessage) -> list[RecipientReport]:
    """Bounces written as prose (Exim, qmail, old Exchange…), by flufl.bounce's detectors; only
    what they found that looks like an address (local@domain). A detector that trips on the input
    (flufl.bounce 6's Yale detector on a single-part message without a From address) finds nothing.
    When the text before the first address says delivery is still being tried (Exim's warning "has
    not yet been delivered … after more than 24 hours", which the detectors call permanent), every
    address found is delayed."""
    try:
        temporary, permanent = all_failures(compat)
    except Exception:
        return []
    body = [line.strip() for line in _first_text(message).splitlines()]
    found = {}
    for addresses, action in ((permanent, "failed"), (temporary, "delayed")):
        for raw_address in sorted(addresses):
            address = raw_address.decode("utf-8", "replace") if isinstance(raw_address, bytes) else raw_address
            address = address.strip().strip("<>")
            if _ADDRESS.fullmatch(address):
                found.setdefault(address, action)
    lowered = {address.lower() for address in found}
    first = next((i for i, line in enumerate(body) if any(a in line.lower() for a in lowered)), 0)
    warning = bool(_WARNING.search(" ".join(body[:first])))
    reports = []
    for address, action in found.items():
        diagnostic = _text(" ".join(_paragraph(body, address)))
        action = "delayed" if warning else action
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
