"""The SMTP door's store of one message (`group_commit.messages_accept`, what a door database
thread runs for a batch of one), in process, one message after another: the one round trip (a
connection that just answered, small messages) beside the three round trips (forced:
TRUSTED_IDLE_SECONDS 0) in the same run, CPU and wall time a message.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/store.py --sizes 1.6 100

It works in a database of its own (`bench_store`, made and dropped here) with one hosting whose
own domain sends. A batch over message_insert.SIMPLE_QUERY_MAX_BYTES takes the three round trips
either way: at 100 KB both columns time the same path (their ratio is the noise).
"""

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LINE = b"A line of a typical small notification e-mail sent by a hosted script.\r\n"


def timed(store, submitted: dict, messages: int) -> tuple[float, float]:
    """(CPU ms, wall ms) a message over `messages` stores, after a warm-up."""
    for _ in range(min(200, messages)):
        store([submitted])
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(messages):
        store([submitted])
    return 1000 * (time.process_time() - cpu) / messages, 1000 * (time.perf_counter() - wall) / messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.6, 100], help="message sizes in KB")
    parser.add_argument("--messages", type=int, default=3000, help="messages stored each way at each size")
    args = parser.parse_args()
    source_url = os.environ.get("DATABASE_URL", "")
    if not source_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must name a PostgreSQL server: the round trips timed are PostgreSQL's")
    from bench.delivery import django_on_own_database

    rows = []
    with django_on_own_database(source_url, "bench_store", prefix="bench-store-var-"):
        from django.core.management import call_command

        from hosting.models import Customer, Hosting
        from mailqueue import message_insert
        from mailqueue.group_commit import messages_accept

        customer = Customer.objects.create(slug="store", name="Store", contact_email="store@example.org")
        call_command("provision_hosting", "store.example", customer=customer.slug, stdout=io.StringIO())
        hosting = Hosting.objects.get(service_name="store.example")

        def store(batch):
            [outcome] = messages_accept(batch, count_submitted=False)
            if isinstance(outcome, Exception):
                raise outcome

        trusted = message_insert.TRUSTED_IDLE_SECONDS
        for size in args.sizes:
            head = b"From: Bench <bench@store.example>\r\nTo: someone@example.org\r\nSubject: store\r\n\r\n"
            raw = head + LINE * max(1, round((size * 1000 - len(head)) / len(LINE)))
            submitted = {"hosting": hosting, "sender": "bench@store.example", "recipients": ["a@x.org"], "raw": raw}
            print(f"[{len(raw):,} bytes] {args.messages} stores each way…", flush=True)
            one = timed(store, submitted, args.messages)
            message_insert.TRUSTED_IDLE_SECONDS = 0.0  # no connection is trusted: three round trips
            try:
                three = timed(store, submitted, args.messages)
            finally:
                message_insert.TRUSTED_IDLE_SECONDS = trusted
            rows.append((len(raw), one, three))
    heads = f"{'one: CPU, wall ms':>18}  {'three: CPU, wall ms':>20}  {'CPU ratio':>9}  {'wall ratio':>10}"
    print(f"\n{'bytes':>9}  {heads}")
    for size, (one_cpu, one_wall), (three_cpu, three_wall) in rows:
        print(
            f"{size:>9,}  {one_cpu:>9.3f}, {one_wall:>6.3f}  {three_cpu:>11.3f}, {three_wall:>6.3f}"
            f"  {one_cpu / three_cpu:>9.2f}  {one_wall / three_wall:>10.2f}"
        )
    print(
        f"one: a connection that just answered (batches of at most {message_insert.SIMPLE_QUERY_MAX_BYTES:,} "
        "bytes of raw); three: TRUSTED_IDLE_SECONDS 0; ratio: one / three"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
