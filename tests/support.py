"""Helpers shared by tests that run real servers and processes."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

CELERY = Path(sys.executable).with_name("celery")


def wait_until(condition, *, timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_database_url() -> str:
    """The URL of the test database this session uses, for another process to share it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def worker_process(*, queue: str, log: Path, **environment: str):
    """A real `celery worker` process (solo pool) on the test database and broker, consuming
    `queue`; killed with its process group on exit. Yields the Popen."""
    env = os.environ | {"DATABASE_URL": shared_database_url(), "CELERY_QUEUE_PREFIX": ""} | environment
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    command = [str(CELERY), "-A", "portal", "worker", "-P", "solo", "-Q", queue]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "WARNING"]
    with log.open("wb") as output:
        worker = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, 9)
        worker.wait(timeout=30)
