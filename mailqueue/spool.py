"""The local spool of `manage.py sendmail`: mail kept on the web server while the door is down.

Postfix's `sendmail` never loses a message because the daemons are down: `postdrop` writes it
to the maildrop queue and `pickup` takes it later. Here `sendmail` writes a message that the
SMTP door could not take (connection refused, timeout, 4xx) to SENDMAIL_SPOOL_DIR, and
`manage.py sendmail_flush` submits it once the door is back.

Layout, per SMTP user (the hosting's service name), Maildir-like so that a reader never sees a
half-written file:

    SENDMAIL_SPOOL_DIR/<service>/tmp/     being written
    SENDMAIL_SPOOL_DIR/<service>/new/     complete, waiting; names sort oldest first
    SENDMAIL_SPOOL_DIR/<service>/failed/  refused for good by the door, with NAME.reply beside

A spool file is one JSON line (format, service, envelope sender and recipients, time) then the
message's raw bytes. It is written to tmp/, fsync'd, renamed into new/ and new/ is fsync'd:
once `message_spool` returns, the message survives a crash or a power cut.
"""

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

SPOOL_FORMAT = 1
SUFFIX = ".msg"


@dataclasses.dataclass(frozen=True)
class SpooledMessage:
    path: Path
    sender: str
    recipients: list[str]
    raw: bytes


class UnreadableSpoolFile(Exception):
    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


def spool_directory(*, service: str) -> Path:
    """The spool of one SMTP user; the name is quoted, so no service name can leave the spool."""
    return Path(settings.SENDMAIL_SPOOL_DIR) / quote(service, safe="")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _directory_make(directory: Path) -> None:
    """mkdir -p, private (0700), each created level made durable in its parent."""
    if directory.is_dir():
        return
    _directory_make(directory.parent)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
        _fsync_directory(directory.parent)


def message_spool(*, service: str, sender: str, recipients: list[str], raw: bytes) -> Path:
    """Write one message durably to the spool of `service`; its path in new/. OSError when the
    spool cannot be written (then nothing is left in new/)."""
    base = spool_directory(service=service)
    for folder in ("tmp", "new"):
        _directory_make(base / folder)
    # Nanoseconds first: names sort in spooling order; pid and random part keep them unique.
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
    envelope = {
        "format": SPOOL_FORMAT,
        "service": service,
        "sender": sender,
        "recipients": recipients,
        "spooled_at": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    temporary = base / "tmp" / name
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(json.dumps(envelope).encode() + b"\n" + raw)
            handle.flush()
            os.fsync(handle.fileno())
        final = base / "new" / name
        os.rename(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(final.parent)
    return final


def _message_read(path: Path) -> SpooledMessage:
    try:
        content = path.read_bytes()
        line, _newline, raw = content.partition(b"\n")
        envelope = json.loads(line)
        if envelope.get("format") != SPOOL_FORMAT:
            raise ValueError(f"unknown spool format {envelope.get('format')!r}")
        sender, recipients = envelope["sender"], envelope["recipients"]
        if not isinstance(sender, str) or not recipients or not all(isinstance(r, str) for r in recipients):
            raise ValueError("no sender or recipients")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableSpoolFile(path, str(error) or type(error).__name__) from None
    return SpooledMessage(path=path, sender=sender, recipients=list(recipients), raw=raw)


def spooled_messages(*, service: str) -> Iterator[SpooledMessage | UnreadableSpoolFile]:
    """The waiting messages of `service`, oldest first; an unreadable file is yielded as such."""
    waiting = spool_directory(service=service) / "new"
    if not waiting.is_dir():
        return
    for path in sorted(waiting.glob(f"*{SUFFIX}")):
        try:
            yield _message_read(path)
        except UnreadableSpoolFile as error:
            yield error


def spooled_message_done(*, path: Path) -> None:
    """The door answered 250: the spool file goes, durably."""
    path.unlink()
    _fsync_directory(path.parent)


def spooled_message_set_aside(*, path: Path, reply: str) -> Path:
    """Refused for good: moved to failed/ with the reply in NAME.reply beside it, never deleted."""
    failed = path.parent.parent / "failed"
    _directory_make(failed)
    reply_path = failed / (path.name + ".reply")
    reply_path.write_text(reply.rstrip("\n") + "\n", encoding="utf-8")
    target = failed / path.name
    os.rename(path, target)
    _fsync_directory(failed)
    _fsync_directory(path.parent)
    return target


@contextlib.contextmanager
def spool_flush_lock(*, service: str) -> Iterator[bool]:
    """One flush at a time per spool (cron may start the next before the last ends): yields
    False, without waiting, when another flush holds the lock."""
    base = spool_directory(service=service)
    _directory_make(base)
    with (base / "flush.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
