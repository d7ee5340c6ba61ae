"""Serving the SMTP door: its event loop, TLS from the settings, listening, and closing with a
drain (SIGTERM)."""

import asyncio
import logging
import ssl

from celery import current_app
from django.conf import settings

from mailqueue.addresses import email_address_valid
from mailqueue.smtpd import REPLY_SHUTTING_DOWN, SubmissionHandler
from mailqueue.smtpd_protocol import SubmissionSMTP

log = logging.getLogger(__name__)


def door_loop_new() -> asyncio.AbstractEventLoop:
    """A new event loop for a door, of the kind SMTP_EVENT_LOOP names: uvloop's (libuv's, the
    default: its transports write and read in C, ~0.1 ms less CPU a message) or asyncio's own
    (`checks.event_loop_check` names any other)."""
    if settings.SMTP_EVENT_LOOP == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def door_run(coroutine):
    """Run `coroutine` to its end in a new door loop (`door_loop_new`), as `asyncio.run` does."""
    with asyncio.Runner(loop_factory=door_loop_new) as runner:
        return runner.run(coroutine)


def tls_context_from_settings() -> ssl.SSLContext | None:
    """The STARTTLS context when SMTP_TLS_CERT and SMTP_TLS_KEY are set, otherwise None."""
    if not (settings.SMTP_TLS_CERT and settings.SMTP_TLS_KEY):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.SMTP_TLS_CERT, settings.SMTP_TLS_KEY)
    return context


def door_warm_up() -> None:
    """Pay before listening what the first message would pay: Django's address validator
    compiles its regexes at first use (~0.3 s), the broker's transport is imported at the first
    delivery kick."""
    email_address_valid("warm-up@example.org")
    current_app.connection_for_write().release()  # made, not connected: the transport imported


async def door_listen(
    *, host: str | None = None, port: int | None = None, sock=None, handler: SubmissionHandler
) -> "asyncio.Server | BalancedServer":
    """Start listening on host and port (port 0 picks a free one), or on the listening socket
    `sock` (a worker of `smtpd_processes`, balanced with the others when the handler has their
    `session_counts`); the caller closes the returned server."""
    tls_context = tls_context_from_settings()
    door_warm_up()
    loop = asyncio.get_running_loop()
    factory = lambda: SubmissionSMTP(handler, tls_context=tls_context)  # noqa: E731
    if sock is not None and handler.session_counts is not None:
        return BalancedServer(sock, factory, handler.session_counts)
    if sock is not None:
        return await loop.create_server(factory, sock=sock)
    return await loop.create_server(factory, host=host, port=port)


class BalancedServer:
    """A door worker's server on the socket the workers share: when a connection is waiting, a
    worker that holds more connections than another gives that other a moment to take it
    (`SessionCounts.turn`), then takes it if it is still there; one connection at a time. What
    `door_close` needs of an asyncio.Server: `close()`, `sockets`."""

    def __init__(self, sock, factory, counts):
        self.sockets = [sock]
        self._factory = factory
        self._counts = counts
        self._task = asyncio.get_running_loop().create_task(self._accepting())

    async def _accepting(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.sockets[0]
        while True:
            await self._waiting_connection()
            await self._counts.turn()
            try:
                connection, _address = sock.accept()
            except BlockingIOError:  # another worker took it
                continue
            except OSError as error:  # out of descriptors, a connection reset before it was taken…
                log.warning("SMTP door: a connection could not be accepted (%s)", error)
                await asyncio.sleep(0.1)
                continue
            connection.setblocking(False)
            try:
                await loop.connect_accepted_socket(self._factory, connection)
            except Exception:  # that connection only: the worker goes on accepting
                log.exception("SMTP door: an accepted connection could not be served")
                connection.close()

    async def _waiting_connection(self) -> None:
        """Return once the socket has a connection waiting (every worker is told)."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        descriptor = self.sockets[0].fileno()
        loop.add_reader(descriptor, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(descriptor)

    def close(self) -> None:
        """Stop accepting at once (the sessions open go on), and close this worker's copy of the
        socket once the accept waiting on it is cancelled: with the others' closed too, a new
        client is refused at once."""
        self._task.add_done_callback(lambda _task: self.sockets[0].close())
        self._task.cancel()


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
