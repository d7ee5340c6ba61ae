"""Delivery throughput: messages per second from the queue to a local SMTP sink, beside a plain
smtplib loop sending the same messages over one connection (the baseline), and their ratio, in three
set-ups, each with a hosting of its own: (a) no DKIM key and no spamd; (b) DKIM signing with the hosting's
key (DKIM_KEY_BITS), every message From: its domain, checked at the sink; (c) as (a) but scanned by a spamd
started here with the tests' command line (tests/spamd.py), on --spamd-messages; skipped without spamd.

The machine's speed drifts from minute to minute, so the baseline and (a) and (b) run in rounds
(--runs, 3 by default: the baseline, then (a), then (b), in each), and each reports its best
run; the ratio of their medians is printed too. (c) runs once. --timeline adds a run of (a) and
(b) with each step of the delivering thread stamped, and prints where its time went
(`delivery_timeline`).

Runs on a database of its own, created, migrated and dropped here (PostgreSQL: `bench_portal`, or
`--database`, next to DATABASE_URL's database; SQLite: a temporary file), so it never touches real data:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/delivery.py --messages 2000
"""

import argparse
import base64
import contextlib
import email.utils
import functools
import itertools
import json
import multiprocessing
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATABASE = "bench_portal"
RUNS = 3
_HOSTING_NUMBERS = itertools.count(1)  # a hosting of its own for each run
SPAMD_BINARY = shutil.which("spamd") or ("/usr/sbin/spamd" if Path("/usr/sbin/spamd").exists() else None)
SPAMD_READY_SECONDS = 60
HEAD_END = re.compile(rb"\r?\n\r?\n")
DKIM_HEADER = re.compile(rb"(?mi)^DKIM-Signature:")


@dataclass(frozen=True)
class Phase:
    key: str  # for --only
    label: str  # the line printed
    dkim: bool  # every message signed with the hosting's key
    spamd: bool  # every message scanned by a spamd
    goal: float | None  # ratio to the smtplib loop; None: no goal, for information


PHASES = [
    # The issue tracker's goal for delivery as it is (the README used to say 0.5).
    Phase("plain", "(a) no DKIM key, no spamd", dkim=False, spamd=False, goal=0.8),
    Phase("dkim", "(b) DKIM signing", dkim=True, spamd=False, goal=0.5),
    Phase("spamd", "(c) spamd scanning", dkim=False, spamd=True, goal=None),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """The relay: accepts every message and stores nothing but the first one; counts those
    carrying a DKIM-Signature header. It runs in a process of its own (`SinkProcess`), as a relay
    does: in a thread of the bench it would take the GIL from the client being measured."""

    def __init__(self, accepted, signed, sample_path: str, *, pipelining: bool):
        self.accepted, self.signed, self.sample_path = accepted, signed, Path(sample_path)
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """aiosmtpd reads each command as it comes, pipelined or not; it offers PIPELINING here
        (RFC 2920) as Postfix and the large relays do, unless --no-pipelining."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_DATA(self, server, session, envelope):
        content = envelope.content
        self.accepted.value += 1
        if DKIM_HEADER.search(HEAD_END.split(content, 1)[0]):
            self.signed.value += 1
        if not self.sample_path.exists():
            partial = self.sample_path.with_suffix(".partial")
            partial.write_bytes(content)
            partial.rename(self.sample_path)
        return "250 OK"


def _sink_serve(port: int, accepted, signed, sample_path: str, pipelining: bool, ready, stop) -> None:
    """The sink process: aiosmtpd on `port` until `stop` is set."""
    from aiosmtpd.controller import Controller

    sink = Sink(accepted, signed, sample_path, pipelining=pipelining)
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    ready.set()
    try:
        stop.wait()
    finally:
        controller.stop()


class SinkProcess:
    """The sink (`Sink`) in a process of its own; what it counted, read from here."""

    def __init__(self, port: int, directory: Path, *, pipelining: bool):
        context = multiprocessing.get_context("spawn")
        self._accepted = context.Value("q", 0, lock=False)  # written by the sink alone, read between runs
        self._signed = context.Value("q", 0, lock=False)
        self._sample = directory / "sample.eml"
        self._ready, self._stop = context.Event(), context.Event()
        arguments = (port, self._accepted, self._signed, str(self._sample), pipelining, self._ready, self._stop)
        self._process = context.Process(target=_sink_serve, args=arguments, daemon=True)

    def start(self) -> None:
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise RuntimeError("the SMTP sink did not start within 30 s")

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def reset(self) -> None:
        self._accepted.value = self._signed.value = 0
        self._sample.unlink(missing_ok=True)

    @property
    def accepted(self) -> int:
        return self._accepted.value

    @property
    def signed(self) -> int:
        return self._signed.value

    @property
    def sample(self) -> bytes | None:
        return self._sample.read_bytes() if self._sample.exists() else None


class StatementCounter:
    """Counts the SQL statements of every connection of this process, the delivery's threads
    included (an execute_wrapper on each, the main thread's and each one opened after)."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self._lock:
            self.count += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def everywhere(self):
        from django.db import connection
        from django.db.backends.signals import connection_created

        def install(sender, connection, **kwargs):
            if self not in connection.execute_wrappers:
                connection.execute_wrappers.append(self)

        connection_created.connect(install, weak=False)
        try:
            with connection.execute_wrapper(self):
                yield
        finally:
            connection_created.disconnect(install)


def database_create(url: str, name: str) -> tuple[str, callable]:
    """A fresh benchmark database beside `url`'s; returns its URL and a function dropping it."""
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        directory = tempfile.mkdtemp(prefix="bench-delivery-")
        path = Path(directory) / "bench.sqlite3"

        def drop():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            os.rmdir(directory)

        return f"sqlite:///{path}", drop
    import psycopg

    admin_url = url
    base, _slash, _name = url.rpartition("/")

    def run(statement: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(statement)

    run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    run(f"CREATE DATABASE {name}")
    return f"{base}/{name}", lambda: run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def django_on_own_database(source_url: str, name: str, *, prefix: str):
    """Django set up on a fresh, migrated database `name` beside `source_url`'s (a VAR_DIR of its
    own, LOG_LEVEL WARNING, DEBUG off); the database dropped and the directory removed on exit."""
    work_dir = tempfile.mkdtemp(prefix=prefix)
    os.environ.update(DJANGO_SETTINGS_MODULE="portal.settings", LOG_LEVEL="WARNING", DEBUG="false")
    os.environ.setdefault("VAR_DIR", work_dir)
    bench_url, database_drop = database_create(source_url, name)
    os.environ["DATABASE_URL"] = bench_url
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        yield
    finally:
        connection.close()
        database_drop()
        shutil.rmtree(work_dir, ignore_errors=True)


def hosting_create(customer, phase: Phase):
    """One hosting per set-up (its own hourly hand-offs), with a limit that never binds; its DKIM
    key (made at provisioning, DKIM_KEY_BITS) kept for (b), retired otherwise: it then has none."""
    from django.utils import timezone

    from hosting.models import Plan
    from mailqueue.dkim_keys import dkim_key_create
    from mailqueue.hourly_limit import mail_service_limit_set
    from mailqueue.models import ActorKind, DkimKey
    from mailqueue.provisioning import hosting_provision
    from mailqueue.state import Actor

    hosting, _password = hosting_provision(
        service_name=f"{phase.key}{next(_HOSTING_NUMBERS)}.bench.example", customer=customer, plan=Plan.PERFORMANCE
    )
    mail_service_limit_set(hosting=hosting, actor=Actor(ActorKind.OPERATOR, None, "bench"), limit=1_000_000)
    if phase.dkim:
        return hosting, dkim_key_create(hosting=hosting)
    DkimKey.objects.filter(hosting=hosting, retired_at__isnull=True).update(retired_at=timezone.now())
    return hosting, None


def messages_create(hosting, count: int, body_bytes: int):
    """`count` queued messages of `hosting`, From: its domain, as a door stores them (Date and
    Message-ID present); returns the (sender, recipients, raw) of each, for the baseline."""
    from django.db import connection
    from django.utils import timezone

    from mailqueue.models import Message, MessageStatus, RecipientStatus

    now = timezone.now()
    text = ("Lorem ipsum dolor sit amet. " * (body_bytes // 28 + 1))[:body_bytes]
    body = "\r\n".join(text[start : start + 76] for start in range(0, len(text), 76))
    domain = hosting.service_name
    sender = f"www-data@{domain}"
    date = email.utils.format_datetime(now)
    envelopes, rows = [], []
    for number in range(count):
        recipient = f"customer{number}@example.org"
        message_id = f"<bench-{number}.{hosting.pk}@{domain}>"
        raw = (
            f"From: {sender}\r\nTo: {recipient}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\n"
            f"Subject: Order {number}\r\n\r\n{body}\r\n"
        ).encode()
        envelopes.append((sender, [recipient], raw))
        rows.append(
            Message(
                hosting=hosting,
                message_id=message_id,
                sender=sender,
                recipients=[{"address": recipient, "status": RecipientStatus.PENDING, "code": None, "reply": ""}],
                recipient_count=1,
                subject=f"Order {number}",
                size=len(raw),
                raw=raw,
                status=MessageStatus.QUEUED,
                client_address="127.0.0.1",
                created_at=now,
                next_attempt_at=now,
            )
        )
    Message.objects.bulk_create(rows, batch_size=500)
    if connection.vendor == "postgresql":  # plans from statistics, not from whenever autovacuum comes by
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Message._meta.db_table}")
    return envelopes


def baseline_run(url: str, envelopes) -> tuple[float, float]:
    """Seconds for smtplib to send every message over one connection, and this process's CPU seconds."""
    host_port = url.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    started, cpu = time.perf_counter(), time.process_time()
    # With a timeout, as the relay client uses (SMTP_RELAY_TIMEOUT): the same socket mode.
    with smtplib.SMTP(host, int(port), local_hostname="bench.localhost", timeout=30) as client:
        for sender, recipients, raw in envelopes:
            client.sendmail(sender, recipients, raw)
    return time.perf_counter() - started, time.process_time() - cpu


def delivery_run(batch_size: int | None) -> tuple[float, float, int, int]:
    """The delivery task's run (`delivery_runs.delivery_run`: its batches growing while the relay
    keeps up) emptying the queue, or batches of `batch_size` each: (seconds, CPU seconds of this
    process, batches, connections). The process's CPU is delivery's own (its sending, recording
    and heartbeat threads): the sink runs in a process of its own."""
    from django.test import override_settings

    from mailqueue.delivery_runs import delivery_run as run

    fixed = {} if batch_size is None else {"DELIVERY_BATCH_SIZE": batch_size, "DELIVERY_BATCH_SIZE_MAX": batch_size}
    started, cpu = time.perf_counter(), time.process_time()
    with override_settings(**fixed):
        result = run(budget_seconds=3600)
    return time.perf_counter() - started, time.process_time() - cpu, result.batches, result.connections


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in connection.recv(64)
    except OSError:
        return False


@contextlib.contextmanager
def spamd_running(directory: Path):
    """A spamd with the tests' command line (tests/spamd.py: loopback, local tests only, two
    children) on a free port; yields (spamd://… URL, seconds to its first PONG), stops it after."""
    from tests.spamd import spamd_command

    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)  # its children write their state there
    port = free_port()
    log = directory / "spamd.log"
    launched = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            spamd_command(port=port, directory=directory),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() - launched > SPAMD_READY_SECONDS:
                raise RuntimeError(f"spamd did not answer (exit {process.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"spamd://127.0.0.1:{port}", time.monotonic() - launched
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def dkim_verified(raw: bytes, key) -> bool:
    """Whether `raw`'s DKIM signature verifies against the key's published TXT record."""
    import dkim

    from mailqueue.dkim_keys import dns_value

    return bool(dkim.verify(raw, dnsfunc=lambda _name, timeout=5: dns_value(key).encode("ascii")))


def key_bits(key) -> int:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return load_der_public_key(base64.b64decode(key.public_key)).key_size


def baseline_measure(url: str, envelopes, sink: SinkProcess) -> dict:
    """One run of the baseline, and whether the sink accepted every message."""
    sink.reset()
    seconds, cpu_seconds = baseline_run(url, envelopes)
    errors = [] if sink.accepted == len(envelopes) else [f"sink accepted {sink.accepted} of {len(envelopes)}"]
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "errors": errors}


def best_of(runs: list[dict]) -> dict:
    """The fastest of a set-up's runs, with every run's errors and the median rate."""
    best = dict(min(runs, key=lambda outcome: outcome["seconds"]))
    best["errors"] = [error for outcome in runs for error in outcome["errors"]]
    best["median_rate"] = statistics.median(outcome["messages"] / outcome["seconds"] for outcome in runs)
    return best


def phase_run(
    phase: Phase, *, customer, count: int, args, sink: SinkProcess, spamd_url: str, counter, timeline=None
) -> dict:
    """Deliver `count` messages of a new hosting in this set-up; what was measured and checked.
    With `timeline` (`delivery_timeline.Timeline`), each step is stamped: its report is kept."""
    from django.db.models import Avg, Max, Min
    from django.test import override_settings

    from mailqueue.models import Message, MessageStatus

    hosting, key = hosting_create(customer, phase)
    messages_create(hosting, count, args.body_bytes)
    sink.reset()
    counter.count = 0
    stamped = timeline.recording() if timeline is not None else contextlib.nullcontext()
    with override_settings(SPAMD_URL=spamd_url if phase.spamd else ""), stamped:
        seconds, cpu_seconds, batches, connections = delivery_run(args.batch_size)
    statements = counter.count
    messages = Message.objects.filter(hosting=hosting)
    outcome = {
        "phase": phase,
        "messages": count,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "batches": batches,
        "connections": connections,
        "statements": statements,
        "sent": messages.filter(status=MessageStatus.SENT).count(),
        "accepted": sink.accepted,
        "signed": sink.signed,
        "errors": [],
        "timeline": timeline.report(count) if timeline is not None else None,
    }
    if outcome["sent"] != count or sink.accepted != count:
        outcome["errors"].append(f"{outcome['sent']} sent of {count}, sink accepted {sink.accepted}")
    if phase.dkim:
        outcome["key"] = f"{key_bits(key)}-bit RSA, d={hosting.service_name}, s={key.selector}"
        outcome["verified"] = sink.sample is not None and dkim_verified(sink.sample, key)
        if sink.signed != count or not outcome["verified"]:
            outcome["errors"].append(
                f"{sink.signed} of {count} delivered messages carry a DKIM-Signature, first verified: "
                f"{outcome['verified']}"
            )
    elif sink.signed:
        outcome["errors"].append(f"{sink.signed} delivered messages carry a DKIM-Signature, none expected")
    if phase.spamd:
        scores = messages.filter(spam_score__isnull=False).aggregate(low=Min("spam_score"), high=Max("spam_score"))
        scores |= messages.aggregate(mean=Avg("spam_score"))
        outcome["scanned"] = messages.filter(spam_score__isnull=False).count()
        outcome["scores"] = scores
        if outcome["scanned"] != count:
            outcome["errors"].append(f"{outcome['scanned']} of {count} messages scanned by spamd")
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages of (a) and (b), and of the baseline")
    parser.add_argument(
        "--spamd-messages", type=int, default=300, help="messages of (c), at most --messages (spamd: 10–20 msg/s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="messages per delivery batch, every one (default: as deployed, DELIVERY_BATCH_SIZE growing to "
        "DELIVERY_BATCH_SIZE_MAX)",
    )
    parser.add_argument("--body-bytes", type=int, default=1500, help="size of each message's body")
    parser.add_argument("--only", nargs="+", choices=[phase.key for phase in PHASES], help="only these set-ups")
    parser.add_argument("--database", default=BENCH_DATABASE, help="PostgreSQL database made (and dropped) here")
    parser.add_argument(
        "--no-pipelining",
        dest="pipelining",
        action="store_false",
        help="the sink does not offer PIPELINING (RFC 2920): delivery then waits for each command's reply",
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="rounds of the baseline, (a) and (b); the best of each")
    parser.add_argument(
        "--timeline", action="store_true", help="one more run of (a) and (b), saying where each one's time goes"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not re.fullmatch(r"bench_[a-z0-9_]+", args.database):
        parser.error("--database must read bench_… (lower case letters, digits, _)")
    phases = [phase for phase in PHASES if not args.only or phase.key in args.only]

    source_url = os.environ.get("DATABASE_URL", "sqlite:///")
    bench_url, database_drop = database_create(source_url, args.database)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-var-"))
    port = free_port()
    os.environ.update(
        DATABASE_URL=bench_url,
        SMTP_RELAY_URL=f"smtp://127.0.0.1:{port}",
        DJANGO_SETTINGS_MODULE="portal.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("VAR_DIR", str(work_dir))  # logs, cache: never the tree's var/
    outcomes: list[dict] = []
    skipped: list[str] = []
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from bench.delivery_timeline import Timeline
        from hosting.models import Customer
        from mailqueue.models import Message

        call_command("migrate", verbosity=0)
        sink = SinkProcess(port, work_dir, pipelining=args.pipelining)
        counter = StatementCounter()
        sink.start()
        try:
            customer = Customer.objects.create(slug="bench", name="Bench", contact_email="bench@example.org")
            # The baseline's bytes are shaped as every set-up's (From: a hosting's own domain), as stored,
            # unsigned: the plain loop, one figure for all three.
            baseline_hosting, _key = hosting_create(customer, Phase("baseline", "", False, False, None))
            envelopes = messages_create(baseline_hosting, args.messages, args.body_bytes)
            Message.objects.filter(hosting=baseline_hosting).delete()  # never delivered: only their bytes
            # In rounds, each set-up's best run: the machine's speed drifts, the rounds share it out.
            run_of = {
                phase.key: functools.partial(phase_run, phase, customer=customer, args=args, sink=sink, counter=counter)
                for phase in phases
            }
            timed = [phase for phase in phases if not phase.spamd]
            baseline_runs, runs = [], {phase.key: [] for phase in timed}
            with counter.everywhere():
                for _round in range(args.runs):
                    baseline_runs.append(baseline_measure(os.environ["SMTP_RELAY_URL"], envelopes, sink))
                    for phase in timed:
                        runs[phase.key].append(run_of[phase.key](count=args.messages, spamd_url=""))
                for phase in timed:
                    outcomes.append(best_of(runs[phase.key]))
                    if args.timeline:
                        stamped = run_of[phase.key](count=args.messages, spamd_url="", timeline=Timeline())
                        outcomes[-1]["timeline"] = stamped["timeline"]
                        outcomes[-1]["errors"] += [f"(the timeline's run) {error}" for error in stamped["errors"]]
                for phase in [phase for phase in phases if phase.spamd]:
                    if SPAMD_BINARY is None:
                        skipped.append(f"{phase.label}: skipped, spamd is not installed (Debian package `spamd`)")
                        continue
                    spamd_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-spamd-"))
                    try:
                        with spamd_running(spamd_dir) as (url, started):
                            outcome = run_of[phase.key](count=min(args.spamd_messages, args.messages), spamd_url=url)
                    finally:
                        shutil.rmtree(spamd_dir, ignore_errors=True)
                    outcome["spamd_started"] = started
                    outcomes.append(outcome)
        finally:
            sink.stop()
        dkim_bits = settings.DKIM_KEY_BITS
        batches = (
            f"batches of {args.batch_size}"
            if args.batch_size
            else f"batches of {settings.DELIVERY_BATCH_SIZE} growing to {settings.DELIVERY_BATCH_SIZE_MAX}"
        )
        connection.close()
    finally:
        database_drop()
        shutil.rmtree(work_dir, ignore_errors=True)

    errors = [f"{outcome['phase'].label}: {error}" for outcome in outcomes for error in outcome["errors"]]
    errors += [f"baseline: {error}" for run in baseline_runs for error in run["errors"]]
    best = min(baseline_runs, key=lambda run: run["seconds"])
    baseline_seconds, baseline_cpu = best["seconds"], best["cpu_seconds"]
    baseline_rate = args.messages / baseline_seconds
    baseline_median = statistics.median(args.messages / run["seconds"] for run in baseline_runs)
    database = "postgresql" if bench_url.startswith("postgres") else "sqlite"
    print(
        f"database: {database}, messages: {args.messages} ((c): {min(args.spamd_messages, args.messages)}), "
        f"{batches}, bodies of {args.body_bytes} bytes, DKIM_KEY_BITS {dkim_bits}"
    )
    header = f"{'':34}{'seconds':>9}{'msg/s':>8}{'ratio':>7}  {'goal':8}{'SQL/msg':>8}{'CPU ms/msg':>11}"
    print(f"{header}  batches, connections")
    baseline_cpu_ms = baseline_cpu * 1000 / args.messages
    print(
        f"{'smtplib, one connection':34}{baseline_seconds:>9.2f}{baseline_rate:>8.0f}{1:>7.2f}"
        f"{'':18}{baseline_cpu_ms:>11.2f}"
    )
    figures = []
    for outcome in outcomes:
        phase = outcome["phase"]
        rate = outcome["messages"] / outcome["seconds"]
        ratio = rate / baseline_rate
        met = None if phase.goal is None else ratio >= phase.goal
        goal = "—" if phase.goal is None else f">= {phase.goal}"
        verdict = "" if met is None else ("met" if met else "short")
        cpu_ms = outcome["cpu_seconds"] * 1000 / outcome["messages"]
        print(
            f"{phase.label:34}{outcome['seconds']:>9.2f}{rate:>8.0f}{ratio:>7.2f}  {goal:8}"
            f"{outcome['statements'] / outcome['messages']:>8.1f}{cpu_ms:>11.2f}"
            f"  {outcome['batches']}, {outcome['connections']}"
            f"  {verdict}"
        )
        detail = f", {dkim_bits}-bit key" if phase.dkim else ""
        figures.append(
            {
                "benchmark": "delivery",
                "figure": f"{phase.label}{detail}: the delivery task's run, {outcome['messages']} messages, "
                f"{batches}" + ("" if phase.spamd else f", best of {args.runs}"),
                "unit": "msg/s",
                "value": rate,
                "baseline": baseline_rate,
                "baseline_label": f"smtplib, one connection, best of {args.runs}",
                "ratio": ratio,
                "goal": "—" if phase.goal is None else f"ratio >= {phase.goal}",
                "met": met,
                "statements_per_message": outcome["statements"] / outcome["messages"],
                "cpu_ms_per_message": cpu_ms,
                "baseline_cpu_ms_per_message": baseline_cpu_ms,
            }
        )
    for line in skipped:
        print(line)
    medians = ", ".join(
        f"{outcome['phase'].label[:3]} {outcome['median_rate'] / baseline_median:.2f}"
        for outcome in outcomes
        if "median_rate" in outcome
    )
    print(
        f"baseline, (a) and (b): best of {args.runs} runs in rounds (ratios of the medians: {medians}); (c): one run; "
        "SQL/msg: statements of every connection of the delivery per message; CPU ms/msg: the bench process's CPU, "
        "every thread (time.process_time; the sink has a process of its own)"
    )
    for outcome in outcomes:
        phase = outcome["phase"]
        if phase.dkim:
            print(
                f"{phase.label}: {outcome['signed']}/{outcome['accepted']} messages at the sink carry a DKIM-Signature "
                f"({outcome['key']}); the first verifies against its DNS record: {outcome['verified']}"
            )
        else:
            signed = f"{outcome['signed']}/{outcome['accepted']}"
            print(f"{phase.label}: {signed} messages at the sink carry a DKIM-Signature")
        if phase.spamd:
            scores = outcome["scores"]
            print(
                f"{phase.label}: {outcome['scanned']} scanned, scores {scores['low']} to {scores['high']} "
                f"(mean {scores['mean'] or 0:.2f}); spamd answered {outcome['spamd_started']:.1f} s after its start"
            )
    for outcome in outcomes:
        if outcome.get("timeline"):
            print(f"\n{outcome['phase'].label}, where the time went (one more run, each step stamped):")
            print("\n".join(outcome["timeline"]))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
