"""`manage.py runsmtpd` as it runs in production: a real process, stopped with SIGTERM.

On SIGTERM the door stops accepting connections at once, lets the sessions in the middle of a
transaction finish it (their message stored and answered 250) for up to SMTP_DRAIN_SECONDS, tells
the others 421 4.3.2, and exits. Before, a client in the middle of its DATA was cut off: it had
no reply, so it submitted the message again (or lost it).
"""

import contextlib
import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from mailqueue.models import Message
from tests.factories import HostingFactory
from tests.support import as_submitted, free_port, shared_database_url, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
BODY_START = b"From: shop@example.net\r\nTo: client@example.org\r\nSubject: Drained\r\n\r\nFirst half,\r\n"
BODY_END = b"second half.\r\n"


@contextlib.contextmanager
def runsmtpd(tmp_path, **environment):
    """A `manage.py runsmtpd` process on a free port and the test database; yields (process, port, log)."""
    port = free_port()
    env = os.environ | {"DATABASE_URL": shared_database_url(), "SMTP_DRAIN_SECONDS": "10"} | environment
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    log = tmp_path / "runsmtpd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "runsmtpd", "--addr", f"127.0.0.1:{port}", "--db-threads", "2"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: b"SMTP door listening" in log.read_bytes(), timeout=60), log.read_text()
        yield process, port, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def refused(port: int) -> bool:
    try:
        smtplib.SMTP("127.0.0.1", port, timeout=5).close()
    except (ConnectionRefusedError, smtplib.SMTPServerDisconnected):
        return True
    return False


def test_sigterm_lets_a_client_mid_data_finish_and_stops_taking_new_ones(tmp_path):
    hosting = HostingFactory()
    with runsmtpd(tmp_path) as (process, port, log):
        sending = smtplib.SMTP("127.0.0.1", port, timeout=30)
        sending.login(hosting.service_name, hosting.smtp_password)
        assert sending.mail("shop@example.net")[0] == 250
        assert sending.rcpt("client@example.org")[0] == 250
        assert sending.docmd("DATA")[0] == 354
        sending.send(BODY_START)  # mid-DATA when the signal comes
        idle = smtplib.SMTP("127.0.0.1", port, timeout=30)
        idle.login(hosting.service_name, hosting.smtp_password)  # between transactions

        process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: b"SMTP door stopping" in log.read_bytes(), timeout=30), log.read_text()

        assert idle.getreply() == (421, b"4.3.2 Service shutting down, try again later")
        assert wait_until(lambda: refused(port), timeout=30), "no new connection once stopping"
        sending.send(BODY_END + b".\r\n")
        code, reply = sending.getreply()
        message = Message.objects.get(hosting=hosting)
        assert (code, reply.decode()) == (250, f"2.0.0 Ok: queued as {message.pk}")
        assert as_submitted(message.raw) == BODY_START + BODY_END
        assert sending.getreply() == (421, b"4.3.2 Service shutting down, try again later")

        assert process.wait(timeout=60) == 0
        assert b"SMTP door stopped" in log.read_bytes()
        sending.close()
        idle.close()


def test_sigterm_gives_up_on_a_transaction_longer_than_the_drain(tmp_path):
    hosting = HostingFactory()
    with runsmtpd(tmp_path, SMTP_DRAIN_SECONDS="1") as (process, port, _log):
        stalled = smtplib.SMTP("127.0.0.1", port, timeout=30)
        stalled.login(hosting.service_name, hosting.smtp_password)
        stalled.mail("shop@example.net")
        stalled.rcpt("client@example.org")
        stalled.docmd("DATA")
        stalled.send(BODY_START)  # and nothing more

        process.send_signal(signal.SIGTERM)

        assert stalled.getreply() == (421, b"4.3.2 Service shutting down, try again later")
        assert process.wait(timeout=60) == 0
        assert not Message.objects.filter(hosting=hosting).exists()
        stalled.close()
