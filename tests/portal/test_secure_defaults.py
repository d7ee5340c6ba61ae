"""Secure by default: with DEBUG=false, HTTPS is on unless set to false explicitly.

Before, a production start that forgot `HTTPS=true` served sessions in clear cookies, without
HSTS and without redirecting to TLS, and `check --deploy` needed four settings more than the
three a deployment must choose (DEBUG, SECRET_KEY, ALLOWED_HOSTS). `make run` (DEBUG=true) and
the test suite (pyproject's `HTTPS=false`) keep plain HTTP.
"""

import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from tests.support import bare_environment, http_get, web_server


def test_check_deploy_passes_with_only_debug_secret_key_and_allowed_hosts():
    env = bare_environment(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="portal.example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_production_without_https_setting_redirects_to_tls_with_secure_cookies_and_hsts(tmp_path):
    with web_server(log=tmp_path / "web.log", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50)) as port:
        plain = http_get(port, "/accounts/login/")
        through_tls_proxy = http_get(port, "/accounts/login/", **{"X-Forwarded-Proto": "https"})
        health = http_get(port, "/healthz")

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
def test_plain_http_when_debug_or_https_false(environment, tmp_path):
    with web_server(log=tmp_path / "web.log", SECRET_KEY=secrets.token_urlsafe(50), **environment) as port:
        page = http_get(port, "/accounts/login/")

    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") is None
    assert "Secure" not in page.getheader("Set-Cookie")
