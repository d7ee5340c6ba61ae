"""The production stack without Docker: the Procfile under honcho, on PostgreSQL and Redis, driven
over its real ports as a hosted script, a customer in a browser and an API client would.

It starts every Procfile process (gunicorn, the SMTP door, the two Celery workers, beat) on a fresh
PostgreSQL database and a Redis database of its own, with a local aiosmtpd relay, then runs one
cycle: SMTP submission → delivery to the relay; login and block through the portal's forms; a held
message; a purge with the official `ovh` client; the service Actif again; /metrics and static files.
"""

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import ovh
import pytest
import requests
from aiosmtpd.controller import Controller

from tests.bounce_samples import bounce_sample
from tests.support import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
# The stack's own Redis database (never 0); test sessions take turns (tests/conftest.py), so one number is enough.
STACK_REDIS_DB = 13
TEST_BUDGET_SECONDS = 120
PASSWORD = "stack-Password-4821"
SERVICE_NAME = "stack-shop.example"

pytestmark = [
    pytest.mark.skipif(
        not (DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://")) and REDIS_URL),
        reason="the production stack needs PostgreSQL (DATABASE_URL=postgres://…) and Redis (REDIS_URL)",
    ),
    pytest.mark.skipif(shutil.which("createdb") is None, reason="needs PostgreSQL's createdb and dropdb"),
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(TEST_BUDGET_SECONDS + 60),  # the stop and the drop run after the budget
]


class Deadline:
    """One budget for the whole test: every wait takes what is left of it."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def wait_for(self, what: str, check, *, within: float, interval: float = 0.5, on_timeout=lambda: ""):
        end = min(self.end, time.monotonic() + within)
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}{on_timeout()}")
            time.sleep(interval)


class Relay:
    """The upstream relay: an aiosmtpd server that keeps what it receives."""

    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 2.0.0 Ok: queued"

    def subjects(self) -> list[str]:
        return [re.search(rb"^Subject: (.*?)\r?$", env.content, re.M).group(1).decode() for env in self.received]


@dataclass
class Stack:
    base_url: str
    smtp_port: int
    bounce_port: int
    relay: Relay
    log_path: Path
    process: subprocess.Popen
    credentials: dict = field(default_factory=dict)
    smtp_password: str = ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n--- stack output (last lines) ---\n" + "\n".join(text.splitlines()[-lines:])


def _database_urls(name: str) -> tuple[str, dict]:
    """The stack's database URL on DATABASE_URL's server, and createdb/dropdb's connection options."""
    parts = urlsplit(DATABASE_URL)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    options = {"host": parts.hostname or "127.0.0.1", "port": str(parts.port or 5432), "user": parts.username}
    return url, options


def _pg_command(program: str, name: str, options: dict, *extra: str) -> list[str]:
    command = [program, "-h", options["host"], "-p", options["port"], *extra, name]
    if options["user"]:
        command[1:1] = ["-U", options["user"]]
    return command


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (honcho puts each of its processes in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to honcho's process group (honcho passes it on), then SIGKILL to whatever is left."""
    descendants = _descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for pid in descendants:  # anything honcho left behind, e.g. after a SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _redis_keys_delete(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key for key in client.scan_iter(count=1000) if prefix.encode() in key]
        keys += [b"delivery", b"_kombu.binding.delivery", b"_kombu.binding_permanent.delivery"]
        client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def deadline():
    return Deadline(TEST_BUDGET_SECONDS)


@pytest.fixture
def stack(deadline, tmp_path):
    run_id = uuid.uuid4().hex[:8]
    database_name = f"stack_{run_id}"
    database_url, pg_options = _database_urls(database_name)
    redis_url = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{STACK_REDIS_DB}"))
    queue_prefix = f"stack-{run_id}-"
    web_port, smtp_port, bounce_port, relay_port = free_port(), free_port(), free_port(), free_port()
    var_dir = Path(tempfile.mkdtemp(prefix="stack-var-", dir=tmp_path))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "false",
        "HTTPS": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_WORKERS": "2",
        "WORKER_CONCURRENCY": "1",
        "DELIVERY_CONCURRENCY": "2",
        "SMTP_INGRESS_ADDR": f"127.0.0.1:{smtp_port}",
        "BOUNCE_INGRESS_ADDR": f"127.0.0.1:{bounce_port}",
        "SMTP_RELAY_URL": f"smtp://127.0.0.1:{relay_port}",
        "PURGE_GRACE_SECONDS": "2",
        "CELERY_DELIVERY_QUEUE": "delivery",
        "CELERY_QUEUE_PREFIX": queue_prefix,
        "LOG_FORMAT": "json",
        "VAR_DIR": str(var_dir),  # beat's schedule file, caches: never the tree's var/
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py, gunicorn and celery set it themselves

    relay = Relay()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command of the relay
    controller = Controller(relay, hostname="127.0.0.1", port=relay_port, ready_timeout=10)
    subprocess.run(_pg_command("createdb", database_name, pg_options), check=True, timeout=30)
    process = None
    controller.start()
    try:
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "collectstatic", "--noinput", "-v", "0")
        log_path = tmp_path / "stack.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "honcho"), "-f", "Procfile", "start"],
                env=env,
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, signalled as one
            )
        running = Stack(f"http://127.0.0.1:{web_port}", smtp_port, bounce_port, relay, log_path, process)

        def healthy():
            if process.poll() is not None:
                pytest.fail(f"honcho exited with {process.returncode}{running.log_tail()}")
            try:
                return requests.get(f"{running.base_url}/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or still starting its workers
                return False

        deadline.wait_for("/healthz = 200", healthy, within=60, on_timeout=running.log_tail)
        # A customer with a member, a hosting (its SMTP password) and API credentials.
        _manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from hosting.models import Customer; "
            "from hosting.services import membership_add; "
            "customer = Customer.objects.create(slug='stack', name='Stack', contact_email='ops@stack.example'); "
            f"user = get_user_model().objects.create_user('stack-user', password={PASSWORD!r}); "
            "membership_add(customer=customer, user=user)",
        )
        provisioned = _manage(env, "provision_hosting", SERVICE_NAME, "--customer", "stack")
        running.smtp_password = dict(line.split("=", 1) for line in provisioned.split())["smtp_password"]
        credentials = _manage(env, "create_api_credentials", "--customer", "stack")
        running.credentials = dict(line.split("=", 1) for line in credentials.split())
        yield running
    finally:
        if process is not None:
            _stop(process)
        controller.stop()
        subprocess.run(_pg_command("dropdb", database_name, pg_options, "--if-exists", "--force"), timeout=60)
        _redis_keys_delete(redis_url, queue_prefix)


def smtp_submit(stack: Stack, subject: str) -> None:
    message = EmailMessage()
    message["From"] = f"www-data@{SERVICE_NAME}"
    message["To"] = "customer@example.org"
    message["Subject"] = subject
    message.set_content("Sent by a hosted script through the SMTP door.")
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
        client.login(SERVICE_NAME, stack.smtp_password)
        client.send_message(message)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_production_stack_full_cycle(stack, deadline, monkeypatch):
    # 1. A script submits mail over SMTP; the delivery worker hands it to the relay.
    smtp_submit(stack, "Order 1 confirmed")
    deadline.wait_for(
        "delivery to the relay",
        lambda: "Order 1 confirmed" in stack.relay.subjects(),
        within=45,
        on_timeout=stack.log_tail,
    )

    # 1b. The relay accepted it with 250; the recipient's server bounces it later (a Postfix DSN
    # to the message's return path, through the stack's bounce door). Within a minute it is an
    # error of the API's bounces and a suppressed address, and the next message to that address
    # never reaches the relay.
    [delivered] = stack.relay.received
    return_path = delivered.mail_from
    assert return_path.startswith("bounce+") and "@bounces." in return_path
    report = bounce_sample("postfix-hard", return_path=return_path, recipient="customer@example.org")
    with smtplib.SMTP("127.0.0.1", stack.bounce_port, timeout=30) as door:
        door.ehlo("mx.example.org")
        door.mail("<>")
        door.rcpt(return_path)
        assert door.data(report)[0] == 250
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-stack", f"{stack.base_url}/1.0")
    api = ovh.Client(
        endpoint="portal-stack",
        application_key=stack.credentials["application_key"],
        application_secret=stack.credentials["application_secret"],
        consumer_key=stack.credentials["consumer_key"],
    )
    email = f"/hosting/web/{SERVICE_NAME}/email"
    [bounce] = api.get(f"{email}/bounces")
    assert bounce["to"] == "customer@example.org" and "User unknown" in bounce["message"], bounce
    assert [entry["address"] for entry in api.get(f"{email}/suppressions")] == ["customer@example.org"]
    smtp_submit(stack, "Order 1b to a suppressed address")
    deadline.wait_for(
        "the suppressed recipient to fail without the relay",
        lambda: [m["status"] for m in api.get(f"{email}/messages", status="failed")["results"]] == ["failed"] * 2,
        within=45,
        on_timeout=stack.log_tail,
    )
    assert "Order 1b to a suppressed address" not in stack.relay.subjects()

    # 2. The customer logs in through the real form and blocks through the confirmation page.
    browser = requests.Session()
    login_page = browser.get(f"{stack.base_url}/accounts/login/", timeout=10)
    assert login_page.status_code == 200
    logged_in = browser.post(
        f"{stack.base_url}/accounts/login/",
        data={
            "username": "stack-user",
            "password": PASSWORD,
            "csrfmiddlewaretoken": csrf_token(login_page.text),
            "next": "/",
        },
        headers={"Referer": f"{stack.base_url}/accounts/login/"},
        timeout=10,
    )
    assert logged_in.status_code == 200 and logged_in.url == f"{stack.base_url}/", logged_in.url
    assert SERVICE_NAME in logged_in.text
    confirm_url = f"{stack.base_url}/hostings/{SERVICE_NAME}/emails/block/"
    confirmation = browser.get(confirm_url, timeout=10)
    assert confirmation.status_code == 200
    blocked = browser.post(
        confirm_url,
        data={"csrfmiddlewaretoken": csrf_token(confirmation.text)},
        headers={"Referer": confirm_url},
        timeout=10,
    )
    assert blocked.status_code == 200 and blocked.url.endswith(f"/hostings/{SERVICE_NAME}/emails/"), blocked.url

    # 3. Mail submitted now is held, as the API shows (the official `ovh` client, request signing).
    smtp_submit(stack, "Order 2 while blocked")
    assert api.get(email)["state"] == "ko"
    held = api.get(f"{email}/messages", status="held")["results"]
    assert [message["subject"] for message in held] == ["Order 2 while blocked"]
    assert "Order 2 while blocked" not in stack.relay.subjects()

    # 4. The customer purges through the API; the service is Actif again once the purge ran.
    assert isinstance(api.post(f"{email}/request", action="PURGE"), str)
    deadline.wait_for("the purge to end (state ok)", lambda: api.get(email)["state"] == "ok", within=60, interval=1)
    assert api.get(f"{email}/messages", status="held")["results"] == []
    assert "Order 2 while blocked" not in stack.relay.subjects()

    # 5. Monitoring and static files, as production serves them.
    # The collector caches its figures for 10 s, and it first ran when each web worker started.
    def metrics_current():
        text = requests.get(f"{stack.base_url}/metrics", timeout=10).text
        return re.search(r'^portal_mail_services\{state="active"\} 1\.0$', text, re.M) and text

    metrics = deadline.wait_for("/metrics to count the active service", metrics_current, within=30, interval=2)
    assert re.search(r'^portal_mail_queue_depth\{status="held"\} 0\.0$', metrics, re.M)
    assert re.search(r'^portal_mail_messages_today\{event="sent"\} 1\.0$', metrics, re.M), metrics
    stylesheet = requests.get(f"{stack.base_url}/static/portal/portal.css", timeout=10)
    assert stylesheet.status_code == 200 and "text/css" in stylesheet.headers["Content-Type"]

    # LOG_FORMAT=json: the processes' log lines (after honcho's "time name |" prefix) are JSON objects.
    logged = [line.split("| ", 1)[1] for line in stack.log_path.read_text().splitlines() if "| {" in line]
    assert logged and all(isinstance(json.loads(line), dict) for line in logged[:50])
