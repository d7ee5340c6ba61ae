"""Shared fixtures: real database, real broker (filesystem or Redis), real worker."""

import fcntl
import os
import sys
import threading
import uuid
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.db import connection

from mailqueue import dispatch
from mailqueue.dispatch import DELIVERY_KICK_KEY
from portal import password_reset
from portal.celery import app as celery_app
from tests.factories import CustomerFactory, HostingFactory, MembershipFactory, UserFactory


def _serialise_test_sessions() -> None:
    """Test sessions on one machine share the test database: let them take turns."""
    mode = "postgres" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    lock_path = Path(__file__).resolve().parent.parent / "var" / f"pytest-{mode}.lock"
    lock_path.parent.mkdir(exist_ok=True)
    handle = lock_path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting for another test session using the {mode} test database…", file=sys.stderr)
        fcntl.flock(handle, fcntl.LOCK_EX)
    globals()["_session_lock"] = handle  # held until this process exits


_serialise_test_sessions()

# PostgreSQL commits of the tests (and of the processes they start, which inherit the environment)
# are not flushed to disk before the server answers: no test crashes the server, and the suite
# takes a fifth less time. What a commit means to the code (atomic, visible to others) is unchanged.
os.environ.setdefault("PGOPTIONS", "-c synchronous_commit=off")

requires_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_celery_queue():
    """Each test session gets its own queue, so a running `make run` worker never steals tasks."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    yield queue


@pytest.fixture
def celery_worker_live(transactional_db, _isolated_celery_queue):
    """A real Celery worker (threads) consuming the configured broker, for transaction=True tests.

    The queue is emptied first: tasks left by earlier tests (delivery kicks) must not run here.
    """
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(_isolated_celery_queue)
    cache.delete(DELIVERY_KICK_KEY)  # a kick of an earlier test would suppress this test's one
    dispatch._kicked_until = 0.0  # and so would this process's memory of it
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
        queues=[_isolated_celery_queue],
    ) as worker:
        yield worker


@pytest.fixture
def beat_purge_watchdog(celery_worker_live):
    """Celery beat's every-minute purge watchdog, sent every half second while the test runs."""
    stop = threading.Event()

    def beat():
        while not stop.wait(0.5):
            celery_app.send_task("mailqueue.tasks.purge_watchdog")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.fixture(autouse=True)
def _record_connection_closed():
    """Delivery keeps its record connection from one batch to the next (mailqueue.sent_recorder):
    closed after each test, or the test database could not be dropped at the end."""
    yield
    from mailqueue.sent_recorder import kept_connections_close

    kept_connections_close()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Tests create many users; the production PBKDF2 cost would dominate the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _login_throttling_only_where_tested(request, settings):
    """django-axes needs the request that Client.login() does not pass: tests of login
    throttling opt in with @pytest.mark.axes, the others log in freely."""
    if request.node.get_closest_marker("axes") is None:
        settings.AXES_ENABLED = False


@pytest.fixture(autouse=True)
def _fresh_password_reset_counters(monkeypatch):
    """The cache outlives test sessions: each test counts password resets under keys of its own."""
    monkeypatch.setattr(password_reset, "KEY_PREFIX", f"password-reset-test-{uuid.uuid4().hex}")


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def customer_user():
    """A user who belongs to one customer owning one hosting: (user, customer, hosting)."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    return membership.user, membership.customer, hosting


@pytest.fixture
def make_user():
    return UserFactory


@pytest.fixture
def make_customer():
    return CustomerFactory
