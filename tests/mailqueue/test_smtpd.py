"""The SMTP door (SPEC §4.1), served for real on a free port, spoken to by real clients."""

import base64
import logging
import shutil
import smtplib
import ssl
import subprocess

import pytest

from mailqueue.blocking import mail_service_block
from mailqueue.models import Message, MessageStatus
from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from mailqueue.state import Actor
from tests.factories import HostingFactory
from tests.support import SubmissionDoor, as_submitted

pytestmark = pytest.mark.django_db(transaction=True)

MAX_FAILURES = 3


def raw_message(subject="Order confirmed", to="client@example.org", body="Thank you.") -> bytes:
    return (
        f"From: Shop <shop@example.net>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <test-1@example.net>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def door():
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=MAX_FAILURES, window=60), db_threads=2)
    with SubmissionDoor(addr="127.0.0.1:0", handler=handler) as running:
        yield running


@pytest.fixture
def hosting():
    return HostingFactory()


def connect(door, **kwargs) -> smtplib.SMTP:
    client = smtplib.SMTP(door.host, door.port, timeout=10, **kwargs)
    client.ehlo("client.example")
    return client


def authenticated(door, hosting) -> smtplib.SMTP:
    client = connect(door)
    client.login(hosting.service_name, hosting.smtp_password)
    return client


def test_authenticated_message_is_queued_with_its_envelope(door, hosting):
    with authenticated(door, hosting) as client:
        client.mail("shop@example.net")
        client.rcpt("client@example.org")
        client.rcpt("boss@example.org")
        code, reply = client.data(raw_message())

    message = Message.objects.get(hosting=hosting)
    assert (code, reply.decode()) == (250, f"2.0.0 Ok: queued as {message.pk}")
    assert message.sender == "shop@example.net"
    assert [r["address"] for r in message.recipients] == ["client@example.org", "boss@example.org"]
    assert message.subject == "Order confirmed"
    assert message.status == MessageStatus.QUEUED
    assert as_submitted(message.raw) == raw_message()


def test_several_messages_over_one_connection(door, hosting):
    with authenticated(door, hosting) as client:
        for n in range(3):
            refused = client.sendmail("shop@example.net", [f"user{n}@example.org"], raw_message(subject=f"n{n}"))
            assert refused == {}

    assert sorted(Message.objects.filter(hosting=hosting).values_list("subject", flat=True)) == ["n0", "n1", "n2"]


def test_blocked_service_holds_the_message(door, hosting):
    mail_service_block(hosting=hosting, actor=Actor.api("test"))

    with authenticated(door, hosting) as client:
        client.sendmail("shop@example.net", ["client@example.org"], raw_message())

    message = Message.objects.get(hosting=hosting)
    assert message.status == MessageStatus.HELD
    assert message.held_until is not None


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_accept_the_hosting_credentials(door, hosting, mechanism):
    with connect(door) as client:
        client.user, client.password = hosting.service_name, hosting.smtp_password
        authobject = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}[mechanism]
        assert client.auth(mechanism, authobject, initial_response_ok=False)[0] == 235
        assert client.sendmail("shop@example.net", ["client@example.org"], raw_message()) == {}
    assert Message.objects.filter(hosting=hosting).count() == 1


def test_auth_plain_with_initial_response(door, hosting):
    with connect(door) as client:
        assert auth_plain(client, hosting.service_name, hosting.smtp_password) == (
            235,
            b"2.7.0 Authentication successful",
        )


@pytest.mark.parametrize("who", ["wrong password", "unknown hosting", "other hosting's password"])
def test_wrong_credentials_are_refused_with_535(door, hosting, who, caplog):
    user, password = {
        "wrong password": (hosting.service_name, "not-the-password"),
        "unknown hosting": ("no-such-site.example", hosting.smtp_password),
        "other hosting's password": (hosting.service_name, HostingFactory().smtp_password),
    }[who]
    caplog.set_level(logging.WARNING, logger="mailqueue.smtpd")

    with connect(door) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login(user, password)

    assert (refused.value.smtp_code, refused.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    assert "127.0.0.1" in caplog.text
    assert password not in caplog.text


def test_mail_before_auth_is_refused_with_530(door, hosting):
    with connect(door) as client:
        assert client.mail("shop@example.net")[0] == 530
        assert client.rcpt("client@example.org")[0] == 530
    assert not Message.objects.exists()


def test_size_is_advertised_and_oversized_messages_refused_with_552(door, hosting, settings):
    line = b"x" * 998 + b"\r\n"
    too_big = b"Subject: big\r\n\r\n" + line * (settings.MAX_MESSAGE_BYTES // len(line) + 1)
    with authenticated(door, hosting) as client:
        assert client.esmtp_features["size"] == str(settings.MAX_MESSAGE_BYTES) == "10485760"
        # Announced with SIZE: refused at MAIL.
        assert client.mail("shop@example.net", [f"SIZE={len(too_big)}"])[0] == 552
        # Not announced: refused after DATA, and the session goes on.
        assert client.mail("shop@example.net")[0] == 250
        assert client.rcpt("client@example.org")[0] == 250
        assert client.data(too_big)[0] == 552
        assert client.sendmail("shop@example.net", ["client@example.org"], raw_message()) == {}
    assert Message.objects.filter(hosting=hosting).count() == 1


def test_bad_recipient_is_refused_with_553_and_the_others_kept(door, hosting):
    with authenticated(door, hosting) as client:
        client.mail("shop@example.net")
        assert client.rcpt("good@example.org")[0] == 250
        code, reply = client.rcpt("not-an-address")
        assert (code, reply[:5]) == (553, b"5.1.3")
        assert client.data(raw_message())[0] == 250
    assert [r["address"] for r in Message.objects.get().recipients] == ["good@example.org"]


def test_bad_sender_is_refused_with_553_5_1_7(door, hosting):
    with authenticated(door, hosting) as client:
        code, reply = client.mail("nobody@")
        assert (code, reply[:5]) == (553, b"5.1.7")


def test_envelope_errors_are_refused_with_5xx(door, hosting):
    with authenticated(door, hosting) as client:
        assert client.docmd("RCPT", "TO:<client@example.org>")[0] == 503  # no MAIL yet
        client.mail("shop@example.net")
        assert client.docmd("RCPT", "TO:")[0] == 501
        assert client.docmd("DATA")[0] == 503  # no recipient
    assert not Message.objects.exists()


def test_101st_recipient_is_refused_with_452(door, hosting):
    with authenticated(door, hosting) as client:
        client.mail("shop@example.net")
        for n in range(100):
            assert client.rcpt(f"user{n}@example.org")[0] == 250
        assert client.rcpt("user0@example.org")[0] == 250, "a repeated recipient does not count"
        assert client.rcpt("user100@example.org") == (452, b"4.5.3 Too many recipients")
        assert client.data(raw_message())[0] == 250
    assert Message.objects.get().recipient_count == 100


def auth_plain(client: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def test_failed_auth_is_throttled_per_client_address_and_user(door, hosting):
    client = connect(door)
    for _ in range(MAX_FAILURES):
        assert auth_plain(client, hosting.service_name, "wrong")[0] == 535

    # Even the right password is refused now, and the connection is closed.
    assert auth_plain(client, hosting.service_name, hosting.smtp_password) == (
        421,
        b"4.7.0 Too many authentication failures",
    )
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()
    with connect(door) as again:
        assert auth_plain(again, hosting.service_name, hosting.smtp_password)[0] == 421
        again.close()

    # Another client address is not affected.
    with connect(door, source_address=("127.0.0.2", 0)) as other:
        assert auth_plain(other, hosting.service_name, hosting.smtp_password)[0] == 235


@pytest.fixture
def default_door():
    """The door as `runsmtpd` builds it, with the settings' limits (5 per address and user)."""
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=2)) as running:
        yield running


def test_one_tenants_failed_logins_do_not_lock_out_another_tenant_on_the_same_address(default_door, settings):
    """Shared hosting: every script of a web server comes from one address (here 127.0.0.1)."""
    careless, neighbour = HostingFactory(), HostingFactory()
    assert settings.SMTP_AUTH_MAX_FAILURES == 5
    with connect(default_door) as client:
        for _ in range(5):
            assert auth_plain(client, careless.service_name, "an-old-password")[0] == 535
        # The careless tenant's pair is locked, even with its right password…
        assert auth_plain(client, careless.service_name, careless.smtp_password) == (
            421,
            b"4.7.0 Too many authentication failures",
        )
    # …while the neighbour's valid credentials, from the same address, keep working.
    with authenticated(default_door, neighbour) as client:
        assert client.sendmail("shop@example.net", ["client@example.org"], raw_message()) == {}
    assert Message.objects.filter(hosting=neighbour).count() == 1
    with connect(default_door) as client:
        assert auth_plain(client, careless.service_name.upper(), careless.smtp_password)[0] == 421, "case-blind"
        client.close()


def test_failures_across_user_names_lock_the_address_at_its_own_cap(hosting):
    throttle = AuthFailureThrottle(max_failures=3, max_failures_per_address=6, window=60)
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(throttle=throttle, db_threads=1)) as door:
        with connect(door) as client:
            for n in range(6):
                assert auth_plain(client, f"guess-{n}.example", "wrong")[0] == 535
            assert auth_plain(client, hosting.service_name, hosting.smtp_password)[0] == 421
            client.close()
        with connect(door, source_address=("127.0.0.2", 0)) as other:
            assert auth_plain(other, hosting.service_name, hosting.smtp_password)[0] == 235


def test_database_error_is_a_temporary_451_and_stores_nothing(door, hosting):
    with authenticated(door, hosting) as client:
        client.mail("shop@example.net")
        client.rcpt("client@example.org")
        hosting.delete()  # gone between AUTH and DATA: the insert fails in the database
        code, reply = client.data(raw_message())
    assert code == 451
    assert reply.startswith(b"4.3.0 ")
    assert not Message.objects.exists()


def test_accepted_message_is_logged_with_hosting_and_id(door, hosting, caplog):
    caplog.set_level(logging.INFO, logger="mailqueue.smtpd")
    with authenticated(door, hosting) as client:
        client.sendmail("shop@example.net", ["client@example.org"], raw_message())
    message = Message.objects.get()
    assert f"accepted for {hosting.service_name}: id {message.pk}" in caplog.text


@pytest.fixture
def tls_door(tmp_path, settings):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
            *["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        ],
        check=True,
        capture_output=True,
    )
    settings.SMTP_TLS_CERT, settings.SMTP_TLS_KEY = str(cert), str(key)
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=1)) as running:
        yield running


def test_with_a_certificate_auth_requires_starttls(tls_door, hosting):
    with connect(tls_door) as client:
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN")[0] == 538
        client.starttls(context=ssl._create_unverified_context())  # noqa: S323 - self-signed test certificate
        client.ehlo("client.example")
        client.login(hosting.service_name, hosting.smtp_password)
        assert client.sendmail("shop@example.net", ["client@example.org"], raw_message()) == {}
    assert Message.objects.filter(hosting=hosting).count() == 1


swaks = pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed (apt-get install swaks)")


def run_swaks(door, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["swaks", "--server", door.host, "--port", str(door.port), "--helo", "client.example", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@swaks
def test_swaks_submission_is_accepted(door, hosting):
    result = run_swaks(
        door,
        *["--auth", "LOGIN", "--auth-user", hosting.service_name, "--auth-password", hosting.smtp_password],
        *["--from", "shop@example.net", "--to", "client@example.org,boss@example.org"],
        *["--header", "Subject: Sent by swaks"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    message = Message.objects.get(hosting=hosting)
    assert f"250 2.0.0 Ok: queued as {message.pk}" in result.stdout
    assert message.subject == "Sent by swaks"
    assert [r["address"] for r in message.recipients] == ["client@example.org", "boss@example.org"]


@swaks
def test_swaks_with_a_wrong_password_gets_535(door, hosting):
    result = run_swaks(
        door,
        *["--auth", "PLAIN", "--auth-user", hosting.service_name, "--auth-password", "wrong"],
        *["--from", "shop@example.net", "--to", "client@example.org"],
    )
    assert result.returncode != 0
    assert "535 5.7.8 Authentication credentials invalid" in result.stdout
    assert not Message.objects.exists()


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_aiosmtpd_logs_each_command_masked_only_when_its_log_takes_them(door, hosting, caplog, monkeypatch, level):
    """Its command lines are cleaned for the log (AUTH masked) only when "mail.log" logs them."""
    import aiosmtpd.smtp

    masked = []
    sanitize = aiosmtpd.smtp.sanitize

    def recorded(text: bytes) -> bytes:
        masked.append(text)
        return sanitize(text)

    monkeypatch.setattr(aiosmtpd.smtp, "sanitize", recorded)
    caplog.set_level(level, logger="mail.log")
    client = connect(door)
    client.login(hosting.service_name, hosting.smtp_password)
    client.quit()

    lines = [record.getMessage() for record in caplog.records if record.name == "mail.log"]
    secret = base64.b64encode(f"\0{hosting.service_name}\0{hosting.smtp_password}".encode()).decode()
    if level == logging.INFO:
        assert any("AUTH PLAIN ********" in line for line in lines)
        assert masked and not any(secret in line for line in lines)
    else:
        assert masked == [] and lines == []
