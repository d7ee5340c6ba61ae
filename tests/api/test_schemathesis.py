"""Schemathesis against the served schema of a live server: no server error, responses as documented."""

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from api.services import api_credentials_create
from mailqueue.models import MessageStatus, Suppression, WebhookEndpoint
from tests.factories import (
    DeliveryErrorFactory,
    EventFactory,
    HostingFactory,
    MessageFactory,
    WebhookAttemptFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))


def test_served_schema_holds(live_server, tmp_path):
    hosting = HostingFactory(service_name="fuzzed-shop.example")
    MessageFactory(hosting=hosting)
    deferred = MessageFactory(hosting=hosting, status=MessageStatus.DEFERRED)
    endpoint = WebhookEndpointFactory(customer=hosting.customer)
    WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=endpoint), status_code=None, reply="timed out")
    DeliveryErrorFactory(hosting=hosting)
    EventFactory(hosting=hosting)
    Suppression.objects.create(
        hosting=hosting, address="gone+news@example.org", expires_at=timezone.now() + datetime.timedelta(days=90)
    )
    credentials = api_credentials_create(customer=hosting.customer)
    config = tmp_path / "schemathesis.toml"
    # Most cases aim at the caller's own hosting, message and webhook endpoint; other names and ids
    # are covered by the tenancy tests.
    config.write_text(
        f'[parameters]\nservice_name = "{hosting.service_name}"\n'
        f'[[operations]]\ninclude-path-regex = "/messages/[{{]id"\nparameters = {{ id = {deferred.pk} }}\n'
        f'[[operations]]\ninclude-path-regex = "/me/webhooks/[{{]id"\nparameters = {{ id = {endpoint.pk} }}\n'
    )
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{live_server.url}/1.0/schema/",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--header",
            f"Authorization: Bearer {credentials.token}",
            # Logging out would revoke the token every other operation is exercised with (tested apart).
            "--exclude-path",
            "/1.0/auth/logout",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "8",
            "--workers",
            "1",
            "--seed",
            "20240601",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "27 selected / 28 total" in result.stdout  # every documented operation but the logout was exercised
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()  # its DELETE reached the caller's endpoint
