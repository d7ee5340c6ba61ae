"""Delivery throughput: messages per second from the queue to a local SMTP sink, beside a plain
smtplib loop sending the same messages over one connection (the baseline), and their ratio.

Runs on a database of its own, created, migrated and dropped here (PostgreSQL: `bench_portal`
next to DATABASE_URL's database; SQLite: a temporary file), so it never touches real data:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/delivery.py --messages 2000
"""

import argparse
import json
import os
import smtplib
import socket
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATABASE = "bench_portal"
BASELINE_RUNS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """Accepts every message and stores nothing."""

    def __init__(self):
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        self.accepted += 1
        return "250 OK"


def database_create(url: str) -> tuple[str, callable]:
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

    run(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
    run(f"CREATE DATABASE {BENCH_DATABASE}")
    return f"{base}/{BENCH_DATABASE}", lambda: run(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def messages_create(count: int, body_bytes: int):
    """One hosting with a limit that never binds, and `count` queued messages; returns the
    (sender, recipients, raw) of each, for the baseline."""
    from django.utils import timezone

    from hosting.models import Customer, Plan
    from mailqueue.hourly_limit import mail_service_limit_set
    from mailqueue.models import ActorKind, Message, MessageStatus, RecipientStatus
    from mailqueue.provisioning import hosting_provision
    from mailqueue.state import Actor

    customer = Customer.objects.create(slug="bench", name="Bench", contact_email="bench@example.org")
    hosting, _password = hosting_provision(service_name="bench.example", customer=customer, plan=Plan.PERFORMANCE)
    mail_service_limit_set(hosting=hosting, actor=Actor(ActorKind.OPERATOR, None, "bench"), limit=1_000_000)
    now = timezone.now()
    text = ("Lorem ipsum dolor sit amet. " * (body_bytes // 28 + 1))[:body_bytes]
    body = "\r\n".join(text[start : start + 76] for start in range(0, len(text), 76))
    sender = "www-data@bench.example"
    envelopes, rows = [], []
    for number in range(count):
        recipient = f"customer{number}@example.org"
        raw = (
            f"From: {sender}\r\nTo: {recipient}\r\nMessage-ID: <bench-{number}@bench.example>\r\n"
            f"Subject: Order {number}\r\n\r\n{body}\r\n"
        ).encode()
        envelopes.append((sender, [recipient], raw))
        rows.append(
            Message(
                hosting=hosting,
                message_id=f"<bench-{number}@bench.example>",
                sender=sender,
                recipients=[{"address": recipient, "status": RecipientStatus.PENDING, "code": None, "reply": ""}],
                recipient_count=1,
                subject=f"Order {number}",
                size=len(raw),
                raw=raw,
                status=MessageStatus.QUEUED,
                created_at=now,
                next_attempt_at=now,
            )
        )
    Message.objects.bulk_create(rows, batch_size=500)
    return hosting, envelopes


def baseline_run(url: str, envelopes) -> float:
    """Seconds for smtplib to send every message over one connection."""
    host_port = url.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    started = time.perf_counter()
    # With a timeout, as the relay client uses (SMTP_RELAY_TIMEOUT): the same socket mode.
    with smtplib.SMTP(host, int(port), local_hostname="bench.localhost", timeout=30) as client:
        for sender, recipients, raw in envelopes:
            client.sendmail(sender, recipients, raw)
    return time.perf_counter() - started


def delivery_run(batch_size: int) -> tuple[float, int, int]:
    """Seconds for delivery_run_batch loops to empty the queue; (seconds, batches, connections)."""
    from mailqueue.delivery import delivery_run_batch

    batches = connections = 0
    started = time.perf_counter()
    while True:
        result = delivery_run_batch(limit=batch_size)
        if not result.claimed:
            break
        batches += 1
        connections += result.connections
    return time.perf_counter() - started, batches, connections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100, help="messages per delivery batch")
    parser.add_argument("--body-bytes", type=int, default=1500, help="size of each message's body")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()

    source_url = os.environ.get("DATABASE_URL", "sqlite:///")
    bench_url, database_drop = database_create(source_url)
    port = free_port()
    os.environ.update(
        DATABASE_URL=bench_url,
        SMTP_RELAY_URL=f"smtp://127.0.0.1:{port}",
        DJANGO_SETTINGS_MODULE="portal.settings",
        LOG_LEVEL="WARNING",
    )
    try:
        import django

        django.setup()
        from aiosmtpd.controller import Controller
        from django.core.management import call_command
        from django.db import connection

        from mailqueue.models import Message, MessageStatus

        call_command("migrate", verbosity=0)
        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
        controller.start()
        try:
            hosting, envelopes = messages_create(args.messages, args.body_bytes)
            # The best of a few runs: the baseline is cheap and noisy.
            baseline_seconds = min(baseline_run(os.environ["SMTP_RELAY_URL"], envelopes) for _ in range(BASELINE_RUNS))
            delivery_seconds, batches, connections = delivery_run(args.batch_size)
        finally:
            controller.stop()
        sent = Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count()
        connection.close()
    finally:
        database_drop()

    if sent != args.messages or sink.accepted != (BASELINE_RUNS + 1) * args.messages:
        print(f"error: {sent} sent of {args.messages}, sink accepted {sink.accepted}", file=sys.stderr)
        return 1
    baseline_rate = args.messages / baseline_seconds
    delivery_rate = args.messages / delivery_seconds
    print(f"database: {'postgresql' if bench_url.startswith('postgres') else 'sqlite'}, messages: {args.messages}")
    print(f"{'':28}{'seconds':>10}{'msg/s':>10}")
    print(f"{'smtplib, one connection *':28}{baseline_seconds:>10.2f}{baseline_rate:>10.0f}")
    print(f"{'delivery_run_batch loops':28}{delivery_seconds:>10.2f}{delivery_rate:>10.0f}")
    print(
        f"ratio delivery / baseline: {delivery_rate / baseline_rate:.2f} ({batches} batches, {connections} connections)"
    )
    print(f"* best of {BASELINE_RUNS} runs")
    if args.json:
        figure = {
            "benchmark": "delivery",
            "figure": f"delivery_run_batch loops, {args.messages} messages, batches of {args.batch_size}",
            "unit": "msg/s",
            "value": delivery_rate,
            "baseline": baseline_rate,
            "baseline_label": f"smtplib, one connection, best of {BASELINE_RUNS}",
            "ratio": delivery_rate / baseline_rate,
            "goal": "ratio >= 0.5",
            "met": delivery_rate / baseline_rate >= 0.5,
        }
        Path(args.json).write_text(json.dumps([figure], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
