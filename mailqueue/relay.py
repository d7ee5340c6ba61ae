"""Clients for the upstream relay (SMTP_RELAY_URL): SMTP, or a directory of .eml files.

A relay session is opened by the first message of a delivery batch that needs it (a batch of
suppressed recipients only never connects) and reused for every message after it.
`send` returns, per recipient, the SMTP code and reply text the relay gave; its `before_end`
runs once the relay has the message's content but not its end (SMTP: after the content, before
the final dot), and may raise to leave the message unended (delivery waits there for the record
of the message before: `sent_recorder.SentRecorder`). With a relay that offers PIPELINING the
commands are pipelined (`relay_pipelining`).
"""

import dataclasses
import re
import smtplib
import socket
import ssl
from collections import defaultdict
from urllib.parse import unquote, urlsplit

from django.conf import settings

from mailqueue.relay_files import FileRelay
from mailqueue.relay_pipelining import Pipelining
from mailqueue.rfc5322 import message_normalise

# Code used for a recipient when the relay could not be reached or dropped the connection.
CONNECTION_FAILURE_CODE = 421


class RelayUnavailable(Exception):
    """The relay could not be reached: every message of the batch is deferred."""


NOT_WORKED_OUT = object()  # `_content_end` without the commands to send ahead: it works them out


class _EndHook:
    """smtplib's DATA, with `before_end` (when set) run between the content and its final dot.
    Should it raise, the connection is dropped: the relay never gets the end of the message, and
    discards it."""

    before_end = None

    def data(self, msg):
        if isinstance(msg, str):
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        return self._content_end(msg)

    def _content_end(self, msg: bytes, ahead=NOT_WORKED_OUT):
        """After the relay's 354: the content, `before_end`, then the final dot with `ahead`'s
        commands (`relay_pipelining`: worked out while the relay answered, or here); the reply.
        The relay reads the content while `before_end` waits (the record of the message before)."""
        self.send(_dot_stuffed(msg))
        ahead = self._ahead() if ahead is NOT_WORKED_OUT else ahead
        if self.before_end is not None:
            try:
                self.before_end()
            except BaseException:
                self.close()
                raise
        if ahead is None:
            self.send(b".\r\n")
        else:
            commands, self._sent_ahead = ahead
            self.send(b".\r\n" + commands)
        return self.getreply()


def _dot_stuffed(content: bytes) -> bytes:
    """smtplib's `_quote_periods` (a line starting with a dot gets another), ending with CRLF;
    the regular expression only runs when some line starts with a dot."""
    if content.startswith(b".") or b"\n." in content:
        content = smtplib._quote_periods(content)
    return content if content.endswith(b"\r\n") else content + b"\r\n"


# An address smtplib's quoteaddr would give back as <address> (its email.utils.parseaddr is ~8 % of
# a delivery's CPU): no space, no quote, bracket, parenthesis, comma, semicolon, colon or backslash.
_PLAIN_ADDRESS = re.compile(r"[^\s\"<>()\[\],;:\\@]+@[^\s\"<>()\[\],;:\\@]+\Z")


def _envelope_quoted(address: str) -> str:
    """`smtplib.quoteaddr(address)`, without parsing a plain address."""
    return f"<{address}>" if _PLAIN_ADDRESS.match(address) else smtplib.quoteaddr(address)


class _PlainAddresses:
    """smtplib's MAIL and RCPT, a plain address quoted without parsing it (`_envelope_quoted`);
    the commands themselves also for `relay_pipelining`."""

    def mail(self, sender, options=()):
        if any(option.lower() == "smtputf8" for option in options):
            return super().mail(sender, options)
        self.putcmd(self._mail_command(sender, options))
        return self.getreply()

    def rcpt(self, recip, options=()):
        self.putcmd(self._rcpt_command(recip, options))
        return self.getreply()

    def _mail_command(self, sender, options=()) -> str:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        return f"mail FROM:{_envelope_quoted(sender)}{optionlist}"

    def _rcpt_command(self, recip, options=()) -> str:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        return f"rcpt TO:{_envelope_quoted(recip)}{optionlist}"


class _SMTP(Pipelining, _EndHook, _PlainAddresses, smtplib.SMTP):
    pass


class _SMTP_SSL(Pipelining, _EndHook, _PlainAddresses, smtplib.SMTP_SSL):
    pass


class SmtpRelay:
    def __init__(self, url: str, *, timeout: int):
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.scheme == "smtps" else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.connection: smtplib.SMTP | None = None
        self.connection_lost = False  # set when a send timed out or the connection dropped
        self.connections_opened = 0
        self._ahead = None  # the next send's envelope, worked out when `next_transaction` was asked for

    def open(self) -> None:
        try:
            if self.scheme == "smtps":
                connection = _SMTP_SSL(self.host, self.port, timeout=self.timeout)
            else:
                connection = _SMTP(self.host, self.port, timeout=self.timeout)
                if self.scheme == "smtp+starttls":
                    connection.starttls(context=ssl.create_default_context())
            # The content and its final dot are two writes (see _EndHook): without this, the dot
            # would wait for the relay's delayed acknowledgement of the content (Nagle, ~40 ms).
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.username:
                connection.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as error:
            raise RelayUnavailable(str(error)) from error
        self.connection = connection
        self.connections_opened += 1
        self.connection_lost = False

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None

    def send(
        self,
        *,
        sender: str,
        recipients: list[str],
        raw: bytes,
        before_end=None,
        before_replies=None,
        next_transaction=None,
    ) -> dict[str, tuple[int, str]]:
        """Per recipient (code, reply). A lost connection gives 421 to every recipient and is
        reopened for the next message; RelayUnavailable when it cannot be reopened. An error
        raised by `before_end` is raised as it is, the connection dropped. `before_replies` runs
        while the relay reads the commands (with PIPELINING), and may not raise (see
        `delivery_ahead`). `next_transaction()`: the
        (sender, recipients, raw) of the `send` that follows, or None; with PIPELINING it is asked
        for once this send's commands are out, before their replies are read (even when they then
        refuse it), and its commands go out with this content's final dot (`relay_pipelining`)."""
        if self.connection is None or self.connection.sock is None:
            self.open()
        envelope = self._worked_out(sender, recipients, raw) or _envelope_of(sender, recipients, raw)
        results = dict(envelope.refused)
        if not envelope.groups:
            return results
        stored = [recipient for group in envelope.groups.values() for recipient in group]
        connection = self.connection
        connection.before_end, connection.before_replies = before_end, before_replies
        connection.next_transaction = self._ahead_of(next_transaction) if next_transaction is not None else None
        try:
            refused = connection.sendmail(envelope.sender, list(envelope.groups), envelope.content)
        except smtplib.SMTPRecipientsRefused as error:
            # No DATA was sent: the recipients the relay did not refuse got nothing either
            # (smtplib stops at a 421 and reports only the recipients refused so far).
            refused = error.recipients
            untried = next((reply for reply in refused.values() if reply[0] == CONNECTION_FAILURE_CODE), None)
            untried = untried or (CONNECTION_FAILURE_CODE, "not sent: every other recipient was refused")
            refused = {address: refused.get(address, untried) for address in envelope.groups}
            if connection.sock is None:  # closed by smtplib after a 421
                self.connection = None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            self._reset()
            reply = (error.smtp_code, _text(error.smtp_error))
            return results | dict.fromkeys(stored, reply)
        except (OSError, smtplib.SMTPException) as error:
            connection.close()
            self.connection = None
            self.connection_lost = True  # the batch stops here: see delivery_run_batch
            reply = (CONNECTION_FAILURE_CODE, f"connection to relay lost: {error}")
            return results | dict.fromkeys(stored, reply)
        except BaseException:  # before_end's (or an unexpected) error: dropped, the message unended
            connection.close()
            self.connection = None
            raise
        finally:
            connection.before_end = connection.before_replies = None
            connection.next_transaction = None
        for address, group in envelope.groups.items():
            code, reply = refused.get(address, (250, "OK"))
            results.update(dict.fromkeys(group, (code, _text(reply))))
        return results

    def _ahead_of(self, next_transaction):
        """`next_transaction` as the relay's envelope takes it (`_envelope_of`), None when `send`
        would not hand it over as it is; kept for that `send` (`_worked_out`)."""

        def following():
            transaction = next_transaction()
            if transaction is None:
                return None
            sender, recipients, raw = transaction
            envelope = _envelope_of(sender, recipients, raw)
            if envelope.refused or not envelope.groups:
                return None
            self._ahead = (sender, list(recipients), raw, envelope)
            return envelope.sender, list(envelope.groups), envelope.content

        return following

    def _worked_out(self, sender: str, recipients: list[str], raw: bytes) -> "_Envelope | None":
        """The envelope of this `send`, when `_ahead_of` worked it out for these very bytes."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[2] is raw and ahead[0] == sender and ahead[1] == list(recipients):
            return ahead[3]
        return None

    def _reset(self) -> None:
        if self.connection.sock is None:
            self.connection = None
            return
        try:
            self.connection.rset()
        except (OSError, smtplib.SMTPException):
            self.connection.close()
            self.connection = None


@dataclasses.dataclass(frozen=True)
class _Envelope:
    """One `send` as the relay takes it: the envelope sender, each envelope address with the
    stored addresses it stands for, the recipients refused before the relay, the CRLF content."""

    sender: str
    groups: dict[str, list[str]]
    refused: dict[str, tuple[int, str]]
    content: bytes


def _envelope_of(sender: str, recipients: list[str], raw: bytes) -> _Envelope:
    envelope_sender, sender_error = _envelope_address(sender) if sender else ("", None)
    if sender_error:
        return _Envelope(envelope_sender, {}, dict.fromkeys(recipients, sender_error), b"")
    groups: dict[str, list[str]] = defaultdict(list)  # envelope address -> addresses as stored
    refused = {}
    for recipient in recipients:
        address, error = _envelope_address(recipient)
        if error:
            refused[recipient] = error
        else:
            groups[address].append(recipient)
    return _Envelope(envelope_sender, dict(groups), refused, _crlf(raw) if groups else b"")


def _envelope_address(address: str) -> tuple[str, tuple[int, str] | None]:
    """The address as the relay's envelope takes it (IDNA domain), or a permanent error.

    Submission accepts internationalised domains; smtplib would raise on them mid-batch.
    """
    if address.isascii():
        return address, None
    local, _at, domain = address.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return address, (553, "5.1.3 domain name not encodable in IDNA")
    if not local.isascii():
        return address, (553, "5.6.7 non-ASCII local part needs SMTPUTF8, not used by this relay")
    return f"{local}@{domain}", None


def _crlf(raw: bytes) -> bytes:
    """SMTP has CRLF line ends only: messages are stored so, and those stored before that rule
    (with bare LF or bare CR, long header lines) are sent with the same rule (mailqueue.rfc5322)."""
    return message_normalise(raw)


def _text(reply) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return str(reply)[:500]


def relay_from_settings():
    url = settings.SMTP_RELAY_URL
    if url.startswith("file://"):
        return FileRelay(url)
    return SmtpRelay(url, timeout=settings.SMTP_RELAY_TIMEOUT)
