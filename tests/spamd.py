"""A real SpamAssassin spamd for the tests (SPEC §11.1), and fake ones that stay silent or answer garbage.

`spamd_factory()` starts one spamd on a free loopback port, local tests only (`-L`: no DNS, no network), as the
current user (`-u nobody` under root), logging to a file in its own temporary directory; every spamd it started is
stopped at the end of the session. `spamd` is one shared instance. Both skip the test when the Debian package
`spamd` is not installed (`.ci/run` installs it). The rules are those the package ships (/usr/share/spamassassin,
compiled at install when `sa-compile` is there); nothing is fetched (`sa-update` needs the network).
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SPAMD_BINARY = shutil.which("spamd") or ("/usr/sbin/spamd" if Path("/usr/sbin/spamd").exists() else None)
READY_SECONDS = 60  # spamd compiles its rules at start: about a second here, more on a loaded CI machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spamd_command(*, port: int, directory: Path) -> list[str]:
    """The command line of a test spamd: loopback, one port, local tests, two children, logs on stderr."""
    command = [SPAMD_BINARY or "spamd", "-L", "-x", "--listen", "127.0.0.1", "--port", str(port)]
    command += ["--syslog=stderr", f"--pidfile={directory / 'spamd.pid'}", "--max-children", "2"]
    command += [f"--helper-home-dir={directory}"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # as root, spamd would warn and fall back to nobody at each scan
    return command


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in connection.recv(64)
    except OSError:
        return False


@dataclass
class SpamdProcess:
    """One running spamd; `url` is what SPAMD_URL should read, `log` its stderr."""

    process: subprocess.Popen
    port: int
    log: Path
    started_seconds: float  # from launch to the first PONG

    @property
    def url(self) -> str:
        return f"spamd://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop spamd and its children (its own process group), waiting until the port is closed."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def spamd_start(directory: Path) -> SpamdProcess:
    """Start a spamd in `directory` and return once it answers PING; fail with its log if it does not."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)  # its children write their state in the helper home
    port = _free_port()
    log = directory / "spamd.log"
    launched = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            spamd_command(port=port, directory=directory),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    spamd = SpamdProcess(process=process, port=port, log=log, started_seconds=0.0)
    while time.monotonic() - launched < READY_SECONDS:
        if process.poll() is not None:
            break
        if _answers_ping(port):
            spamd.started_seconds = time.monotonic() - launched
            return spamd
        time.sleep(0.1)
    spamd.stop()
    pytest.fail(f"spamd did not answer on port {port} (exit {process.returncode}):\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def spamd_factory(tmp_path_factory) -> Iterator[Callable[[], SpamdProcess]]:
    """Start as many spamd as a test needs; all are stopped when the session ends."""
    started: list[SpamdProcess] = []

    def start() -> SpamdProcess:
        if SPAMD_BINARY is None:
            pytest.skip("spamd is not installed (Debian package `spamd`; .ci/run installs it)")
        spamd = spamd_start(tmp_path_factory.mktemp("spamd"))
        started.append(spamd)
        return spamd

    yield start
    for spamd in started:
        spamd.stop()


@pytest.fixture(scope="session")
def spamd(spamd_factory) -> SpamdProcess:
    """The session's shared spamd."""
    return spamd_factory()


@contextlib.contextmanager
def fake_spamd(answer: bytes | None = None) -> Iterator[int]:
    """A TCP server on a free loopback port that reads each request to its end, then sends `answer` and closes,
    or, without an answer, stays silent with the connection open until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()
    silent: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            with contextlib.suppress(OSError):
                while connection.recv(65536):  # until the client's end of request (shutdown of its side)
                    pass
            if answer is None:
                silent.append(connection)
                continue
            with connection, contextlib.suppress(OSError):
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in silent:
            connection.close()
        listener.close()
