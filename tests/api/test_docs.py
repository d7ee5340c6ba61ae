"""The examples of docs/API.md, curl and Python, run against a live server and succeed."""

import re
import subprocess
from pathlib import Path

import ovh
import pytest

from api.services import api_credentials_create
from mailqueue.models import Event, MailService, Message
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
DOC_BASE = "http://127.0.0.1:8000/1.0"
DOC_SERVICE = "acme-shop.fr"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.fixture
def live_credentials(live_server):
    hosting = HostingFactory(service_name=DOC_SERVICE)
    return hosting, api_credentials_create(customer=hosting.customer), f"{live_server.url}/1.0"


def test_every_endpoint_has_a_curl_and_a_python_example():
    text = DOC.read_text()
    for path in ("/auth/time", "/hosting/web", "/request", "/bounces", "/volumes", "/messages", "/events"):
        assert path in "".join(blocks("bash")), path
        assert path in "".join(blocks("python")), path
    for phrase in ("SHA-256", "Fernet", "recompute"):
        assert phrase in text


def test_curl_examples_succeed(live_credentials):
    hosting, credentials, base = live_credentials
    scripts = [script.replace(DOC_BASE, base).replace("your-token", credentials.token) for script in blocks("bash")]
    assert len(scripts) >= 12
    prelude = f"set -euo pipefail\nBASE={base}\nTOKEN={credentials.token}\nSERVICE={DOC_SERVICE}\n"
    for script in scripts:
        result = subprocess.run(["bash", "-c", prelude + script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (script, result.stdout, result.stderr)
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.report_recipient) == ("active", "ops@acme.example")
    assert Message.objects.filter(hosting=hosting, subject="Your order").count() == 1
    assert {"block", "unblock", "change_recipient"} <= set(Event.objects.values_list("action", flat=True))


def test_python_examples_succeed(live_credentials, monkeypatch):
    hosting, credentials, base = live_credentials
    monkeypatch.setattr(ovh.client, "ENDPOINTS", dict(ovh.client.ENDPOINTS))  # the examples register one
    substitutions = {
        DOC_BASE: base,
        '"APPLICATION_KEY"': repr(credentials.application_key),
        '"APPLICATION_SECRET"': repr(credentials.application_secret),
        '"CONSUMER_KEY"': repr(credentials.consumer_key),
    }
    scripts = blocks("python")
    assert len(scripts) >= 12
    namespace: dict = {}
    for script in scripts:
        for placeholder, value in substitutions.items():
            script = script.replace(placeholder, value)
        exec(compile(script, str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    assert namespace["names"] == [DOC_SERVICE]
    assert namespace["service"]["state"] == "ok"
    assert len(namespace["volumes"]) == 30
    assert namespace["accepted"]["status"] == "queued"
    actions = list(Event.objects.filter(hosting=hosting).order_by("id").values_list("action", "actor_kind"))
    assert actions == [
        ("change_recipient", "api"),
        ("block", "api"),
        ("purge", "api"),
        ("cancel_purge", "api"),
        ("unblock", "api"),
    ]
    # the last example is refused (409): nothing changed
    assert MailService.objects.get(hosting=hosting).state == "active"
