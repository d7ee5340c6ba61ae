"""The examples of docs/API.md, curl and Python, run against a live server and succeed."""

import re
import subprocess
from pathlib import Path

import ovh
import pytest

from api.models import ApiToken, ConsumerKey
from api.services import api_credentials_create
from mailqueue.models import Event, MailService, Message, MessageStatus, WebhookEndpoint
from tests.api.test_webhooks import public_dns  # noqa: F401 (autouse: the examples' hooks.acme.example resolves)
from tests.browser.test_credential_validation import SCRIPT_MARKER
from tests.factories import HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
DOC_BASE = "http://127.0.0.1:8000/1.0"
DOC_SERVICE = "acme-shop.fr"


LOGOUT = "/auth/logout"
RETRY = "/retry"  # its examples retry what is deferred: delivery would make one, there is no relay here


def blocks(language: str) -> list[str]:
    """The examples in `language`, in the document's order; but the consumer-key script (it waits
    for a person: tests/browser/test_credential_validation.py runs it) and, last, the logouts
    (they revoke the credentials every other example uses)."""
    text = DOC.read_text()
    before, scripted = text.split(SCRIPT_MARKER, 1)
    text = before + scripted.split("```", 2)[2]
    found = re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [block for block in found if LOGOUT not in block] + [block for block in found if LOGOUT in block]


@pytest.fixture
def live_credentials(live_server):
    hosting = HostingFactory(service_name=DOC_SERVICE)
    return hosting, api_credentials_create(customer=hosting.customer), f"{live_server.url}/1.0"


def test_every_endpoint_has_a_curl_and_a_python_example():
    text = DOC.read_text()
    paths = ["/auth/time", "/hosting/web", "/request", "/bounces", "/volumes", "/messages", "/events", RETRY]
    paths += ["/messages/export", "/bounces/export", "/me/webhooks", "/rotateSecret", "/test", "/deliveries"]
    paths += ["/suppressions"]
    for path in [*paths, "/auth/credential", "/auth/currentCredential", LOGOUT]:
        assert path in "".join(blocks("bash")), path
    for path in [*paths, "/auth/currentCredential", LOGOUT]:
        assert path in "".join(blocks("python")), path
    assert "new_consumer_key_request()" in "".join(blocks("python"))  # the client's POST /auth/credential
    for phrase in ("SHA-256", "Fernet", "recompute"):
        assert phrase in text


def deferred_for(script: str, hosting) -> Message | None:
    return MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED) if RETRY in script else None


def test_curl_examples_succeed(live_credentials, tmp_path):
    hosting, credentials, base = live_credentials
    scripts = [script.replace(DOC_BASE, base).replace("your-token", credentials.token) for script in blocks("bash")]
    assert len(scripts) >= 12
    prelude = (
        f"set -euo pipefail\nBASE={base}\nTOKEN={credentials.token}\nSERVICE={DOC_SERVICE}\n"
        f"APPLICATION_KEY={credentials.application_key}\n"
    )
    deferred = []
    for script in scripts:
        deferred.append(deferred_for(script, hosting))
        result = subprocess.run(
            ["bash", "-c", prelude + script], capture_output=True, text=True, timeout=30, cwd=tmp_path
        )
        assert result.returncode == 0, (script, result.stdout, result.stderr)
    [retried] = [message for message in deferred if message]
    assert Message.objects.get(pk=retried.pk).status == MessageStatus.QUEUED
    assert not Message.objects.filter(subject="Oops").exists()  # submitted, then deleted
    for export, header in (("messages.csv", "received,message_id"), ("errors.csv", "date,recipient")):
        assert (tmp_path / export).read_text(encoding="utf-8-sig").startswith(header)
    assert not WebhookEndpoint.objects.exists()  # created, changed, tested, rotated, then deleted
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.report_recipient) == ("active", "ops@acme.example")
    assert Message.objects.filter(hosting=hosting, subject="Your order").count() == 1
    assert {"block", "unblock", "change_recipient"} <= set(Event.objects.values_list("action", flat=True))
    assert ConsumerKey.objects.filter(status="pendingValidation").count() == 1  # the example's request
    assert ApiToken.objects.get().revoked_at is not None  # the last example logged out


def test_python_examples_succeed(live_credentials, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the export example writes its file
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
    deferred = []
    for script in scripts:
        for placeholder, value in substitutions.items():
            script = script.replace(placeholder, value)
        deferred.append(deferred_for(script, hosting))
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
        ("delete_messages", "api"),
        ("retry_messages", "api"),
    ]
    [retried] = [message for message in deferred if message]
    assert namespace["retried"] == {**namespace["retried"], "id": retried.pk, "status": "queued"}
    assert not Message.objects.filter(pk=namespace["mistake"]["id"]).exists()
    assert (tmp_path / "messages.csv").read_text(encoding="utf-8-sig").startswith("received,message_id")
    assert namespace["errors_csv"].removeprefix("\ufeff").startswith("date,recipient")
    assert namespace["hook"]["secret"].startswith("whsec_") and namespace["secret"] != namespace["hook"]["secret"]
    assert namespace["test"]["type"] == "test"
    assert not WebhookEndpoint.objects.exists()  # the last webhook example deleted it
    # the error example is refused (409): nothing changed
    assert MailService.objects.get(hosting=hosting).state == "active"
    assert namespace["credential"]["rules"] == [{"method": "*", "path": "/*"}]
    assert namespace["validation"]["state"] == "pendingValidation"
    assert ConsumerKey.objects.filter(status="pendingValidation").count() == 1
    # the logout example ran last: the credentials' consumer key is revoked, its token is not
    assert ConsumerKey.objects.get(application__application_key=credentials.application_key, status="revoked")
    assert ApiToken.objects.get().revoked_at is None
