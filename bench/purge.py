"""Benchmark of the purge on PostgreSQL: purge.purge_run beside one raw DELETE (the limit)
and the naive ORM delete, on N held messages of one hosting among other hostings' messages.

    createdb -h 127.0.0.1 -U postgres bench_portal
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_portal .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_portal .venv/bin/python bench/purge.py [--messages 1000000]

Each method runs in a fresh subprocess on freshly inserted rows; the figures are its wall time
and its peak resident memory (getrusage maxrss) above the process's size before the run.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

OTHER_HOSTINGS = 3


def django_setup():
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("bench needs PostgreSQL: set DATABASE_URL (see the docstring)")


def insert_messages(cursor, *, hosting_id: int, count: int, status: str, held_until_sql: str = "NULL") -> None:
    """`count` messages of ~1 KB in one INSERT … SELECT generate_series."""
    cursor.execute(
        f"""
        INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject, size,
            raw, status, created_at, held_at, held_until, next_attempt_at, attempts, completed_at, last_reply,
            door, spam_rules)
        SELECT %s, '<bench-' || %s || '-' || i || '@bench>', 'www-data@bench.example',
            '[{{"address": "to@example.org", "status": "pending", "code": null, "reply": ""}}]'::jsonb, 1,
            'Bench message ' || i, 1000, convert_to(repeat('x', 1000), 'UTF8'), %s, now(),
            CASE WHEN %s = 'held' THEN now() END, {held_until_sql}, NULL, 0,
            CASE WHEN %s IN ('sent', 'failed') THEN now() END, '', 'smtp', ''
        FROM generate_series(1, %s) AS i
        """,
        [hosting_id, hosting_id, status, status, status, count],
    )


def hostings(count: int) -> list[int]:
    from hosting.models import Customer, Hosting
    from mailqueue.models import MailService

    customer, _ = Customer.objects.get_or_create(slug="bench", defaults={"name": "Bench", "contact_email": "b@b.fr"})
    ids = []
    for number in range(count):
        hosting, _ = Hosting.objects.get_or_create(service_name=f"bench-{number}.example", customer=customer)
        MailService.objects.get_or_create(hosting=hosting)
        ids.append(hosting.pk)
    return ids


def prepare(*, messages: int) -> list[int]:
    """Fresh rows: `messages` held for the first hosting (blocked, purge due), its sent ones, and
    held and sent messages of other hostings; then `settle`."""
    from django.db import connection

    target, *others = hostings(1 + OTHER_HOSTINGS)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE mailqueue_message, mailqueue_event, mailqueue_dailycounter")
        insert_messages(
            cursor, hosting_id=target, count=messages, status="held", held_until_sql="now() + interval '72 hours'"
        )
        insert_messages(cursor, hosting_id=target, count=max(1, messages // 100), status="sent")
        for other in others:
            insert_messages(
                cursor, hosting_id=other, count=max(1, messages // 10), status="held", held_until_sql="now()"
            )
            insert_messages(cursor, hosting_id=other, count=max(1, messages // 100), status="sent")
        cursor.execute(
            "UPDATE mailqueue_mailservice SET state = 'purging', block_reason = 'customer', "
            "purge_requested_at = now() - interval '10 minutes', purge_due_at = now() - interval '5 minutes', "
            "purge_started_at = NULL, purge_deleted = 0 WHERE hosting_id = %s",
            [target],
        )
    settle()
    return [target, *others]


def settle() -> None:
    """VACUUM ANALYZE the fresh rows, then CHECKPOINT: the timed deletes must not share the disk
    with the background writing out of the ~1 GB just inserted (at 1,000,000 rows that
    checkpoint made one method 3× slower than the same method in the next run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE mailqueue_message")
        cursor.execute("CHECKPOINT")


def method(name: str, target: int) -> int:
    """Run one way of deleting the target hosting's held messages; return how many went."""
    from django.db import connection

    from mailqueue import purge
    from mailqueue.models import Event, Message

    if name == "purge_run":
        purge.purge_run(hosting_id=target)
        return Event.objects.get(hosting_id=target, action="complete_purge").message_count
    if name == "purge_run_one_statement_batches":
        # The portable batch of mailqueue.purge: DELETE … WHERE id IN (SELECT … LIMIT n).
        def delete_held_batch(*, hosting_id: int, batch_size: int) -> int:
            return Message.objects.filter(hosting_id=hosting_id).held().delete_batch(batch_size)

        purge._held_delete_batch = delete_held_batch
        purge.purge_run(hosting_id=target)
        return Event.objects.get(hosting_id=target, action="complete_purge").message_count
    if name == "raw_delete":
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM mailqueue_message WHERE hosting_id = %s AND status = 'held'", [target])
            return cursor.rowcount
    if name == "orm_delete":
        return Message.objects.filter(hosting_id=target, status="held").delete()[0]
    raise ValueError(name)


def child(name: str, target: int, methods=method) -> None:
    django_setup()
    from celery import current_app
    from django.db import connection

    # Connected as a worker is when it runs a purge or an expiry: the database, and the broker
    # with its queues declared (the first task a process sends otherwise pays for both).
    connection.ensure_connection()
    with current_app.producer_or_acquire() as producer:
        for queue in current_app.amqp.queues.values():
            producer.maybe_declare(queue)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    deleted = methods(name, target)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"deleted": deleted, "seconds": elapsed, "peak_mb": (peak - before) / 1024, "rss_mb": peak / 1024})
    )


RUNS_HELP = "each method this many times, in turn, on fresh rows; its fastest run is reported"


def methods_run(script: str, names, prepare_rows, *, runs: int) -> dict[str, dict]:
    """Each method of `names` `runs` times in turn, each time on fresh rows (`prepare_rows()`
    returns the target) in a child process; the fastest run of each method."""
    results: dict[str, dict] = {}
    for run in range(runs):
        for name in names:
            measured = run_child(script, name, prepare_rows())
            print(f"run {run + 1}/{runs}: {name} {measured['seconds']:.3f} s", flush=True)
            if name not in results or measured["seconds"] < results[name]["seconds"]:
                results[name] = measured
    return results


def run_child(script: str, name: str, target: int) -> dict:
    output = subprocess.run(
        [sys.executable, script, "--child", name, "--target", str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(
    title: str,
    results: dict[str, dict],
    *,
    limit: str = "raw_delete",
    goal_ratio: float = 2.0,
    benchmark: str = "purge",
) -> list[dict]:
    """Print the table; return the figures in bench/run.py's shape."""
    from django.conf import settings

    print(f"\n{title} (PURGE_BATCH_SIZE={settings.PURGE_BATCH_SIZE})")
    print(f"{'method':<14}{'deleted':>10}{'seconds':>10}{'× raw':>8}{'peak MB':>10}{'RSS MB':>9}")
    base = results[limit]["seconds"]
    for name, figures in results.items():
        print(
            f"{name:<14}{figures['deleted']:>10}{figures['seconds']:>10.2f}{figures['seconds'] / base:>8.2f}"
            f"{figures['peak_mb']:>10.1f}{figures['rss_mb']:>9.1f}"
        )
    first = next(iter(results))
    ok = results[first]["seconds"] <= goal_ratio * base and results[first]["peak_mb"] < 200
    print(f"goal ({first} within {goal_ratio}× {limit}, peak < 200 MB): {'met' if ok else 'NOT met'}")
    figures = []
    for name, measured in results.items():
        if name == limit:
            continue
        goal = f"<= {goal_ratio:g}x {limit}" if name == first else ""
        figures.append(
            {
                "benchmark": benchmark,
                "figure": f"{name}, {measured['deleted']} deleted",
                "unit": "s",
                "value": measured["seconds"],
                "baseline": base,
                "baseline_label": f"{limit}, {results[limit]['deleted']} deleted",
                "ratio": measured["seconds"] / base,
                "goal": goal,
                "met": measured["seconds"] <= goal_ratio * base if goal else None,
            }
        )
    figures.append(
        {
            "benchmark": benchmark,
            "figure": f"{first} peak memory above start",
            "unit": "MB",
            "value": results[first]["peak_mb"],
            "baseline": results[limit]["peak_mb"],
            "baseline_label": limit,
            "ratio": None,
            "goal": "< 200 MB",
            "met": results[first]["peak_mb"] < 200,
        }
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help=RUNS_HELP)
    parser.add_argument("--child")
    parser.add_argument("--target", type=int)
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.target)
        return
    django_setup()
    names = ("purge_run", "raw_delete", "orm_delete", "purge_run_one_statement_batches")
    results = methods_run(__file__, names, lambda: prepare(messages=args.messages)[0], runs=args.runs)
    figures = report(
        f"purge of {args.messages} held messages among {OTHER_HOSTINGS} other hostings' messages, best of {args.runs}",
        results,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
