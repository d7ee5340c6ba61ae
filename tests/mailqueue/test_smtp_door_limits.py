"""The SMTP door's limits per client address and per session, seen by real TCP clients.

Like Postfix's smtpd: SMTP_CLIENT_CONNECTION_LIMIT connections per address
(`smtpd_client_connection_count_limit`), SMTP_IDLE_TIMEOUT seconds per command (`smtpd_timeout`)
and SMTP_SESSION_MAX_SECONDS per session; a client over a limit is told why (421) and closed.
"""

import contextlib
import smtplib
import socket
import time

import pytest

from mailqueue.models import Message
from mailqueue.smtpd import SubmissionHandler
from tests.factories import HostingFactory
from tests.support import SubmissionDoor, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TOO_MANY = b"421 4.7.0 Too many connections from your address\r\n"
IDLE = b"421 4.4.2 Timeout exceeded, closing connection\r\n"
TOO_LONG = b"421 4.4.2 Session time limit exceeded, closing connection\r\n"


@pytest.fixture
def door():
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=1)) as running:
        yield running


def connected(door, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((door.host, door.port), timeout=60, source_address=(source, 0))
    return sock


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def until_closed(sock: socket.socket) -> list[bytes]:
    """Every line the server sends until it closes the connection ("reset" when it reset it)."""
    lines = []
    try:
        while line := read_line(sock):
            lines.append(line)
    except ConnectionResetError:
        lines.append(b"reset")
    return lines


def greeted(door, source: str = "127.0.0.1") -> bool:
    with contextlib.closing(connected(door, source)) as sock:
        return read_line(sock).startswith(b"220 ")


def test_connections_over_the_per_address_limit_get_421_and_are_closed(door, settings):
    assert settings.SMTP_CLIENT_CONNECTION_LIMIT == 50
    admitted = [connected(door) for _ in range(50)]
    try:
        assert all(read_line(sock).startswith(b"220 ") for sock in admitted)
        for _ in range(5):
            with contextlib.closing(connected(door)) as extra:
                assert until_closed(extra) == [TOO_MANY]
        assert greeted(door, source="127.0.0.2"), "another address has connections of its own"
        admitted.pop().close()
        assert wait_until(lambda: greeted(door), timeout=30), "a closed connection frees its place"
    finally:
        for sock in admitted:
            sock.close()


def test_400_slow_connections_are_all_closed_after_the_idle_timeout(door, settings):
    settings.SMTP_IDLE_TIMEOUT = 1
    sockets = [connected(door, source=f"127.0.0.{1 + n % 8}") for n in range(400)]  # 50 per address
    try:
        for sock in sockets[1::2]:
            sock.sendall(b"EHLO never-finish")  # half of them start a command and never end its line
        for sock in sockets:
            assert read_line(sock).startswith(b"220 ")
        closed = [until_closed(sock) for sock in sockets]
        assert closed[::2] == [[IDLE]] * 200
        # A socket closed with input its server has not read yet ends with a reset, which may
        # overtake the 421 (the door's loop is slow to read when 400 clients arrive at once).
        assert all(lines in ([IDLE], [b"reset"], [IDLE, b"reset"]) for lines in closed[1::2]), closed[1::2]
        assert greeted(door), "their places are free again"
    finally:
        for sock in sockets:
            sock.close()


def test_a_busy_session_is_closed_at_the_session_deadline(door, settings):
    settings.SMTP_IDLE_TIMEOUT = 60
    settings.SMTP_SESSION_MAX_SECONDS = 1
    with contextlib.closing(connected(door)) as sock:
        assert read_line(sock).startswith(b"220 ")
        lines = []
        for _ in range(600):  # a NOOP every 50 ms: never idle
            try:
                sock.sendall(b"NOOP\r\n")
            except OSError:
                break
            line = read_line(sock)
            if not line:
                break
            lines.append(line)
            time.sleep(0.05)
        assert lines[-1] == TOO_LONG
        assert set(lines[:-1]) == {b"250 OK\r\n"}
        assert read_line(sock) == b""


def test_a_message_within_the_limits_is_stored(door, settings):
    """The limits leave an ordinary session alone."""
    settings.SMTP_IDLE_TIMEOUT = 30
    hosting = HostingFactory()
    with smtplib.SMTP(door.host, door.port, timeout=30) as client:
        client.login(hosting.service_name, hosting.smtp_password)
        assert client.sendmail("shop@example.net", ["a@example.org"], b"Subject: hi\r\n\r\nhi\r\n") == {}
    assert Message.objects.filter(hosting=hosting).count() == 1
