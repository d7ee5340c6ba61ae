"""Secure by default: with DEBUG=false, HTTPS is on unless set to false explicitly.

Before, a production start that forgot `HTTPS=true` served sessions in clear cookies, without
HSTS and without redirecting to TLS, and `check --deploy` needed four settings more than the
three a deployment must choose (DEBUG, SECRET_KEY, ALLOWED_HOSTS). `make run` (DEBUG=true) and
the test suite (pyproject's `HTTPS=false`) keep plain HTTP.
"""

import contextlib
import http.client
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, shared_database_url, wait_until

BASE_DIR = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def bare_environment(**settings: str) -> dict[str, str]:
    """Only what a deployment sets: no HTTPS, no .env (VAR_DIR keeps the run's files in var/)."""
    kept = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return kept | {"VAR_DIR": str(BASE_DIR / "var")} | settings


def test_check_deploy_passes_with_only_debug_secret_key_and_allowed_hosts():
    env = bare_environment(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="portal.example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@contextlib.contextmanager
def web_server(**settings: str):
    """The Procfile's gunicorn on a free port with exactly `settings` (and the test database)."""
    port = free_port()
    env = bare_environment(ALLOWED_HOSTS="127.0.0.1", DATABASE_URL=shared_database_url(), **settings)
    command = [str(GUNICORN), "portal.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: get(port, "/healthz") is not None, timeout=60), process.stderr
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def get(port: int, path: str, **headers: str) -> http.client.HTTPResponse | None:
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


@pytest.mark.django_db(transaction=True)
def test_production_without_https_setting_redirects_to_tls_with_secure_cookies_and_hsts():
    with web_server(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50)) as port:
        plain = get(port, "/accounts/login/")
        through_tls_proxy = get(port, "/accounts/login/", **{"X-Forwarded-Proto": "https"})
        health = get(port, "/healthz")

    assert plain.status == 301
    assert plain.getheader("Location") == f"https://127.0.0.1:{port}/accounts/login/"
    assert through_tls_proxy.status == 200
    assert through_tls_proxy.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
    assert "Secure" in through_tls_proxy.getheader("Set-Cookie")
    assert health.status in (200, 503), "probes and scrapers on the host speak plain HTTP: never redirected"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "environment", [{"DEBUG": "true"}, {"DEBUG": "false", "HTTPS": "false"}], ids=["make-run", "off"]
)
def test_plain_http_when_debug_or_https_false(environment):
    with web_server(SECRET_KEY=secrets.token_urlsafe(50), **environment) as port:
        page = get(port, "/accounts/login/")

    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") is None
    assert "Secure" not in page.getheader("Set-Cookie")
