"""The receivers of docs/WEBHOOKS.md, taken from the page as written, verify real deliveries:
the Python function in-process, the PHP receiver under `php -S`."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from mailqueue.models import WebhookAttempt, WebhookDelivery
from mailqueue.webhook_sending import webhooks_send_due
from mailqueue.webhooks import webhook_endpoint_create, webhook_test_send
from tests.factories import CustomerFactory
from tests.support import free_port, wait_until

PAGE = (Path(settings.BASE_DIR) / "docs" / "WEBHOOKS.md").read_text()


def _example(language: str) -> str:
    [code] = re.findall(rf"```{language}\n(.*?)```", PAGE, re.S)
    return code


def test_the_python_example_accepts_a_genuine_signature_and_refuses_the_rest():
    from mailqueue.webhook_sending import signature

    namespace: dict = {}
    exec(_example("python"), namespace)  # noqa: S102 (the documentation's own code)
    valid = namespace["portal_signature_valid"]
    body = b'{"id":"1","type":"test"}'
    now = int(time.time())
    assert valid("whsec_s3cret", signature("whsec_s3cret", now, body), body)
    assert not valid("whsec_other", signature("whsec_s3cret", now, body), body)
    assert not valid("whsec_s3cret", signature("whsec_s3cret", now, body), body + b" ")
    assert not valid("whsec_s3cret", signature("whsec_s3cret", now - 3600, body), body)  # a replay
    assert not valid("whsec_s3cret", "garbage", body)


@pytest.mark.skipif(shutil.which("php") is None, reason="needs php-cli (Debian package php-cli)")
@pytest.mark.django_db
def test_the_php_receiver_accepts_the_portals_deliveries_and_refuses_a_wrong_secret(tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    (tmp_path / "receiver.php").write_text(_example("php"))
    port = free_port()
    customer = CustomerFactory()
    endpoint, secret = webhook_endpoint_create(
        customer=customer, url=f"http://127.0.0.1:{port}/receiver.php", events=["message.sent"]
    )
    results = {}
    for label, given in (("right", secret), ("wrong", "whsec_not-the-secret")):
        server = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{port}", "-t", str(tmp_path)],
            env={"PORTAL_WEBHOOK_SECRET": given, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(
                lambda: (
                    subprocess.run(["php", "-r", f"exit(@fsockopen('127.0.0.1', {port}) ? 0 : 1);"]).returncode == 0
                ),
                timeout=10,
            )
            delivery = webhook_test_send(endpoint=endpoint)
            assert webhooks_send_due() == 1
            results[label] = WebhookAttempt.objects.get(delivery=delivery).status_code
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert results == {"right": 204, "wrong": 400}
    assert WebhookDelivery.objects.count() == 2
