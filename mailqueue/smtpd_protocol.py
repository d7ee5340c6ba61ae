"""The SMTP door's session (aiosmtpd's SMTP protocol): addresses as written, connections per
client address, idle and session timeouts, the goodbye of a closing door."""

import asyncio
import logging
import re
import ssl

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP, Session
from django.conf import settings

from mailqueue.smtpd import (
    REPLY_IDLE_TIMEOUT,
    REPLY_SESSION_TOO_LONG,
    REPLY_TOO_MANY_CONNECTIONS,
)
from mailqueue.smtpd_data import data_read

log = logging.getLogger(__name__)

_aiosmtpd_sanitized_log = aiosmtpd.smtp.sanitized_log


def _sanitized_log_when_logged(func, msg, *args, **kwargs) -> None:
    """aiosmtpd's `sanitized_log`, only when its log ("mail.log") takes INFO or DEBUG: it masks
    every command line (AUTH's secrets) before the log says whether it wants it, twice a command
    (3 % of the door's CPU at 4 clients). When the log is on, the lines are masked as before."""
    if aiosmtpd.smtp.log.isEnabledFor(logging.INFO):
        _aiosmtpd_sanitized_log(func, msg, *args, **kwargs)


aiosmtpd.smtp.sanitized_log = _sanitized_log_when_logged


# `<dot-atom@host.name>` then parameters without comments: the address of almost every MAIL and
# RCPT, read without aiosmtpd's RFC 5322 header parser (which costs ~0.15 ms a command). Anything
# else goes to that parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"\s*<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*([^(]*)")


def _address_as_written(arg: str) -> str:
    """The address of a MAIL or RCPT argument as sent: `<…>` (up to the first ">", the brackets
    kept when it is missing) or up to the first space; a source route (`<@relay:a@b>`) left out."""
    arg = arg.strip()
    if not arg.startswith("<"):
        return arg.partition(" ")[0]
    inside, closed, _rest = arg[1:].partition(">")
    if not closed:
        return arg
    if inside.startswith("@") and ":" in inside:
        inside = inside.partition(":")[2]
    return inside


class _Session(Session):
    # aiosmtpd logs a deprecation warning each time it sets login_data; the door reads auth_data.
    login_data = None


class SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP with the door's policy: limits per client address and per session.

    Like Postfix's smtpd: at most SMTP_CLIENT_CONNECTION_LIMIT connections per client address
    (`smtpd_client_connection_count_limit`; the others get 421 and are closed), each command and
    each message's data within SMTP_IDLE_TIMEOUT seconds (`smtpd_timeout`, aiosmtpd's `timeout`),
    and a whole session within SMTP_SESSION_MAX_SECONDS. A session closed by a limit gets its
    421 first; one whose message is being stored gets that message's reply before the 421.
    """

    # The stream's limit: a command line's length, and the size of the pieces DATA is read in.
    # Message lines over 998 octets get the submission's clear 554 5.6.0.
    line_length_limit = 64 * 1024

    def __init__(self, handler, *, tls_context: ssl.SSLContext | None, **kwargs):
        # Clear-text AUTH is the documented case without a certificate (a private network);
        # passing auth_required afterwards keeps aiosmtpd from warning at every connection.
        super().__init__(
            handler,
            hostname=settings.SMTP_INGRESS_HOSTNAME,
            ident="portal submission",
            data_size_limit=settings.MAX_MESSAGE_BYTES,
            tls_context=tls_context,
            auth_require_tls=tls_context is not None,
            auth_required=False,
            timeout=settings.SMTP_IDLE_TIMEOUT,
            **kwargs,
        )
        self._auth_required = True
        self.client_address: str | None = None  # set once admitted
        self.storing = False  # message_accept is running for this session's DATA
        self.goodbye_said = False  # a 421 went out: close without another reply
        self._pending_close: str | None = None  # a 421 to send once the message being stored is answered
        self._session_timer: asyncio.TimerHandle | None = None

    def _getaddr(self, arg: str):
        plain = _PLAIN_ADDRESS.fullmatch(arg)
        if plain is not None:
            return plain.group(1), plain.group(2)
        address, rest = super()._getaddr(arg)
        if address is None:
            # Unparsable: the handler refuses it with its code (5.1.7 sender, 5.1.3 recipient).
            address, _space, rest = arg.strip().partition(" ")
        elif address != _address_as_written(arg):
            # The parser dropped spaces, a bare CR or a comment, or a missing ">": the handler
            # judges the address as the client wrote it, never a rewritten one.
            address = _address_as_written(arg)
        if address == "" and arg.lstrip().startswith("<>"):
            # The null reverse-path is no syntax error: the submission service's rule refuses it
            # (sender_validate), so it goes to the handler.
            address = "<>"
        return address, rest

    def _create_session(self) -> Session:
        return _Session(self.loop)

    @property
    def in_transaction(self) -> bool:
        """Between an accepted MAIL and the reply to its DATA (or RSET)."""
        return self.storing or (self.envelope is not None and self.envelope.mail_from is not None)

    def close_with(self, reply: str) -> None:
        """Send `reply` (a 421) and close; while this session's message is being stored, only
        once its reply has gone (a client told nothing would submit it again)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.storing:
            self._pending_close = reply
            return
        if not self.goodbye_said:
            self.transport.write(reply.encode("ascii") + b"\r\n")
            self.goodbye_said = True
        self.transport.close()

    def connection_made(self, transport) -> None:
        if self.transport is None:  # a new connection (STARTTLS calls this again with the TLS transport)
            peer = transport.get_extra_info("peername")
            address = peer[0] if peer else "?"
            if not self.event_handler.connection_admit(address):
                # Refused before aiosmtpd starts the session: no greeting, no handler coroutine.
                log.warning("SMTP connection from %s refused: too many connections from that address", address)
                transport.write(REPLY_TOO_MANY_CONNECTIONS.encode("ascii") + b"\r\n")
                transport.close()
                return
            self.client_address = address
            self._session_timer = asyncio.get_running_loop().call_later(
                settings.SMTP_SESSION_MAX_SECONDS, self._session_expired
            )
            super().connection_made(transport)
            self.event_handler.open_sessions.add(self)
            return
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self.client_address is None:  # refused in connection_made: aiosmtpd never started
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
        self.event_handler.open_sessions.discard(self)
        self.event_handler.connection_release(self.client_address)
        self.client_address = None
        super().connection_lost(error)

    def _session_expired(self) -> None:
        log.info("SMTP session of %s closed: longer than %ss", self.client_address, settings.SMTP_SESSION_MAX_SECONDS)
        self.close_with(REPLY_SESSION_TOO_LONG)

    def _timeout_cb(self) -> None:
        # aiosmtpd's idle timeout closes without a word; say why first, as Postfix does.
        log.info("SMTP session of %s closed: idle for %ss", self.client_address, settings.SMTP_IDLE_TIMEOUT)
        self.close_with(REPLY_IDLE_TIMEOUT)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, its data read in large pieces (`smtpd_data`) instead of line by line."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await data_read(self._reader, limit=self.data_size_limit)
        except asyncio.IncompleteReadError:  # the client went away in its data
            log.info("SMTP session of %s: connection lost during DATA", self.client_address)
            self.transport.close()
            return
        if content is None:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)
        if self._pending_close is not None:  # a limit or a shutdown came while the message was stored
            self.close_with(self._pending_close)
