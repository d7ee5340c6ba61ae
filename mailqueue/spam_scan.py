"""Outbound spam scanning with SpamAssassin's spamd (SPEC §11.1).

`spam_scan(raw)` asks the spamd of `SPAMD_URL` (`spamd://host:port`) for the score and the rules of one message,
with the SYMBOLS command of the spamc protocol, and judges it against our `SPAM_SCORE_THRESHOLD`, not spamd's own
required score. It promises one of three outcomes:

- `None`: scanning is off (`SPAMD_URL` empty); the message goes on unscanned, as the embedded default does.
- a `SpamVerdict`: spamd answered, or the message is over `SPAMD_MAX_BYTES` and was not sent to it.
- `SpamdUnavailable`: no verdict (spamd down, refusing, silent past `SPAMD_TIMEOUT_SECONDS`, answering an error or
  garbage). The caller defers the message and retries it; it is never sent unscanned and never lost.

Oversized messages are handled as spamc does by default (`spamc -s`, 500 KB): they are not sent to spamd and pass
as not spam, marked `skipped`. Spam is small; scanning a large attachment costs spamd seconds and finds nothing.

The call is synchronous, for a Celery worker thread: aiospamc frames the request and parses the answer, and a
plain blocking socket carries them under one deadline. (aiospamc's own asyncio front end, run with `asyncio.run`
from a thread, leaves the socket of a timed-out scan open until the garbage collector finds it.)
"""

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiospamc.exceptions import ParseError
from aiospamc.header_values import SpamValue
from aiospamc.incremental_parser import ResponseParser
from aiospamc.requests import Request
from aiospamc.responses import Response, ResponseException
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SPAMD_DEFAULT_PORT = 783  # spamd's registered port, when SPAMD_URL names none


class SpamdUnavailable(Exception):
    """spamd gave no verdict on the message; defer it and try again later."""


@dataclass(frozen=True)
class SpamVerdict:
    """What spamd made of one message.

    `score` is spamd's (one decimal, as spamd reports it), `threshold` our `SPAM_SCORE_THRESHOLD` at the time of the
    scan, `is_spam` is `score >= threshold`, `rules` the names of the rules that fired (for operators), and
    `skipped` says the message was over `SPAMD_MAX_BYTES` and not scanned (score 0, no rules).
    """

    score: float
    threshold: float
    is_spam: bool
    rules: list[str]
    skipped: bool = False


def spamd_address(url: str) -> tuple[str, int]:
    """The (host, port) of a `spamd://host:port` URL; ImproperlyConfigured for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port or SPAMD_DEFAULT_PORT
    except ValueError as error:
        raise ImproperlyConfigured(f"SPAMD_URL has an invalid port: {url!r}") from error
    if parts.scheme != "spamd" or not parts.hostname or parts.path not in ("", "/"):
        raise ImproperlyConfigured(f"SPAMD_URL must read spamd://host:port, not {url!r}")
    return parts.hostname, port


def spam_scan(raw: bytes) -> SpamVerdict | None:
    """Scan one message as it will leave the platform; see the module docstring for the three outcomes.

    Takes at most about `SPAMD_TIMEOUT_SECONDS` (connection and answer together) before raising SpamdUnavailable.
    Reads settings at each call, so overriding them takes effect at once.
    """
    if not settings.SPAMD_URL:
        return None
    host, port = spamd_address(settings.SPAMD_URL)
    threshold = float(settings.SPAM_SCORE_THRESHOLD)
    if len(raw) > settings.SPAMD_MAX_BYTES:
        return SpamVerdict(score=0.0, threshold=threshold, is_spam=False, rules=[], skipped=True)
    try:
        answer = _spamd_exchange(host, port, bytes(Request("SYMBOLS", body=raw)), settings.SPAMD_TIMEOUT_SECONDS)
        response = Response(**ResponseParser().parse(answer))
        response.raise_for_status()  # spamd's own failures (EX_TEMPFAIL, EX_UNAVAILABLE…)
    except (OSError, ParseError, ResponseException) as error:  # OSError includes refusals and timeouts
        raise SpamdUnavailable(f"spamd at {host}:{port} gave no verdict: {error!r}") from error
    spam = response.headers.get("Spam")
    if not isinstance(spam, SpamValue):
        raise SpamdUnavailable(f"spamd at {host}:{port} answered without a Spam header")
    rules = [name.strip() for name in response.body.decode("ascii", "replace").split(",") if name.strip()]
    return SpamVerdict(score=spam.score, threshold=threshold, is_spam=spam.score >= threshold, rules=rules)


def _spamd_exchange(host: str, port: int, request: bytes, seconds: float) -> bytes:
    """Send one request and read the answer until spamd closes the connection, all within `seconds`."""
    deadline = time.monotonic() + seconds
    with socket.create_connection((host, port), timeout=seconds) as connection:
        connection.settimeout(_remaining(deadline))
        connection.sendall(request)  # the timeout bounds the whole sendall, not each chunk
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            connection.settimeout(_remaining(deadline))
            if not (chunk := connection.recv(65536)):
                return b"".join(chunks)
            chunks.append(chunk)


def _remaining(deadline: float) -> float:
    if (remaining := deadline - time.monotonic()) <= 0:
        raise TimeoutError("spamd did not answer in time")
    return remaining
