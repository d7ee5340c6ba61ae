"""The SMTP submission door (SPEC §4.1): aiosmtpd in front of `message_accept`.

Hosted scripts authenticate with their hosting's service name and SMTP password (AUTH PLAIN
or LOGIN), then submit; every message goes through `mailqueue.submission.message_accept`, the
one submission service, run in a thread pool so the event loop never waits on the database.
`runsmtpd` serves it in the foreground; `SubmissionDoor` runs it in a background thread.
"""

import asyncio
import binascii
import collections
import concurrent.futures
import logging
import ssl
import threading
import time
import unicodedata
from base64 import b64decode

from aiosmtpd.smtp import SMTP, AuthResult, Session
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from hosting.models import Hosting
from hosting.selectors import hosting_by_smtp_credentials
from mailqueue.submission import SubmissionError, address_validate, message_accept, sender_validate

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


class AuthFailureThrottle:
    """Failed AUTH attempts over a sliding window, in process memory, counted per (client address,
    user name) and per client address.

    On shared hosting every script of a web server connects from one address: one tenant's wrong
    password must not lock out the others. A (address, user) pair is refused after `max_failures`;
    the address as a whole only after `max_failures_per_address` (default 20 × max_failures), which
    bounds guessing across many user names. Thread-safe; remembers at most `max_clients` keys of
    each kind (the least recently failing are forgotten first), so a flood cannot grow it without bound.
    """

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        max_failures_per_address: int | None = None,
        max_clients: int = 10_000,
        clock=time.monotonic,
    ):
        self.max_failures = max_failures
        self.max_failures_per_address = (
            max_failures_per_address if max_failures_per_address is not None else 20 * max_failures
        )
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: collections.OrderedDict[tuple, collections.deque] = collections.OrderedDict()

    @staticmethod
    def _user_key(user: str) -> str:
        return user.strip().casefold()[:255]

    def _recent(self, key: tuple, now: float) -> collections.deque | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _over(self, key: tuple, limit: int, now: float) -> bool:
        times = self._recent(key, now)
        return times is not None and len(times) >= limit

    def is_blocked(self, client: str, user: str | None = None) -> bool:
        """Whether the address has used up its failures, or (with `user`) the pair has."""
        with self._lock:
            now = self._clock()
            if self._over(("address", client), self.max_failures_per_address, now):
                return True
            return user is not None and self._over(("user", client, self._user_key(user)), self.max_failures, now)

    def failure_record(self, client: str, user: str = "") -> None:
        with self._lock:
            now = self._clock()
            keys = {("address", client): self.max_failures_per_address}
            keys[("user", client, self._user_key(user))] = self.max_failures
            for key, limit in keys.items():
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = collections.deque(maxlen=max(1, limit))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > 2 * self.max_clients:
                self._failures.popitem(last=False)


class SubmissionHandler:
    """aiosmtpd handler: AUTH against the hostings, envelope checks, `message_accept` at DATA.

    Database work runs in `db_threads` worker threads; `close()` closes their connections.
    """

    def __init__(self, *, throttle: AuthFailureThrottle | None = None, db_threads: int = 8):
        self.throttle = throttle or AuthFailureThrottle(
            max_failures=settings.SMTP_AUTH_MAX_FAILURES,
            max_failures_per_address=settings.SMTP_AUTH_MAX_FAILURES_PER_ADDRESS,
            window=settings.SMTP_AUTH_FAILURE_WINDOW,
        )
        self.db_threads = db_threads
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="smtpd-db")
        self.in_flight = 0  # DATA commands waiting for the database (event-loop thread only)
        self.open_sessions: set[SubmissionSMTP] = set()  # live connections, closed when the door stops
        self.connections_per_address: collections.Counter[str] = collections.Counter()  # event-loop thread only
        self.draining = False  # set by door_close: no new transaction

    def connection_admit(self, address: str) -> bool:
        """Count a new connection of `address`; False (not counted) past SMTP_CLIENT_CONNECTION_LIMIT."""
        limit = settings.SMTP_CLIENT_CONNECTION_LIMIT
        if limit and self.connections_per_address[address] >= limit:
            return False
        self.connections_per_address[address] += 1
        return True

    def connection_release(self, address: str) -> None:
        self.connections_per_address[address] -= 1
        if self.connections_per_address[address] <= 0:
            del self.connections_per_address[address]

    async def _in_db_thread(self, function, *args):
        def run():
            close_old_connections()
            try:
                return function(*args)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def close(self) -> None:
        """Close every worker thread's database connection, then stop the threads."""
        barrier = threading.Barrier(self.db_threads)

        def close_connection():
            connections.close_all()
            # Each worker holds here until all have closed, so every thread runs this once.
            barrier.wait(timeout=10)

        for _ in range(self.db_threads):
            self._executor.submit(close_connection)
        self._executor.shutdown(wait=True)

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
            message = await self._in_db_thread(
                _message_accept, hosting, envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
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


def _message_accept(hosting: Hosting, sender: str, recipients: list[str], raw: bytes):
    return message_accept(hosting=hosting, sender=sender, recipients=recipients, raw=raw)


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

    # Lines over 998 octets get message_accept's clear 554 5.6.0; this bound only guards memory.
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
        await super().smtp_DATA(arg)
        if self._pending_close is not None:  # a limit or a shutdown came while the message was stored
            self.close_with(self._pending_close)


def tls_context_from_settings() -> ssl.SSLContext | None:
    """The STARTTLS context when SMTP_TLS_CERT and SMTP_TLS_KEY are set, otherwise None."""
    if not (settings.SMTP_TLS_CERT and settings.SMTP_TLS_KEY):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.SMTP_TLS_CERT, settings.SMTP_TLS_KEY)
    return context


async def door_listen(*, host: str, port: int, handler: SubmissionHandler) -> asyncio.Server:
    """Start listening (port 0 picks a free one); the caller closes the returned server."""
    tls_context = tls_context_from_settings()
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SubmissionSMTP(handler, tls_context=tls_context), host=host, port=port)


async def door_close(server: asyncio.Server, handler: SubmissionHandler, *, drain_seconds: float | None = None) -> None:
    """Stop the door gracefully: stop accepting connections at once; close the sessions between
    transactions (421 4.3.2) and let those in one finish it (data received, message stored, 250
    sent) for up to `drain_seconds` (SMTP_DRAIN_SECONDS), then close them too; release the threads.

    A client cut in the middle of its DATA before this existed submitted the message again; now
    it gets its reply, unless its transaction outlasts the drain (then it gets the 421).
    """
    drain_seconds = settings.SMTP_DRAIN_SECONDS if drain_seconds is None else drain_seconds
    server.close()
    handler.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + drain_seconds
    while True:
        busy = False
        for session in list(handler.open_sessions):
            if session.in_transaction:
                busy = True
            else:
                session.close_with(REPLY_SHUTTING_DOWN)
        if not busy or loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)
    for session in list(handler.open_sessions):
        session.close_with(REPLY_SHUTTING_DOWN)  # past the drain; a message being stored still gets its reply
    await asyncio.sleep(0)  # let the closed sessions' tasks finish
    handler.close()


class SubmissionDoor:
    """The SMTP door served from a background thread: `start()` returns (host, port), `stop()`."""

    def __init__(self, *, addr: str | None = None, handler: SubmissionHandler | None = None):
        self.host, self.port = addr_parse(addr or settings.SMTP_INGRESS_ADDR)
        self.handler = handler or SubmissionHandler()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> tuple[str, int]:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve():
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    door_listen(host=self.host, port=self.port, handler=self.handler)
                )
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="smtp-door", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise failure[0]
        return self.host, self.port

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(door_close(self._server, self.handler), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> "SubmissionDoor":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
