"""Helpers shared by tests that run real servers and processes."""

import asyncio
import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

from mailqueue.bounced import BounceHandler, bounce_smtp
from mailqueue.smtpd import SubmissionHandler, addr_parse
from mailqueue.smtpd_server import door_close, door_listen, door_loop_new

CELERY = Path(sys.executable).with_name("celery")
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _without_top_fields(raw: bytes, names: set[bytes]) -> bytes:
    lines = raw.split(b"\r\n")
    position = 0
    while position < len(lines) and lines[position].split(b":", 1)[0].strip().lower() in names:
        position += 1
        while position < len(lines) and lines[position][:1] in (b" ", b"\t"):  # folded continuation
            position += 1
    return b"\r\n".join(lines[position:])


def as_submitted(stored: bytes) -> bytes:
    """The stored bytes without the Date: and Message-ID: the doors add on top when missing."""
    return _without_top_fields(bytes(stored), {b"date", b"message-id"})


def as_stored(delivered: bytes) -> bytes:
    """What the relay received without the Received: and DKIM-Signature: delivery puts on top."""
    return _without_top_fields(bytes(delivered), {b"received", b"dkim-signature"})


def return_path_of(message, index: int = 0) -> str:
    """The envelope sender delivery uses for `message`'s recipient number `index` (SPEC §10.1)."""
    from mailqueue.return_path import return_path_for

    return return_path_for(hosting_id=message.hosting_id, message_pk=message.pk, index=index)


def handoffs_of(hosting) -> int:
    """The messages of `hosting` counted as handed to the relay (its rows' `count`s added up)."""
    from django.db.models import Sum

    from mailqueue.models import RelayHandoff

    return RelayHandoff.objects.filter(hosting=hosting).aggregate(total=Sum("count"))["total"] or 0


def wait_until(condition, *, timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_database_url() -> str:
    """The URL of the test database this session uses, for another process to share it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def worker_process(*, queue: str, log: Path, **environment: str):
    """A real `celery worker` process (solo pool) on the test database and broker, consuming
    `queue`; killed with its process group on exit. Yields the Popen."""
    env = os.environ | {"DATABASE_URL": shared_database_url(), "CELERY_QUEUE_PREFIX": ""} | environment
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    command = [str(CELERY), "-A", "portal", "worker", "-P", "solo", "-Q", queue]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "WARNING"]
    with log.open("wb") as output:
        worker = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, 9)
        worker.wait(timeout=30)


def bare_environment(**environment: str) -> dict[str, str]:
    """Only what a deployment sets, plus `environment`: none of the test session's settings
    (HTTPS=false, DATABASE_URL…); VAR_DIR keeps the run's files in this checkout's var/."""
    kept = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return kept | {"VAR_DIR": str(settings.VAR_DIR)} | environment


@contextlib.contextmanager
def web_server(*, log: Path, **environment: str):
    """The Procfile's gunicorn on a free port, on the test database, with only `environment` set
    (so without DEBUG=true or HTTPS=false it redirects plain HTTP to https); yields its port."""
    port = free_port()
    env = bare_environment(ALLOWED_HOSTS="127.0.0.1", DATABASE_URL=shared_database_url(), **environment)
    command = [str(GUNICORN), "portal.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: http_get(port, "/healthz") is not None, timeout=60), log.read_text()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def http_get(port: int, path: str, **headers: str) -> http.client.HTTPResponse | None:
    """GET http://127.0.0.1:port/path, redirects not followed; None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response
    except OSError:
        return None
    finally:
        connection.close()


class SubmissionDoor:
    """The SMTP door served from a background thread: `start()` returns (host, port), `stop()`."""

    def __init__(self, *, addr: str | None = None, handler: SubmissionHandler | None = None):
        self.host, self.port = addr_parse(addr or settings.SMTP_INGRESS_ADDR)
        self.handler = handler or SubmissionHandler()
        self._loop = door_loop_new()  # SMTP_EVENT_LOOP's, as runsmtpd's
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


class BounceDoor(Controller):
    """The bounce door (runbounced's server) in a background thread, on a free port."""

    def __init__(self):
        super().__init__(
            BounceHandler(), hostname="127.0.0.1", port=free_port(), ready_timeout=10, loop=door_loop_new()
        )

    def factory(self):
        return bounce_smtp(self.handler)

    def stop(self, *args, **kwargs):
        super().stop(*args, **kwargs)
        self.handler.close()

    def __enter__(self) -> "BounceDoor":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def bench_run(script: str, arguments: list[str], *, tmp_path: Path) -> subprocess.CompletedProcess:
    """`bench/<script>` run as `make bench` runs it, with a state of its own (its own var/: logs,
    cache, broker files; no cache or broker of the suite's) and, on PostgreSQL, the server of this
    run (the bench makes and drops its own database there)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "VAR_DIR")}
    env["VAR_DIR"] = str(tmp_path / "var")
    if connection.vendor == "postgresql":
        database = connection.settings_dict
        user = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
        env["DATABASE_URL"] = f"postgres://{user}@{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}/postgres"
    return subprocess.run(
        [sys.executable, f"bench/{script}", *arguments],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextlib.contextmanager
def silent_resolver(*, gives_up_after: float):
    """Inside the block, `socket.getaddrinfo` answers nothing (a resolver gone silent; it fails
    once the block ends, ending the lookups' threads) and webhook addresses give up on a name
    after `gives_up_after` seconds (`webhook_addresses.RESOLVE_TIMEOUT_SECONDS`)."""
    from mailqueue import webhook_addresses

    released = threading.Event()

    def silent(*args, **kwargs):
        released.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with (
        mock.patch.object(socket, "getaddrinfo", silent),
        mock.patch.object(webhook_addresses, "RESOLVE_TIMEOUT_SECONDS", gives_up_after),
    ):
        try:
            yield
        finally:
            released.set()
