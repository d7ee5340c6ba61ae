"""The SMTP submission door (SPEC §4.1): aiosmtpd in front of `message_accept`.

Hosted scripts authenticate with their hosting's service name and SMTP password (AUTH PLAIN
or LOGIN), then submit; every message goes through the one submission service
(`mailqueue.submission`: `message_prepare`, `messages_store`), the messages of concurrent
sessions stored together (`group_commit`), in a thread pool so the event loop never waits on
the database.
Rooms: `smtpd_auth` (failed AUTH counting), `smtpd_protocol` (the aiosmtpd session: limits,
timeouts), `smtpd_server` (listening, TLS, draining on stop); `runsmtpd` serves it.
"""

import binascii
import collections
import logging
import unicodedata
from base64 import b64decode

from aiosmtpd.smtp import SMTP, AuthResult
from django.conf import settings
from django.db import DatabaseError

from hosting.models import Hosting
from hosting.selectors import hosting_by_smtp_credentials
from mailqueue.db_threads import DatabaseThreads
from mailqueue.group_commit import GroupCommit
from mailqueue.smtpd_auth import AuthFailureThrottle
from mailqueue.smtpd_processes import limit_share
from mailqueue.submission import SubmissionError, address_validate, sender_validate

log = logging.getLogger(__name__)

REPLY_AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
REPLY_AUTH_THROTTLED = "421 4.7.0 Too many authentication failures"
REPLY_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
REPLY_TEMPORARY = "451 4.3.0 Temporary error, please try again later"
REPLY_AUTH_TEMPORARY = "454 4.7.0 Temporary authentication failure"  # RFC 4954
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address"
REPLY_IDLE_TIMEOUT = "421 4.4.2 Timeout exceeded, closing connection"
REPLY_SESSION_TOO_LONG = "421 4.4.2 Session time limit exceeded, closing connection"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


def smtp_text(reply: str) -> str:
    """A reply made safe for the wire: SMTP replies are ASCII (the services' texts are French)."""
    folded = unicodedata.normalize("NFKD", str(reply)).encode("ascii", "ignore").decode("ascii")
    return " ".join(folded.split())


def addr_parse(addr: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port); ValueError when it is not one."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"Expected HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


class SubmissionHandler:
    """aiosmtpd handler: AUTH against the hostings, envelope checks, the group commit at DATA.

    Database work runs in `db_threads` worker threads; `close()` closes their connections.
    """

    def __init__(
        self,
        *,
        throttle: AuthFailureThrottle | None = None,
        db_threads: int = 8,
        processes: int = 1,
        session_counts=None,
    ):
        # One of `processes` door workers (smtpd_processes): its share of the per-process limits,
        # its connections counted in `session_counts` (shared with the others) when given.
        self.processes = processes
        self.session_counts = session_counts
        self.throttle = throttle or AuthFailureThrottle(
            max_failures=limit_share(settings.SMTP_AUTH_MAX_FAILURES, processes),
            max_failures_per_address=limit_share(settings.SMTP_AUTH_MAX_FAILURES_PER_ADDRESS, processes),
            window=settings.SMTP_AUTH_FAILURE_WINDOW,
        )
        self.db_threads = db_threads
        self._threads = DatabaseThreads(size=db_threads, name="smtpd-db")
        self._group_commit = GroupCommit(
            threads=self._threads,
            max_batch=settings.SMTP_GROUP_COMMIT_MAX_BATCH,
            max_in_flight=settings.SMTP_GROUP_COMMIT_IN_FLIGHT,
        )
        self.in_flight = 0  # DATA commands waiting for the database (event-loop thread only)
        self.open_sessions: set = set()  # SubmissionSMTP sessions  # live connections, closed when the door stops
        self.connections_per_address: collections.Counter[str] = collections.Counter()  # event-loop thread only
        self.draining = False  # set by door_close: no new transaction

    def connection_admit(self, address: str) -> bool:
        """Count a new connection of `address`; False (not counted) past SMTP_CLIENT_CONNECTION_LIMIT
        (this worker's share of it)."""
        limit = limit_share(settings.SMTP_CLIENT_CONNECTION_LIMIT, self.processes)
        if limit and self.connections_per_address[address] >= limit:
            return False
        self.connections_per_address[address] += 1
        if self.session_counts is not None:
            self.session_counts.add(1)
        return True

    def connection_release(self, address: str) -> None:
        if self.session_counts is not None:
            self.session_counts.add(-1)
        self.connections_per_address[address] -= 1
        if self.connections_per_address[address] <= 0:
            del self.connections_per_address[address]

    async def _in_db_thread(self, function, *args):
        return await self._threads.run(function, *args)

    def close(self) -> None:
        """Count the messages not yet in the submitted counter; close every worker thread's
        database connection, then stop the threads."""
        self._group_commit.count_flush()
        self._threads.close()

    # --- AUTH: PLAIN and LOGIN, checked off the event loop, throttled per client address and user

    async def _authenticate(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        client = server.session.peer[0] if server.session.peer else "?"
        user = login.decode(errors="replace")
        if await self._refuse_if_throttled(server, user=user):
            # Refused before the password is checked: a locked pair learns nothing more.
            return AuthResult(success=False, handled=True)
        try:
            service_name, clear = login.decode(), password.decode()
        except UnicodeDecodeError:
            hosting = None
        else:
            try:
                hosting = await self._in_db_thread(_hosting_by_credentials, service_name, clear)
            except DatabaseError:
                # The client may retry: never a permanent refusal, never the error's text.
                log.exception("SMTP AUTH from %s: credentials lookup failed", client)
                return AuthResult(success=False, handled=False, message=REPLY_AUTH_TEMPORARY)
        if hosting is None:
            self.throttle.failure_record(client, user)
            log.warning("SMTP AUTH refused from %s for user %r", client, user[:100])
            return AuthResult(success=False, handled=False, message=REPLY_AUTH_INVALID)
        return AuthResult(success=True, auth_data=hosting)

    async def _refuse_if_throttled(self, server: SMTP, *, user: str | None = None) -> bool:
        """421 and close when the address, or (with `user`) this address and user, failed too often."""
        client = server.session.peer[0] if server.session.peer else "?"
        if not self.throttle.is_blocked(client, user):
            return False
        log.warning("SMTP AUTH from %s for user %r refused: too many failures", client, (user or "")[:100])
        await server.push(REPLY_AUTH_THROTTLED)
        server.transport.close()
        return True

    async def _initial_response(self, server: SMTP, args: list[str], challenge: str) -> bytes | None:
        """The base64 argument given with AUTH, or the answer to `challenge`; None once refused."""
        if len(args) == 1:
            answer = await server.challenge_auth(challenge)
            return None if not isinstance(answer, bytes) else answer
        try:
            return b64decode(args[1].encode(), validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._refuse_if_throttled(server):
            return AuthResult(success=False, handled=True)
        blob = await self._initial_response(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        try:
            _authzid, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if await self._refuse_if_throttled(server):
            return AuthResult(success=False, handled=True)
        login = await self._initial_response(server, args, "User Name\x00")
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password\x00")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    # --- envelope and data

    async def handle_MAIL(self, server, session, envelope, address: str, mail_options: list[str]) -> str:
        if self.draining:
            server.goodbye_said = True  # door_close closes the session without a second reply
            return REPLY_SHUTTING_DOWN
        try:
            envelope.mail_from = sender_validate(address)
        except SubmissionError as error:
            return smtp_text(error.smtp_reply)
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        try:
            address = address_validate(address)
        except SubmissionError as error:
            return smtp_text(error.smtp_reply)
        if address.lower() in {known.lower() for known in envelope.rcpt_tos}:
            return "250 2.1.5 Ok"
        if len(envelope.rcpt_tos) >= settings.MAX_RECIPIENTS:
            return REPLY_TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope) -> str:
        hosting: Hosting = session.auth_data
        self.in_flight += 1
        server.storing = True
        try:
            client = session.peer[0] if session.peer else None
            message = await self._group_commit.accept(
                hosting=hosting,
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                raw=envelope.original_content,
                client_address=client,
            )
        except SubmissionError as error:
            log.info("SMTP message refused for %s: %s", hosting.service_name, smtp_text(error.smtp_reply))
            return smtp_text(error.smtp_reply)
        except Exception:
            log.exception("SMTP message of %s not stored (temporary error)", hosting.service_name)
            return REPLY_TEMPORARY
        finally:
            self.in_flight -= 1
            server.storing = False
        log.info(
            "SMTP message accepted for %s: id %s %s",
            hosting.service_name,
            message.pk,
            message.message_id,
            extra={"hosting_id": hosting.pk, "message_pk": message.pk, "message_id": message.message_id},
        )
        return f"250 2.0.0 Ok: queued as {message.pk}"


def _hosting_by_credentials(service_name: str, password: str) -> Hosting | None:
    return hosting_by_smtp_credentials(service_name=service_name, password=password)
