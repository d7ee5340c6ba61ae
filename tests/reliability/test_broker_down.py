"""The broker (Redis) goes down while customers act and scripts submit (SPEC §3, §4.1, §4.3).

The database is the source of truth: with Redis stopped, every transition and every submission
still commits and answers normally (publishing after commit is best effort). Once Redis is back,
a real worker and the periodic sweeps deliver what was queued and finish what was purged.

Runs on PostgreSQL + Redis only, against a private redis-server started (and stopped) here, so
the shared Redis of the machine is never touched.
"""

import collections
import smtplib
import socket
import subprocess

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from kombu import pools as kombu_pools

from mailqueue import tasks
from mailqueue.blocking import mail_service_auto_block, mail_service_block, mail_service_unblock
from mailqueue.models import Action, DailyCounter, Event, MailService, Message, MessageStatus, State
from mailqueue.purge import mail_service_purge_cancel, mail_service_purge_request
from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from mailqueue.state import Actor
from mailqueue.submission import message_accept
from portal.celery import app as celery_app
from tests.conftest import requires_postgres
from tests.factories import HostingFactory, MembershipFactory
from tests.mailqueue.test_delivery import LiveRelay
from tests.support import SubmissionDoor, free_port, wait_until

pytestmark = [
    requires_postgres,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)"),
    pytest.mark.django_db(transaction=True),
]


class PrivateRedis:
    """A redis-server of this test only (no persistence), on a port of its own; start/stop at will."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._ping, timeout=10), "private redis-server did not start"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
        assert not self._ping()


def broker_use(url: str) -> None:
    """Point the Celery app (producers and future workers) at `url`, dropping pooled connections."""
    if celery_app._pool is not None:
        celery_app.pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu keeps producer pools per broker URL process-wide: a closed one would be reused later.
    kombu_pools.reset()
    celery_app.conf.broker_url = url


@pytest.fixture
def private_redis(settings):
    """A private Redis used as broker and cache for the test; the shared one is restored after."""
    redis = PrivateRedis()
    original = celery_app.conf.broker_url
    redis.start()
    try:
        broker_use(redis.url)
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}}
        yield redis
    finally:
        redis.stop()
        broker_use(original)


def raw_message(message_id: str, to: str = "buyer@example.org") -> bytes:
    return (
        f"From: app@shop.example\r\nTo: {to}\r\nSubject: outage {message_id}\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello\r\n"
    ).encode()


def accept(hosting, message_id: str) -> Message:
    return message_accept(
        hosting=hosting, sender="app@shop.example", recipients=["buyer@example.org"], raw=raw_message(message_id)
    )


def state_of(hosting) -> str:
    return MailService.objects.values_list("state", flat=True).get(hosting=hosting)


def test_transitions_and_submissions_commit_with_the_broker_down_and_finish_once_it_is_back(
    private_redis, settings, _isolated_celery_queue
):
    settings.PURGE_GRACE_SECONDS = 0  # due at once: only the watchdog finishes purges requested in the outage
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    direct = HostingFactory()  # submissions through message_accept while active
    door_hosting = HostingFactory()  # submissions through the SMTP door
    unblocked = HostingFactory()  # blocked before the outage, unblocked during it
    purged = HostingFactory()  # blocked before, purge requested during the outage
    cancelled = HostingFactory()  # purge requested then cancelled during the outage: stays blocked
    auto = HostingFactory()  # blocked by the platform (abuse) during the outage
    membership = MembershipFactory()
    portal_hosting = HostingFactory(customer=membership.customer)  # a customer acting in the portal
    client = Client()
    client.force_login(membership.user)

    for hosting in (unblocked, purged, cancelled):
        mail_service_block(hosting=hosting, actor=Actor.api("before"))
    before = {
        hosting.pk: [accept(hosting, f"<before-{hosting.pk}-{n}@test>") for n in range(3)]
        for hosting in (unblocked, purged, cancelled)
    }
    assert {m.status for ms in before.values() for m in ms} == {MessageStatus.HELD}

    private_redis.stop()  # --- the broker is down from here on

    outage = collections.defaultdict(list)  # hosting pk -> Message-IDs accepted during the outage
    for n in range(3):
        message = accept(direct, f"<direct-{n}@test>")
        assert message.status == MessageStatus.QUEUED
        outage[direct.pk].append(message.message_id)

    handler = SubmissionHandler(throttle=AuthFailureThrottle(max_failures=5, window=60), db_threads=2)
    with (
        SubmissionDoor(addr="127.0.0.1:0", handler=handler) as door,
        smtplib.SMTP(door.host, door.port, timeout=20) as smtp,
    ):
        smtp.login(door_hosting.service_name, door_hosting.smtp_password)
        for n in range(3):
            message_id = f"<door-{n}@test>"
            smtp.mail("app@shop.example")
            smtp.rcpt("buyer@example.org")
            code, reply = smtp.data(raw_message(message_id))
            assert code == 250, reply
            outage[door_hosting.pk].append(message_id)

    assert mail_service_unblock(hosting=unblocked, actor=Actor.api("outage")).state == State.ACTIVE
    assert mail_service_purge_request(hosting=purged, actor=Actor.api("outage")).state == State.PURGING
    outage[purged.pk].append(accept(purged, "<purged-during@test>").message_id)  # held, then purged
    mail_service_purge_request(hosting=cancelled, actor=Actor.api("outage"))
    assert mail_service_purge_cancel(hosting=cancelled, actor=Actor.api("outage")).state == State.BLOCKED
    assert mail_service_auto_block(hosting=auto, reason="rate", detail="outage test").state == State.BLOCKED
    outage[auto.pk].append(accept(auto, "<auto-held@test>").message_id)

    def portal(slug: str) -> None:
        response = client.post(reverse("mailqueue:action", args=[portal_hosting.service_name, slug]), follow=True)
        assert response.status_code == 200
        assert "La requête a été envoyée avec succès." in response.content.decode()

    outage[portal_hosting.pk].append(accept(portal_hosting, "<portal-0@test>").message_id)
    portal("block")
    outage[portal_hosting.pk].append(accept(portal_hosting, "<portal-1@test>").message_id)
    portal("unblock")  # releases both: to be delivered once the broker is back
    portal("block")
    outage[portal_hosting.pk].append(accept(portal_hosting, "<portal-2@test>").message_id)
    portal("purge")
    portal("cancel-purge")
    portal("unblock")
    outage[portal_hosting.pk].append(accept(portal_hosting, "<portal-3@test>").message_id)

    # Everything committed while the broker was down, each transition with its Event.
    assert state_of(unblocked) == state_of(direct) == state_of(door_hosting) == State.ACTIVE
    assert state_of(purged) == State.PURGING
    assert state_of(cancelled) == State.BLOCKED
    assert state_of(auto) == State.BLOCKED
    assert state_of(portal_hosting) == State.ACTIVE
    portal_actions = list(Event.objects.filter(hosting=portal_hosting).order_by("id").values_list("action", flat=True))
    assert portal_actions == ["block", "unblock", "block", "purge", "cancel_purge", "unblock"]
    assert Event.objects.get(hosting=auto, action=Action.AUTO_BLOCK).reason == "rate"
    assert Message.objects.filter(hosting=door_hosting, status=MessageStatus.QUEUED).count() == 3

    # --- the broker comes back (empty: whatever was published before the outage is gone)
    private_redis.start()
    with LiveRelay() as relay:
        settings.SMTP_RELAY_URL = relay.url
        settings.SMTP_RELAY_TIMEOUT = 10
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
            queues=[_isolated_celery_queue],
        ):
            tasks.retries_sweep.delay()
            tasks.purge_watchdog.delay()
            tasks.delivery_run.delay()

            def settled() -> bool:
                busy = Message.objects.filter(
                    status__in=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.DEFERRED]
                )
                return not busy.exists() and state_of(purged) == State.ACTIVE

            assert wait_until(settled, timeout=30), list(Message.objects.values_list("message_id", "status"))

    # Nothing lost: each message ended as its service's state says, delivered once at most.
    expected_sent = {
        *outage[direct.pk],
        *outage[door_hosting.pk],
        *(m.message_id for m in before[unblocked.pk]),
        *outage[portal_hosting.pk],
    }
    copies = collections.Counter(relay.received_ids())
    assert set(copies) == expected_sent
    assert max(copies.values()) == 1
    assert set(Message.objects.filter(status=MessageStatus.SENT).values_list("message_id", flat=True)) == expected_sent
    held = Message.objects.filter(status=MessageStatus.HELD)
    assert sorted(held.values_list("message_id", flat=True)) == sorted(
        [*(m.message_id for m in before[cancelled.pk]), *outage[auto.pk]]
    )
    assert not Message.objects.filter(hosting=purged).exists()
    complete = Event.objects.get(hosting=purged, action=Action.COMPLETE_PURGE)
    assert complete.message_count == 4
    assert sum(DailyCounter.objects.filter(hosting=purged).values_list("purged", flat=True)) == 4
    for hosting in (direct, door_hosting, unblocked, portal_hosting):
        sent = Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count()
        assert sum(DailyCounter.objects.filter(hosting=hosting).values_list("sent", flat=True)) == sent
