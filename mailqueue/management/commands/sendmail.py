"""A /usr/sbin/sendmail for hosted scripts (SPEC §4.1): reads a message on stdin and submits it
to the SMTP door with the credentials of PORTAL_SENDMAIL_URL, so PHP's `mail()` works unchanged.

    python manage.py sendmail [-t] [-i] [-oi] [-f sender] [-F name] [-o…] [--] [recipient…]

Exit codes are sendmail's (sysexits.h); errors go to stderr as `sendmail: <reason>` lines.
When the door cannot take the message for now (unreachable, timeout, 4xx), it is written to the
local spool (mailqueue.spool) and the exit code is 0, as Postfix's postdrop does; `manage.py
sendmail_flush` submits it later. Bad input and permanent refusals (5xx) still fail at once.
"""

import email.policy
import email.utils
import getopt
import re
import smtplib
import ssl
import sys
from email.parser import BytesHeaderParser
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from mailqueue import spool

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

# sendmail's options taking a value (-f sender, -oi, -bm…); the others are flags.
_SHORT_OPTIONS = "tinvUmGf:F:r:o:O:b:N:R:V:B:C:X:L:h:q:"
# Django's own options may be given to manage.py; they are accepted and ignored here.
_LONG_OPTIONS = ["settings=", "pythonpath=", "traceback", "no-color", "force-color", "skip-checks", "verbosity="]
_SMTP_TIMEOUT = 60


class SendmailError(Exception):
    def __init__(self, reason: str, exit_code: int):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class Command(BaseCommand):
    help = "Read a message on stdin and submit it to the SMTP door, like /usr/sbin/sendmail."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("sendmail_args", nargs="*", help="sendmail options and recipients (after --)")

    def run_from_argv(self, argv):
        # Django's parser would read -oi or -f x as its own options: sendmail parses its argv itself.
        sys.exit(sendmail_main(argv[2:], stdin=sys.stdin.buffer, stderr=sys.stderr))

    def handle(self, *args, sendmail_args, **options):
        code = sendmail_main(sendmail_args, stdin=sys.stdin.buffer, stderr=sys.stderr)
        if code:
            sys.exit(code)


def sendmail_main(argv: list[str], *, stdin, stderr) -> int:
    """Parse `argv`, read the message from `stdin`, submit it; return a sysexits code."""
    try:
        options, recipients = _options_parse(argv)
        url = _url_parse(settings.PORTAL_SENDMAIL_URL)
        raw = _message_read(stdin, ignore_dots=options["ignore_dots"])
        if options["from_headers"]:
            raw, header_recipients = _recipients_from_headers(raw)
            recipients = header_recipients + recipients
        recipients = [_envelope_address(address) for address in (_bare(r) for r in recipients) if address]
        if not recipients:
            raise SendmailError("no recipients given (use -t or list them)", EX_USAGE)
        if options["sender"]:
            sender = _envelope_address(options["sender"], what="sender")
        else:
            sender = _from_header_sender(raw) or f"www-data@{url['user']}"
        raw = _missing_headers_add(raw, sender=sender, full_name=options["full_name"])
        _submit_or_spool(url=url, sender=sender, recipients=recipients, raw=raw, stderr=stderr)
    except SendmailError as error:
        for line in error.reason.splitlines() or [""]:
            stderr.write(f"sendmail: {line}\n")
        stderr.flush()
        return error.exit_code
    return EX_OK


def _submit_or_spool(*, url: dict, sender: str, recipients: list[str], raw: bytes, stderr) -> None:
    """Submit to the door; if it cannot take the message for now (EX_TEMPFAIL: unreachable,
    timeout, 4xx), write it durably to the local spool instead. EX_TEMPFAIL only when the spool
    cannot be written either."""
    try:
        _submit(url=url, sender=sender, recipients=recipients, raw=raw)
    except SendmailError as error:
        if error.exit_code != EX_TEMPFAIL:
            raise
        try:
            path = spool.message_spool(service=url["user"], sender=sender, recipients=recipients, raw=raw)
        except OSError as spool_error:
            raise SendmailError(
                f"{error.reason}\ncannot write to the spool either: {spool_error}", EX_TEMPFAIL
            ) from None
        stderr.write(f"sendmail: {error.reason}\nsendmail: spooled as {path}; `manage.py sendmail_flush` submits it\n")
        stderr.flush()


def _options_parse(argv: list[str]) -> tuple[dict, list[str]]:
    try:
        pairs, recipients = getopt.gnu_getopt(argv, _SHORT_OPTIONS, _LONG_OPTIONS)
    except getopt.GetoptError as error:
        raise SendmailError(f"{error}", EX_USAGE) from None
    options = {"from_headers": False, "ignore_dots": False, "sender": "", "full_name": ""}
    for flag, value in pairs:
        if flag == "-t":
            options["from_headers"] = True
        elif flag == "-i" or (flag == "-o" and value == "i"):
            options["ignore_dots"] = True
        elif flag in ("-f", "-r"):
            options["sender"] = _bare(value)
        elif flag == "-F":
            options["full_name"] = value
        elif flag == "-b" and value != "m":
            raise SendmailError(f"unsupported mode -b{value}", EX_USAGE)
        elif flag == "-v" and recipients and recipients[0] in ("0", "1", "2", "3"):
            recipients = recipients[1:]  # Django's `-v N`
    return options, recipients


def _url_parse(url: str) -> dict:
    if not url:
        raise SendmailError("PORTAL_SENDMAIL_URL is not set", EX_CONFIG)
    try:
        parts = urlsplit(url)
        port = parts.port or 2525
    except ValueError:
        raise SendmailError("PORTAL_SENDMAIL_URL is not a valid smtp:// URL", EX_CONFIG) from None
    if parts.scheme != "smtp" or not parts.hostname or not parts.username or parts.password is None:
        raise SendmailError("PORTAL_SENDMAIL_URL must be smtp://service:password@host:port", EX_CONFIG)
    return {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username),
        "password": unquote(parts.password),
    }


def _message_read(stdin, *, ignore_dots: bool) -> bytes:
    """The message with CRLF line ends; without -i, a line with a single dot ends it."""
    raw = stdin.read()
    lines = re.split(rb"\r?\n", raw)
    if lines and lines[-1] == b"":
        lines.pop()
    if not ignore_dots and b"." in lines:
        lines = lines[: lines.index(b".")]
    return b"".join(line + b"\r\n" for line in lines)


def _header_block_split(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header lines (each with its CRLF) and the rest (blank line and body)."""
    end = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):
        return [], raw
    if end < 0:
        return raw.splitlines(keepends=True), b""
    return raw[: end + 2].splitlines(keepends=True), raw[end + 2 :]


def _headers(raw: bytes):
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def _recipients_from_headers(raw: bytes) -> tuple[bytes, list[str]]:
    """-t: the To, Cc and Bcc addresses; the Bcc fields are removed from the message."""
    headers = _headers(raw)
    fields = [str(value) for name in ("To", "Cc", "Bcc") for value in headers.get_all(name, [])]
    addresses = [address for _name, address in email.utils.getaddresses(fields) if address]
    lines, rest = _header_block_split(raw)
    kept, dropping = [], False
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # continuation of the previous field
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"".join(kept) + rest, addresses


def _from_header_sender(raw: bytes) -> str:
    """The From header's address as envelope sender, or "" when there is none or it is unusable."""
    value = _headers(raw).get("From")
    address = email.utils.parseaddr(str(value))[1] if value else ""
    try:
        return _envelope_address(address, what="sender") if address else ""
    except SendmailError:
        return ""


# Never in an envelope address: they would end or split the SMTP command, or be read as syntax.
_FORBIDDEN_IN_ADDRESS = re.compile(r"[\x00-\x20\x7f<>,;()\\]")


def _envelope_address(address: str, *, what: str = "recipient") -> str:
    """`address` as the SMTP door's envelope takes it: ASCII, its domain in IDNA form.

    EX_DATAERR for an address that smtplib would mangle or refuse: a line break or NUL (it would
    smuggle another command), list syntax, or non-ASCII text outside the domain (the door does
    not offer SMTPUTF8).
    """
    shown = address.encode("ascii", "backslashreplace").decode()
    if _FORBIDDEN_IN_ADDRESS.search(address) or email.utils.parseaddr(address)[1] != address:
        raise SendmailError(f"{what} <{shown}> is not a valid address", EX_DATAERR)
    local, at, domain = address.rpartition("@")
    if not address.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise SendmailError(f"{what} <{shown}>: domain not encodable in IDNA", EX_DATAERR) from None
        if not local.isascii():
            raise SendmailError(f"{what} <{shown}>: non-ASCII local part (SMTPUTF8 not offered)", EX_DATAERR)
    return f"{local}{at}{domain}"


def _missing_headers_add(raw: bytes, *, sender: str, full_name: str) -> bytes:
    """Add From (with -F's name) and Date when the script left them out, as sendmail does."""
    headers = _headers(raw)
    added = b""
    if headers.get("From") is None:
        added += f"From: {email.utils.formataddr((full_name, sender))}\r\n".encode()
    if headers.get("Date") is None:
        added += f"Date: {email.utils.formatdate(localtime=True)}\r\n".encode()
    return added + raw


def _bare(address: str) -> str:
    address = address.strip()
    return address[1:-1].strip() if address.startswith("<") and address.endswith(">") else address


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def _refusal(code: int, reply, what: str) -> SendmailError:
    exit_code = EX_TEMPFAIL if 400 <= code < 500 else EX_DATAERR
    if code == 452 and _reply_text(code, reply).startswith("452 4.5.3"):
        exit_code = EX_DATAERR  # too many recipients: trying the same message again cannot help
    return SendmailError(f"{what}: {_reply_text(code, reply)}", exit_code)


def _submit(*, url: dict, sender: str, recipients: list[str], raw: bytes) -> None:
    """AUTH, MAIL, RCPT (all or nothing), DATA; SendmailError with the matching exit code."""
    where = f"{url['host']}:{url['port']}"
    accepted = False
    try:
        with smtplib.SMTP(url["host"], url["port"], timeout=_SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            try:
                smtp.login(url["user"], url["password"])
            except smtplib.SMTPAuthenticationError as error:
                code = EX_NOPERM if error.smtp_code == 535 else EX_TEMPFAIL
                reason = f"authentication failed: {_reply_text(error.smtp_code, error.smtp_error)}"
                raise SendmailError(reason, code) from None
            except smtplib.SMTPNotSupportedError:
                raise SendmailError(f"the SMTP door at {where} offers no AUTH", EX_UNAVAILABLE) from None
            mail_options = []
            if smtp.has_extn("size"):
                mail_options.append(f"SIZE={len(raw)}")
            if smtp.has_extn("8bitmime") and not raw.isascii():
                mail_options.append("BODY=8BITMIME")
            code, reply = smtp.mail(sender, mail_options)
            if code != 250:
                raise _refusal(code, reply, f"sender <{sender}> refused")
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    smtp.rset()
                    raise _refusal(code, reply, f"recipient <{recipient}> refused")
            code, reply = smtp.data(raw)
            if code != 250:
                raise _refusal(code, reply, "message refused")
            accepted = True
    except SendmailError:
        raise
    except (OSError, smtplib.SMTPException) as error:
        if accepted:
            # The door answered 250: the message is stored. Only the goodbye failed (a door
            # shutting down answers QUIT with 421): spooling it would submit it twice.
            return
        if isinstance(error, smtplib.SMTPResponseException):
            raise _refusal(error.smtp_code, error.smtp_error, "refused") from None
        reason = str(error) or type(error).__name__
        raise SendmailError(f"cannot submit to the SMTP door at {where}: {reason}", EX_TEMPFAIL) from None
