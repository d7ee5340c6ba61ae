"""Submission (SPEC §4.1): the one service every door (SMTP, sendmail, API) stores mail with.

Bad input raises SubmissionError, carrying the SMTP reply every door maps it to, and stores
nothing. Header texts (subject, Message-ID) are decoded and cleaned for storage; the raw bytes
are kept as they came.
"""

import collections
import dataclasses
import datetime
import email.header
import email.policy
import email.utils
import uuid
from email.parser import BytesHeaderParser

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue import dispatch, rfc5322
from mailqueue.addresses import email_address_valid
from mailqueue.counters import counter_add, submitted_today_incr
from mailqueue.locks import mail_service_lock_shared_active_statements, mail_service_lock_shared_statements
from mailqueue.message_insert import messages_insert, messages_insert_committed, messages_insert_committed_possible
from mailqueue.models import (
    Door,
    Message,
    RecipientStatus,
    State,
    WebhookEvent,
    held_fields,
    queued_fields,
)
from mailqueue.sender_policy import domain_of, header_domains, sender_refusal
from mailqueue.webhooks import message_data, webhook_events_record


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


def address_validate(address: str, *, field: str = "recipient") -> str:
    """A bare envelope address, checked; SubmissionError (553) when it is not one (not a string,
    a line break, NUL or other control character, a lone surrogate, a list separator…)."""
    address = (address if isinstance(address, str) else "").strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    if not email_address_valid(address):
        if field == "sender":
            raise SubmissionError(_("Invalid sender address."), smtp_code=553, enhanced_code="5.1.7")
        raise SubmissionError(_("Invalid recipient address."), smtp_code=553, enhanced_code="5.1.3")
    return address


def message_size_check(size: int) -> None:
    if size > settings.MAX_MESSAGE_BYTES:
        raise SubmissionError(
            _("Message too large (%(limit)d bytes at most).") % {"limit": settings.MAX_MESSAGE_BYTES},
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
                "Line %(line)d too long: %(length)d bytes, %(limit)d at most (RFC 5322). Encode the body as "
                "quoted-printable or base64."
            )
            % {"line": line, "length": length, "limit": rfc5322.MAX_LINE_OCTETS},
            smtp_code=554,
            enhanced_code="5.6.0",
        )


def message_start_check(raw: bytes) -> None:
    """SubmissionError (554 5.6.0) when the normalised message starts with a space or a tab: its
    first line would be read as the continuation of a header field (RFC 5322 §2.2.3), the Date:
    or Message-ID: added on top when missing, swallowing it."""
    if raw[:1] in (b" ", b"\t"):
        raise SubmissionError(
            _("The message must start with a header field (Name: value), not with a space or a tab."),
            smtp_code=554,
            enhanced_code="5.6.0",
        )


def sender_validate(sender) -> str:
    """The envelope sender, checked (see address_validate). The null sender `<>` is refused
    (553 5.7.1): it is the reverse-path of bounces and delivery reports (RFC 5321 §4.5.5), which
    a hosting's scripts have no reason to send and which nobody could answer."""
    if sender is None or (isinstance(sender, str) and sender.strip() in ("", "<>")):
        raise SubmissionError(
            _("The null sender (<>) is reserved for delivery reports: give the sender's address."),
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
        raise SubmissionError(_("At least one valid recipient is required."), smtp_code=501, enhanced_code="5.5.4")
    if len(unique) > settings.MAX_RECIPIENTS:
        raise SubmissionError(
            _("Too many recipients (%(limit)d at most).") % {"limit": settings.MAX_RECIPIENTS},
            smtp_code=452,
            enhanced_code="4.5.3",
        )
    return unique


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """A submitted message that passed every check (`message_prepare`), ready to be stored."""

    hosting: Hosting
    sender: str
    addresses: list[str]
    raw: bytes
    subject: str
    message_id: str
    created_at: datetime.datetime
    door: str
    client_address: str | None


def message_prepare(
    *,
    hosting: Hosting,
    sender: str,
    recipients,
    raw: bytes,
    door: str = Door.SMTP,
    client_address: str | None = None,
) -> Submission:
    """Check one submitted message and make it ready to store; SubmissionError when it is refused.

    The message is normalised to CRLF line ends with over-long header lines folded
    (`rfc5322.message_normalise`), and given a `Date:` and a `Message-ID:` on top when it had
    none (RFC 5322 §3.6; the Message-ID stored is the one delivered); the rest of its bytes are
    kept exactly. Only the sender policy may read the database (a foreign domain).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise SubmissionError(_("The message must be provided as bytes."), smtp_code=554, enhanced_code="5.6.0")
    raw = rfc5322.message_normalise(bytes(raw))
    message_size_check(len(raw))
    message_lines_check(raw)
    message_start_check(raw)
    sender = sender_validate(sender)
    addresses = recipients_validate(recipients)
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(rfc5322.header_block(raw))
    refused = sender_refusal(hosting=hosting, domains={domain_of(sender)} | header_domains(headers.get_all("From", [])))
    if refused:
        raise SubmissionError(
            _(
                "Sending as %(domain)s is not allowed for %(service)s: use an address of %(service)s or of a "
                "domain our support allowed for it."
            )
            % {"domain": refused, "service": hosting.service_name},
            smtp_code=550,
            enhanced_code="5.7.1",
        )
    subject = _clean_text(_decoded_header(headers.get("Subject")), 255)
    message_id = _clean_text(str(headers.get("Message-ID") or ""), 255)
    now = timezone.now()
    added = b""
    if headers.get("Date") is None:
        added += b"Date: " + email.utils.format_datetime(timezone.localtime(now)).encode("ascii") + b"\r\n"
    if not message_id:
        message_id = f"<{uuid.uuid4().hex}@{settings.SMTP_INGRESS_HOSTNAME}>"
        added += b"Message-ID: " + message_id.encode("ascii") + b"\r\n"
    return Submission(
        hosting=hosting,
        sender=sender,
        addresses=addresses,
        raw=added + raw,
        subject=subject,
        message_id=message_id,
        created_at=now,
        door=door,
        client_address=client_address,
    )


def messages_store(submissions: list[Submission], *, count_submitted: bool = True) -> list[Message]:
    """Store checked messages in one transaction, each queued (service active) or held (blocked
    or purging): a 250 for any of them may be given once this returns, never before.

    Several sessions' messages share the transaction and its commit ("group commit": one WAL
    flush for all). The services' states are read under their share locks, so a block either
    sees these messages (and holds them) or commits first (and they are held). Delivery is
    enqueued after commit. `count_submitted`: False when the caller adds them to the day's
    submitted counter itself (the SMTP door does, once its sessions are answered).

    On PostgreSQL outside any transaction, while every service is active (the usual case), the
    locks, a check that they are all active, the INSERT and the COMMIT take one round trip
    (small messages on a connection that just answered) or two (`messages_insert_committed`);
    when the check refuses, nothing was stored and the transaction below reads the states.
    """
    messages = [_message_row(submission) for submission in submissions]
    hosting_ids = {message.hosting_id for message in messages}
    if messages_insert_committed_possible() and messages_insert_committed(
        messages, first=mail_service_lock_shared_active_statements(hosting_ids=hosting_ids)
    ):
        _stored_announce(messages, queued=len(messages), count_submitted=count_submitted)
        return messages
    with transaction.atomic():
        # Stored as queued under the share locks, in one round trip with the read of the
        # states (`messages_insert`); the messages of a service found blocked or purging are
        # then made held, before commit: nothing sees them queued.
        statements = mail_service_lock_shared_statements(hosting_ids=hosting_ids)
        states = dict(messages_insert(messages, first=statements)[-1])
        held = [message for message in messages if states[message.hosting_id] != State.ACTIVE]
        if held:
            _messages_hold(held)
        # Only held mail touches the day's counter row: a counter updated by every submission
        # would serialise a hosting's concurrent submissions on its row lock.
        for hosting_id, count in collections.Counter(message.hosting_id for message in held).items():
            counter_add(hosting_id=hosting_id, held=count)
        webhook_events_record(
            [(message.hosting_id, WebhookEvent.MESSAGE_HELD, message_data(message)) for message in held]
        )
        _stored_announce(messages, queued=len(messages) - len(held), count_submitted=count_submitted)
    return messages


def _stored_announce(messages: list[Message], *, queued: int, count_submitted: bool) -> None:
    """After commit (at once outside a transaction): a delivery run for the queued messages, and
    the day's submitted counter."""
    if queued:
        # The messages are stored; a broker hiccup must not turn that into an error (the
        # client would submit them again): the periodic delivery sweep picks them up.
        dispatch.delivery_kick()
    if count_submitted:
        transaction.on_commit(lambda: submitted_today_incr(len(messages)), robust=True)


def _messages_hold(messages: list[Message]) -> None:
    """Make these just-inserted messages held (their service is blocked or purging), each from
    its submission time."""
    for message in messages:
        for name, value in held_fields(message.created_at).items():
            setattr(message, name, value)
    Message.objects.bulk_update(messages, fields=list(held_fields(timezone.now())))


def _message_row(submission: Submission) -> Message:
    now = submission.created_at
    return Message(
        hosting=submission.hosting,
        message_id=submission.message_id,
        sender=submission.sender,
        recipients=[
            {"address": address, "status": RecipientStatus.PENDING, "code": None, "reply": ""}
            for address in submission.addresses
        ],
        recipient_count=len(submission.addresses),
        subject=submission.subject,
        size=len(submission.raw),
        raw=submission.raw,
        created_at=now,
        door=submission.door,
        client_address=submission.client_address,
        **queued_fields(now),
    )


def message_accept(**submitted) -> Message:
    """Check and store one message (`message_prepare`, then `messages_store`): the one
    submission path of the sendmail and API doors, and of the SMTP door through its group commit
    (`group_commit`). Bad input raises SubmissionError and stores nothing. Arguments: hosting,
    sender, recipients, raw, door (SMTP by default), client_address (both go into the Received:
    header written at delivery)."""
    return messages_store([message_prepare(**submitted)])[0]
