"""`manage.py sendmail` (SPEC §4.1) run as scripts run it, against a live SMTP door."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from mailqueue.models import Message, MessageStatus
from mailqueue.smtpd import SubmissionHandler
from tests.factories import HostingFactory
from tests.support import SubmissionDoor

pytestmark = pytest.mark.django_db(transaction=True)

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
SENDMAIL = [sys.executable, str(MANAGE), "sendmail"]


@pytest.fixture
def door():
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=2)) as running:
        yield running


@pytest.fixture
def hosting():
    return HostingFactory(service_name="acme-shop.fr")


def sendmail_url(door, hosting, password=None) -> str:
    user, secret = quote(hosting.service_name, safe=""), quote(password or hosting.smtp_password, safe="")
    return f"smtp://{user}:{secret}@{door.host}:{door.port}"


def sendmail_env(url: str | None) -> dict:
    """The environment of the test process, with the test database and PORTAL_SENDMAIL_URL."""
    env = {key: value for key, value in os.environ.items() if key != "PORTAL_SENDMAIL_URL"}
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{settings['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"
        )
    if url is not None:
        env["PORTAL_SENDMAIL_URL"] = url
    return env


def run(args, message: bytes, url: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SENDMAIL, *args], input=message, env=sendmail_env(url), capture_output=True, timeout=60, check=False
    )


MESSAGE = (
    b"From: Shop <shop@acme-shop.fr>\n"
    b"To: Client <client@example.org>, other@example.org\n"
    b"Cc: boss@example.org\n"
    b"Bcc: secret@example.org,\n"
    b"  hidden@example.org\n"
    b"Subject: Votre commande\n"
    b"\n"
    b"Merci.\n"
)


def stored() -> Message:
    return Message.objects.get()


def test_t_takes_recipients_from_to_cc_bcc_and_removes_bcc(door, hosting):
    result = run(["-t", "-i"], MESSAGE, sendmail_url(door, hosting))

    assert result.returncode == 0, result.stderr
    message = stored()
    assert message.hosting == hosting
    assert message.sender == "shop@acme-shop.fr"
    assert [r["address"] for r in message.recipients] == [
        "client@example.org",
        "other@example.org",
        "boss@example.org",
        "secret@example.org",
        "hidden@example.org",
    ]
    assert message.subject == "Votre commande"
    assert message.status == MessageStatus.QUEUED
    raw = bytes(message.raw)
    assert b"Bcc" not in raw and b"hidden@example.org" not in raw and b"secret@" not in raw
    assert b"Cc: boss@example.org\r\n" in raw
    assert raw.endswith(b"\r\n\r\nMerci.\r\n"), "line ends are CRLF on the wire"


def test_explicit_recipients_and_f_sender(door, hosting):
    result = run(
        ["-f", "bounce@acme-shop.fr", "--", "a@example.org", "b@example.org"], MESSAGE, sendmail_url(door, hosting)
    )

    assert result.returncode == 0, result.stderr
    message = stored()
    assert message.sender == "bounce@acme-shop.fr"
    assert [r["address"] for r in message.recipients] == ["a@example.org", "b@example.org"]
    assert b"Bcc: secret@example.org" in bytes(message.raw), "without -t the message is not changed"


def test_without_from_header_the_sender_is_www_data_of_the_service(door, hosting):
    result = run(["-F", "Le site", "client@example.org"], b"Subject: hi\n\nbody\n", sendmail_url(door, hosting))

    assert result.returncode == 0, result.stderr
    message = stored()
    assert message.sender == "www-data@acme-shop.fr"
    assert b"From: Le site <www-data@acme-shop.fr>\r\nDate: " in bytes(message.raw)


def test_a_lone_dot_ends_the_message_unless_i(door, hosting):
    body = b"Subject: dots\n\nline 1\n.\nline 2\n"
    assert run(["client@example.org"], body, sendmail_url(door, hosting)).returncode == 0
    assert run(["-oi", "client@example.org"], body, sendmail_url(door, hosting)).returncode == 0

    cut, whole = (bytes(m.raw) for m in Message.objects.order_by("id"))
    assert b"line 1" in cut and b"line 2" not in cut
    assert whole.endswith(b"line 1\r\n.\r\nline 2\r\n")


def test_wrong_password_exits_77(door, hosting):
    result = run(["-t", "-i"], MESSAGE, sendmail_url(door, hosting, password="wrong"))

    assert result.returncode == 77
    assert result.stderr.decode().startswith("sendmail: authentication failed: 535")
    assert not Message.objects.exists()


def test_too_big_or_bad_recipient_exits_65(door, hosting, settings):
    big = b"Subject: big\n\n" + (b"x" * 998 + b"\n") * (settings.MAX_MESSAGE_BYTES // 999 + 1)
    too_big = run(["client@example.org"], big, sendmail_url(door, hosting))
    bad_recipient = run(["client@example.org", "not-an-address"], MESSAGE, sendmail_url(door, hosting))

    assert too_big.returncode == 65
    assert b"552" in too_big.stderr
    assert bad_recipient.returncode == 65
    assert bad_recipient.stderr.decode().startswith("sendmail: recipient <not-an-address> refused: 553 5.1.3")
    assert not Message.objects.exists(), "nothing is sent when one recipient is refused"


def test_missing_or_invalid_url_exits_78(hosting):
    assert run(["-t"], MESSAGE, None).returncode == 78
    invalid = run(["-t"], MESSAGE, "http://somewhere")
    assert invalid.returncode == 78
    assert invalid.stderr.startswith(b"sendmail: PORTAL_SENDMAIL_URL")


def test_no_recipient_or_bad_flag_exits_64(door, hosting):
    assert run([], MESSAGE, sendmail_url(door, hosting)).returncode == 64
    assert run(["-Z"], MESSAGE, sendmail_url(door, hosting)).returncode == 64
    assert not Message.objects.exists()


@pytest.mark.skipif(not shutil.which("php"), reason="php is not installed (apt-get install php-cli)")
def test_php_mail_lands_in_the_queue(door, hosting):
    sendmail_path = " ".join([*SENDMAIL, "-t", "-i"])
    script = (
        'var_export(mail("client@example.org, other@example.org", "Commande n°42 expédiée", "Bonjour,\\nMerci.",'
        ' "From: Boutique <shop@acme-shop.fr>\\r\\nCc: boss@example.org", "-fbounce@acme-shop.fr"));'
    )
    result = subprocess.run(
        ["php", "-n", "-d", f"sendmail_path={sendmail_path}", "-r", script],
        env=sendmail_env(sendmail_url(door, hosting)),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.stdout == b"true", result.stdout + result.stderr
    message = stored()
    assert message.sender == "bounce@acme-shop.fr"
    assert [r["address"] for r in message.recipients] == ["client@example.org", "other@example.org", "boss@example.org"]
    assert message.subject == "Commande n°42 expédiée"
