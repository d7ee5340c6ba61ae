"""Benchmark of the 72 h expiry on PostgreSQL: expiry.held_expire beside one raw DELETE (the
limit) and the naive ORM delete, with 10 % of N held messages due, among other hostings' messages.

    createdb -h 127.0.0.1 -U postgres bench_portal
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_portal .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_portal \
        .venv/bin/python bench/expiry.py [--messages 1000000] [--runs 3]

Each run of a method has fresh rows (VACUUM ANALYZE, CHECKPOINT); the methods take turns, and the
fastest of each method's runs is reported (one run of a delete varies up to 3× on a shared disk).
"""

import argparse
import json
import sys
from pathlib import Path

from purge import OTHER_HOSTINGS, RUNS_HELP, child, django_setup, hostings, insert_messages, methods_run, report, settle


def prepare(*, messages: int) -> int:
    """N held messages of the first hosting, 10 % of them due; others' held (not due) and sent ones."""
    from django.db import connection

    target, *others = hostings(1 + OTHER_HOSTINGS)
    due = messages // 10
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE mailqueue_message, mailqueue_event, mailqueue_dailycounter")
        cursor.execute("UPDATE mailqueue_mailservice SET state = 'blocked', block_reason = 'customer'")
        insert_messages(
            cursor, hosting_id=target, count=due, status="held", held_until_sql="now() - interval '1 minute'"
        )
        insert_messages(
            cursor, hosting_id=target, count=messages - due, status="held", held_until_sql="now() + interval '1 hour'"
        )
        for other in others:
            insert_messages(
                cursor,
                hosting_id=other,
                count=max(1, messages // 10),
                status="held",
                held_until_sql="now() + interval '1 hour'",
            )
            insert_messages(cursor, hosting_id=other, count=max(1, messages // 100), status="sent")
    settle()
    return target


def method(name: str, target: int) -> int:
    from django.db import connection
    from django.utils import timezone

    from mailqueue import expiry
    from mailqueue.models import Message

    if name == "held_expire":
        return sum(expiry.held_expire().values())
    if name == "raw_delete":
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM mailqueue_message WHERE status = 'held' AND held_until <= now()")
            return cursor.rowcount
    if name == "orm_delete":
        return Message.objects.filter(status="held", held_until__lte=timezone.now()).delete()[0]
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help=RUNS_HELP)
    parser.add_argument("--child")
    parser.add_argument("--target", type=int)
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.target, methods=method)
        return
    django_setup()
    names = ("held_expire", "raw_delete", "orm_delete")
    results = methods_run(__file__, names, lambda: prepare(messages=args.messages), runs=args.runs)
    title = f"expiry of {args.messages // 10} due among {args.messages} held messages, best of {args.runs}"
    figures = report(title, results, benchmark="expiry")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
