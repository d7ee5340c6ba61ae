"""Secrets are never stored nor logged in clear, and none is committed to the repository."""

import logging
import re
import smtplib
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from tests.factories import CustomerFactory, HostingFactory
from tests.support import SubmissionDoor

ROOT = Path(__file__).resolve().parents[2]


def _database_dump() -> str:
    """Every text and binary column of every table of the project's apps, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith(("hosting_", "mailqueue_", "reports_", "api_", "auth_user")):
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


@pytest.mark.django_db(transaction=True)
def test_smtp_password_is_neither_stored_nor_logged(caplog):
    caplog.set_level(logging.DEBUG)
    hosting = HostingFactory()
    password = hosting.smtp_password
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=100, window=60), db_threads=1)
    with SubmissionDoor(addr="127.0.0.1:0", handler=handler) as door:
        with smtplib.SMTP(door.host, door.port, timeout=10) as client:
            client.login(hosting.service_name, password)  # accepted
        with smtplib.SMTP(door.host, door.port, timeout=10) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(hosting.service_name, password + "-wrong")  # refused, and logged as such

    assert any("refused" in record.getMessage() for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert password not in logged
    assert password not in _database_dump()


@pytest.mark.django_db
def test_provisioned_secrets_are_neither_stored_nor_logged(caplog):
    caplog.set_level(logging.DEBUG)
    customer = CustomerFactory(slug="acme-secrets")
    out = StringIO()
    call_command("provision_hosting", "secrets.example", "--customer", customer.slug, stdout=out)
    call_command("create_api_credentials", "--customer", customer.slug, stdout=out)
    printed = dict(line.split("=", 1) for line in out.getvalue().split())
    secrets = [printed[key] for key in ("smtp_password", "application_secret", "consumer_key", "token")]

    stored = _database_dump()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert len(secret) >= 24
        assert secret not in stored
        assert secret not in logged


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # cloud access keys
    re.compile(r"(?i)(secret_key|password|token)\s*[=:]\s*['\"][A-Za-z0-9_\-]{32,}['\"]"),
]


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "portal/settings.py" in tracked
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".mo", ".ico"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{name}: {pattern.pattern}" for pattern in SECRET_PATTERNS if pattern.search(text)]
    assert offenders == []
    assert not any(name == ".env" or name.endswith("/.env") for name in tracked)
