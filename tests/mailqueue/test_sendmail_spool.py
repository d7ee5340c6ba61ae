"""`manage.py sendmail` loses nothing while the SMTP door is down: it spools, `sendmail_flush` submits.

Before, every PHP `mail()` call made during a door restart failed (69 refused during a 0.6 s
restart). Now, as with Postfix's postdrop, a message the door cannot take for now is written
durably to the local spool (exit 0), and `manage.py sendmail_flush` submits the spool in order
once the door is back. Everything runs as real processes against a real door.
"""

import json
import shutil
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from mailqueue.models import Message
from mailqueue.smtpd import REPLY_TEMPORARY, SubmissionHandler
from tests.factories import HostingFactory
from tests.mailqueue.test_sendmail import MANAGE, SENDMAIL, sendmail_env
from tests.support import SubmissionDoor, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: Shop <shop@acme-shop.fr>\nTo: client@example.org\nSubject: Commande %d\n\nMerci.\n"


@pytest.fixture
def hosting():
    return HostingFactory(service_name="acme-shop.fr")


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def spool_dir(tmp_path):
    return tmp_path / "spool"


def url_for(hosting, port) -> str:
    return f"smtp://{hosting.service_name}:{hosting.smtp_password}@127.0.0.1:{port}"


def environment(hosting, port, spool_dir) -> dict:
    return sendmail_env(url_for(hosting, port)) | {"SENDMAIL_SPOOL_DIR": str(spool_dir)}


def sendmail(args, message: bytes, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*SENDMAIL, *args], input=message, env=env, capture_output=True, timeout=60, check=False)


def flush(env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, str(MANAGE), "sendmail_flush"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def waiting(spool_dir: Path) -> list[Path]:
    return sorted((spool_dir / "acme-shop.fr" / "new").glob("*.msg"))


def door_on(port: int) -> SubmissionDoor:
    return SubmissionDoor(addr=f"127.0.0.1:{port}", handler=SubmissionHandler(db_threads=2))


def test_door_down_spools_durably_then_flush_delivers_and_removes(hosting, port, spool_dir):
    env = environment(hosting, port, spool_dir)

    result = sendmail(["-t", "-i"], MESSAGE % 1, env)

    assert result.returncode == 0, result.stderr
    assert b"spooled as" in result.stderr
    [spooled] = waiting(spool_dir)
    envelope, raw = spooled.read_bytes().split(b"\n", 1)
    assert json.loads(envelope) | {"spooled_at": None} == {
        "format": 1,
        "service": "acme-shop.fr",
        "sender": "shop@acme-shop.fr",
        "recipients": ["client@example.org"],
        "spooled_at": None,
    }
    assert raw.endswith(b"Subject: Commande 1\r\n\r\nMerci.\r\n")
    assert spooled.stat().st_mode & 0o077 == 0, "mail content is private to the hosting's user"
    assert list((spool_dir / "acme-shop.fr" / "tmp").iterdir()) == []
    assert not Message.objects.exists()

    with door_on(port):
        flushed = flush(env)

    assert flushed.returncode == 0, flushed.stderr
    assert flushed.stdout.strip() == "1 submitted, 0 set aside"
    message = Message.objects.get()
    assert (message.hosting, message.subject, message.sender) == (hosting, "Commande 1", "shop@acme-shop.fr")
    assert [r["address"] for r in message.recipients] == ["client@example.org"]
    assert waiting(spool_dir) == []


def test_flush_keeps_everything_while_the_door_is_down_then_submits_oldest_first(hosting, port, spool_dir):
    env = environment(hosting, port, spool_dir)
    for number in (1, 2, 3):
        assert sendmail(["-t"], MESSAGE % number, env).returncode == 0

    still_down = flush(env)

    assert still_down.returncode == 75
    assert "kept for the next run" in still_down.stderr
    assert len(waiting(spool_dir)) == 3

    with door_on(port):
        assert flush(env).returncode == 0
        assert flush(env).stdout == "", "an empty spool: nothing to say, nothing sent twice"

    assert list(Message.objects.order_by("id").values_list("subject", flat=True)) == [
        "Commande 1",
        "Commande 2",
        "Commande 3",
    ]
    assert waiting(spool_dir) == []


def test_a_permanent_refusal_is_set_aside_with_the_reply_and_the_next_message_goes(hosting, port, spool_dir):
    env = environment(hosting, port, spool_dir)
    assert sendmail(["client@example.org", "not-an-address"], MESSAGE % 1, env).returncode == 0
    assert sendmail(["client@example.org"], MESSAGE % 2, env).returncode == 0

    with door_on(port):
        flushed = flush(env)

    assert flushed.returncode == 0
    assert flushed.stdout.strip() == "1 submitted, 1 set aside"
    assert Message.objects.get().subject == "Commande 2"
    failed = spool_dir / "acme-shop.fr" / "failed"
    [kept] = failed.glob("*.msg")
    assert b"Subject: Commande 1" in kept.read_bytes()
    reply = (failed / (kept.name + ".reply")).read_text()
    assert reply.startswith("recipient <not-an-address> refused: 553 5.1.3")
    assert waiting(spool_dir) == []


class BusyDoor:
    """An SMTP server that takes AUTH and the envelope, then answers DATA as the door does when it
    cannot store a message for now (REPLY_TEMPORARY, 451 4.3.0)."""

    async def handle_DATA(self, server, session, envelope):
        return REPLY_TEMPORARY


def test_a_temporary_refusal_by_the_door_spools_too(hosting, port, spool_dir):
    env = environment(hosting, port, spool_dir)
    busy = Controller(
        BusyDoor(),
        hostname="127.0.0.1",
        port=port,
        ready_timeout=10,
        auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=True),
    )
    busy.start()
    try:
        refused = sendmail(["-t"], MESSAGE % 1, env)
    finally:
        busy.stop()

    assert refused.returncode == 0, refused.stderr
    assert b"message refused: 451 4.3.0" in refused.stderr
    assert len(waiting(spool_dir)) == 1

    with door_on(port):  # the real door, able to store again
        assert flush(env).returncode == 0
    assert Message.objects.get().subject == "Commande 1"


def test_bad_input_and_permanent_refusals_still_fail_at_once(hosting, port, spool_dir):
    env = environment(hosting, port, spool_dir)

    assert sendmail([], MESSAGE % 1, env).returncode == 64, "no recipient, door down"
    assert sendmail(["-Z"], MESSAGE % 1, env).returncode == 64, "unknown option, door down"
    assert sendmail(["-t"], MESSAGE % 1, env | {"PORTAL_SENDMAIL_URL": "http://x"}).returncode == 78
    with door_on(port):
        wrong_password = env | {"PORTAL_SENDMAIL_URL": f"smtp://acme-shop.fr:wrong@127.0.0.1:{port}"}
        assert sendmail(["-t"], MESSAGE % 1, wrong_password).returncode == 77
        assert sendmail(["client@example.org", "not-an-address"], MESSAGE % 1, env).returncode == 65

    assert waiting(spool_dir) == []
    assert not Message.objects.exists()


def test_an_unwritable_spool_is_a_temporary_failure(hosting, port, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    result = sendmail(["-t"], MESSAGE % 1, environment(hosting, port, blocked))

    assert result.returncode == 75
    assert b"cannot write to the spool either" in result.stderr


# --- PHP's mail() during a real door restart ---------------------------------------------------------

PHP_LOOP = r"""
$sent = 0; $refused = 0;
for ($i = 1; $i <= 400 && !file_exists(getenv("STOP_FILE")); $i++) {
    if (mail("client@example.org", "restart $i", "Bonjour", "From: Boutique <shop@acme-shop.fr>")) {
        $sent++;
    } else {
        $refused++;
    }
}
echo "$sent $refused";
"""


class DoorProcess:
    """`manage.py runsmtpd` as a process, restarted as an operator (or a deployment) would."""

    def __init__(self, port: int, env: dict, log: Path):
        self.port, self.env, self.log = port, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, str(MANAGE), "runsmtpd", "--addr", f"127.0.0.1:{self.port}", "--db-threads", "2"]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(command, env=self.env, stdout=output, stderr=subprocess.STDOUT)
        assert wait_until(self.accepts, timeout=60), self.log.read_text()

    def accepts(self) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as smtp:
                return smtp.noop()[0] == 250
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("php"), reason="php is not installed (apt-get install php-cli)")
def test_php_mail_during_a_door_restart_loses_nothing(hosting, port, spool_dir, tmp_path):
    env = environment(hosting, port, spool_dir) | {"STOP_FILE": str(tmp_path / "stop")}
    door = DoorProcess(port, env, tmp_path / "door.log")
    door.start()
    php = subprocess.Popen(
        ["php", "-n", "-d", f"sendmail_path={' '.join([*SENDMAIL, '-t', '-i'])}", "-r", PHP_LOOP],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: Message.objects.count() >= 2, timeout=120), "mail() reaches the door"
        door.stop()
        assert wait_until(lambda: len(waiting(spool_dir)) >= 3, timeout=120), "mail() goes on while the door is down"
        door.start()
        direct = Message.objects.count()
        assert wait_until(lambda: Message.objects.count() >= direct + 2, timeout=120), "and after the restart"
    finally:
        (tmp_path / "stop").touch()
        stdout, stderr = php.communicate(timeout=120)
    try:
        spooled = len(waiting(spool_dir))
        flushed = flush(env)
    finally:
        door.stop()

    sent, refused = (int(count) for count in stdout.split())
    assert refused == 0, stderr.decode()
    assert flushed.returncode == 0, flushed.stderr
    assert spooled >= 3
    subjects = set(Message.objects.values_list("subject", flat=True))
    assert subjects == {f"restart {number}" for number in range(1, sent + 1)}, "every mail() that said true is stored"
    assert Message.objects.count() == sent, "and only once"
    assert waiting(spool_dir) == []
    print(f"{sent} mail() calls, {spooled} spooled during the restart, {sent} stored, 0 lost")


class _ClosingOnQuit(SMTP):
    async def smtp_QUIT(self, arg):
        await self.push("421 4.3.2 Service shutting down, try again later")  # as a door that is stopping
        self.transport.close()


class _AcceptingDoor:
    def __init__(self):
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        self.accepted += 1
        return "250 2.0.0 Ok: queued as 1"


class _ClosingController(Controller):
    def factory(self):
        return _ClosingOnQuit(
            self.handler, auth_require_tls=False, authenticator=lambda *args: AuthResult(success=True)
        )


def test_a_421_after_the_250_is_no_reason_to_spool_the_message_again(hosting, port, spool_dir):
    """A stopping door answers the QUIT after an accepted message with 421: the message is stored,
    and spooling it would submit it twice."""
    env = environment(hosting, port, spool_dir)
    door = _AcceptingDoor()
    controller = _ClosingController(door, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        result = sendmail(["-t"], MESSAGE % 1, env)
    finally:
        controller.stop()

    assert result.returncode == 0, result.stderr
    assert door.accepted == 1
    assert waiting(spool_dir) == []
