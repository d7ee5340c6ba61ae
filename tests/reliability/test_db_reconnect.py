"""PostgreSQL connections dropped under a working SMTP door and a working Celery worker (SPEC §4).

The server ends the backends (pg_terminate_backend, as a failover or a restarted pooler would)
between and during their work. With CONN_HEALTH_CHECKS on, each thread reconnects on its next
unit of work. A message being submitted when its connection dies is either accepted (250, stored
once) or refused with a temporary error (4xx, stored nowhere), never half stored; later
submissions succeed and everything accepted is delivered.
"""

import collections
import smtplib
import threading
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, connection

from hosting.models import Plan
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import Message, MessageStatus
from mailqueue.retries import claims_recover
from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from portal.celery import app as celery_app
from tests.conftest import requires_postgres
from tests.factories import HostingFactory
from tests.mailqueue.test_delivery import LiveRelay
from tests.support import SubmissionDoor, wait_until

pytestmark = [requires_postgres, pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 3
KILL_SECONDS = 6


def raw_message(message_id: str) -> bytes:
    return (
        f"From: app@shop.example\r\nTo: buyer@example.org\r\nSubject: reconnect {message_id}\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello\r\n"
    ).encode()


def backends_terminate(*, spare: set[int]) -> int:
    """End every backend of the test database but `spare` (and the caller's); return how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND NOT (pid = ANY(%s))",
            [sorted(spare)],
        )
        return cursor.fetchone()[0]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def submit(door, hosting, message_id: str) -> tuple[str, int, str]:
    """One message over a fresh session: (phase, code, reply) of DATA, or of the AUTH that failed."""
    with smtplib.SMTP(door.host, door.port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        smtp.user, smtp.password = hosting.service_name, hosting.smtp_password
        try:
            smtp.auth("PLAIN", smtp.auth_plain)
        except smtplib.SMTPResponseException as error:
            return "auth", error.smtp_code, error.smtp_error.decode(errors="replace")
        smtp.mail("app@shop.example")
        smtp.rcpt("buyer@example.org")
        try:
            code, reply = smtp.data(raw_message(message_id))
        except smtplib.SMTPResponseException as error:
            code, reply = error.smtp_code, error.smtp_error
        return "data", code, reply.decode(errors="replace")


def stored(message_id: str) -> int:
    return Message.objects.filter(message_id=message_id).count()


def test_door_and_worker_reconnect_after_their_connections_are_terminated(settings, _isolated_celery_queue):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hosting = HostingFactory(plan=Plan.PERFORMANCE)  # 2000 an hour: the storm stays under the limit
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=1000, window=60), db_threads=2)
    replies: dict[str, tuple[int, str]] = {}
    with LiveRelay() as relay:
        settings.SMTP_RELAY_URL = relay.url
        settings.SMTP_RELAY_TIMEOUT = 10
        with (
            SubmissionDoor(addr="127.0.0.1:0", handler=handler) as door,
            start_worker(
                celery_app,
                pool="threads",
                concurrency=2,
                perform_ping_check=False,
                loglevel="WARNING",
                shutdown_timeout=30,
                queues=[_isolated_celery_queue],
            ),
        ):

            def delivered(message_id: str) -> bool:
                return Message.objects.filter(message_id=message_id, status=MessageStatus.SENT).exists()

            main_pid = backend_pid()  # this thread's, once the worker started (its start closes ours)
            # 1. Warm up: the door and the worker work once.
            replies["<warm@test>"] = submit(door, hosting, "<warm@test>")
            assert replies["<warm@test>"][1] == 250
            assert wait_until(lambda: delivered("<warm@test>"), timeout=20)

            # 2. The door's threads keep their connections between messages: dropped there, the next
            # message reconnects (health check) and is accepted.
            assert backends_terminate(spare={main_pid}) >= 1
            replies["<after-drop@test>"] = submit(door, hosting, "<after-drop@test>")
            assert replies["<after-drop@test>"][1] == 250
            assert wait_until(lambda: delivered("<after-drop@test>"), timeout=20)

            # 3. The worker's connection dropped in the middle of a batch (the relay holds its DATA):
            # the batch's result is lost with it, the worker's next task reconnects and delivers.
            relay.handler.hold_data_after = relay.handler.data_seen
            replies["<mid-batch@test>"] = submit(door, hosting, "<mid-batch@test>")
            assert replies["<mid-batch@test>"][1] == 250
            assert relay.handler.waiting.wait(20)
            assert backends_terminate(spare={main_pid}) >= 1  # the worker's, mid-batch
            relay.handler.hold_data_after = None
            relay.handler.release.set()
            replies["<after-worker-drop@test>"] = submit(door, hosting, "<after-worker-drop@test>")
            assert replies["<after-worker-drop@test>"][1] == 250
            assert wait_until(lambda: delivered("<after-worker-drop@test>"), timeout=20)

            # 4. Dropped again and again while clients submit and the worker delivers.
            stop = threading.Event()
            kills = []

            def killer():
                try:
                    while not stop.is_set():
                        kills.append(backends_terminate(spare={main_pid}))
                        time.sleep(0.15)
                finally:
                    connection.close()

            def client(index: int):
                n = 0
                while not stop.is_set():
                    message_id = f"<storm-{index}-{n}@test>"
                    replies[message_id] = submit(door, hosting, message_id)
                    n += 1

            threads = [threading.Thread(target=killer)] + [
                threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(KILL_SECONDS)
            stop.set()
            for thread in threads:
                thread.join(30)
            assert not any(thread.is_alive() for thread in threads)
            assert sum(kills) > 10, kills  # the storm did hit live connections

            # 5. A later submission succeeds; the worker delivers what was accepted.
            replies["<later@test>"] = submit(door, hosting, "<later@test>")
            assert replies["<later@test>"][1] == 250
            assert wait_until(lambda: delivered("<later@test>"), timeout=20)
            accepted = {message_id for message_id, (_phase, code, _reply) in replies.items() if code == 250}

            def idle() -> bool:
                return not Message.objects.filter(message_id__in=accepted, status=MessageStatus.QUEUED).exists()

            wait_until(idle, timeout=20)
        # Batches whose result was lost with their connection: their claims are recovered (the worker is stopped).
        recovered = claims_recover(older_than=0)
        while delivery_run_batch().claimed:
            pass

    data_codes = collections.Counter(code for phase, code, _reply in replies.values() if phase == "data")
    assert set(data_codes) <= {250, 421, 451}, data_codes  # DATA: accepted, or a temporary refusal
    assert data_codes[250] >= 5 and data_codes[451] >= 1, data_codes  # both outcomes were exercised
    for message_id, (phase, code, reply) in replies.items():
        assert stored(message_id) == (1 if code == 250 else 0), (message_id, phase, code, reply)
    assert set(Message.objects.filter(hosting=hosting).values_list("message_id", flat=True)) == accepted
    assert set(Message.objects.filter(hosting=hosting).values_list("status", flat=True)) == {MessageStatus.SENT}
    copies = collections.Counter(relay.received_ids())
    assert set(copies) == accepted
    # A second copy only for a batch whose result was lost with its connection (recovered claims).
    assert sum(count - 1 for count in copies.values()) <= recovered


def test_auth_during_a_database_failure_is_a_temporary_refusal(settings, monkeypatch):
    """The credentials lookup fails as a terminated connection makes it fail mid-query."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hosting = HostingFactory()

    def connection_lost(**_kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("mailqueue.smtpd.hosting_by_smtp_credentials", connection_lost)
    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=1000, window=60), db_threads=1)
    with SubmissionDoor(addr="127.0.0.1:0", handler=handler) as door:
        phase, code, reply = submit(door, hosting, "<auth-failure@test>")

    assert (phase, code // 100) == ("auth", 4), (code, reply)
    assert "OperationalError" not in reply
