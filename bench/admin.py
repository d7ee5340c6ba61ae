"""Operators' admin on big tables: the message and hosting changelists with N messages among H
hostings, beside the same pages on the empty database (the baseline), and their ratio (goal ≤ 2×).

An empty page renders no row, so its ratio also counts the rendering of 100 rows; the second
baseline, one page of rows (100 messages among 100 hostings), isolates the cost of table size.

PostgreSQL only. Works in a database of its own, `bench_admin`, dropped and created again on
each run (next to the server of --server), migrated here, filled with generate_series SQL:

    .venv/bin/python bench/admin.py                                  # 100 000 messages, 1 000 hostings
    .venv/bin/python bench/admin.py --messages 1000000 --hostings 10000
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATABASE = "bench_admin"
GOAL = 2.0

# The pages timed (label, URL). The first two are the goal; the others show filters and search.
PAGES = [
    ("message list", "/admin/mailqueue/message/"),
    ("hosting list", "/admin/hosting/hosting/"),
    ("message list, held", "/admin/mailqueue/message/?status__exact=held"),
    ("message list, page 50", "/admin/mailqueue/message/?p=50"),
    ("message list, by service", "/admin/mailqueue/message/?q=bench-7.example"),
    ("message list, by message-id", "/admin/mailqueue/message/?q=%3Cbench-77%40bench.example%3E"),
    ("hosting list, blocked", "/admin/hosting/hosting/?state=blocked"),
    ("hosting list, spam", "/admin/hosting/hosting/?mail_service__block_reason__exact=spam"),
    ("hosting list, plan pro", "/admin/hosting/hosting/?plan__exact=pro"),
]
GOAL_PAGES = {"message list", "hosting list"}


def database_recreate(server_url: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return server_url.rpartition("/")[0] + "/" + BENCH_DATABASE


FILL_SQL = [
    # customers: one per ten hostings
    """INSERT INTO hosting_customer (slug, name, contact_email, language, created_at)
       SELECT 'customer-' || i, 'Customer ' || i, 'contact' || i || '@bench.example', 'fr', now()
       FROM generate_series(1, GREATEST(%(hostings)s / 10, 1)) AS i""",
    """INSERT INTO hosting_hosting (service_name, customer_id, plan, smtp_password_hash, created_at)
       SELECT 'bench-' || i || '.example',
              (SELECT min(id) FROM hosting_customer) + (i %% GREATEST(%(hostings)s / 10, 1)),
              (ARRAY['starter', 'perso', 'pro', 'performance'])[1 + i %% 4], '', now()
       FROM generate_series(1, %(hostings)s) AS i""",
    # one hosting in twenty blocked (a fifth of those for spam), one in a hundred purging
    """INSERT INTO mailqueue_mailservice (hosting_id, state, block_reason, report_recipient,
                                          state_changed_at, purge_deleted, forced, support_only,
                                          allowed_sender_domains)
       SELECT id,
              CASE WHEN id %% 100 = 0 THEN 'purging' WHEN id %% 20 = 0 THEN 'blocked' ELSE 'active' END,
              CASE WHEN id %% 100 = 0 OR id %% 20 <> 0 THEN ''
                   WHEN id %% 100 = 20 THEN 'spam' ELSE 'customer' END,
              '', now(), 0, false, false, '[]'::jsonb
       FROM hosting_hosting""",
    # messages spread over the hostings and the last 30 days; mostly sent, a few held/queued/failed
    """INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject,
                                      size, status, created_at, attempts, last_reply, door, spam_rules)
       SELECT h.first_id + (i %% h.total),
              '<bench-' || i || '@bench.example>',
              'www-data@bench.example',
              jsonb_build_array(jsonb_build_object('address', 'user' || (i %% 5000) || '@dest.example',
                                                   'status', 'sent', 'code', 250, 'reply', '')),
              1, 'Message ' || i, 2048,
              CASE WHEN i %% 200 = 0 THEN 'held' WHEN i %% 50 = 1 THEN 'failed'
                   WHEN i %% 97 = 2 THEN 'queued' ELSE 'sent' END,
              now() - ((%(messages)s - i) * interval '30 days' / %(messages)s),
              1, '', 'smtp', ''
       FROM generate_series(1, %(messages)s) AS i,
            (SELECT min(id) AS first_id, count(*) AS total FROM hosting_hosting) AS h""",
    "ANALYZE",
]
EMPTY_SQL = "TRUNCATE mailqueue_message, mailqueue_mailservice, hosting_hosting, hosting_customer CASCADE"
ONE_PAGE = {"messages": 100, "hostings": 100}


def fill(connection, sizes: dict[str, int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(EMPTY_SQL)
        for statement in FILL_SQL:
            cursor.execute(statement, sizes)


def time_pages(client, repetitions: int) -> dict[str, float]:
    medians = {}
    for label, url in PAGES:
        response = client.get(url)  # warm-up: connection, caches, plans
        assert response.status_code == 200, (url, response.status_code)
        runs = []
        for _ in range(repetitions):
            started = time.perf_counter()
            response = client.get(url)
            runs.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        medians[label] = statistics.median(runs)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--hostings", type=int, default=1_000)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the bench_admin database afterwards")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = database_recreate(options.server)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["DEBUG"] = "false"
    os.environ["HTTPS"] = "false"  # the test client speaks plain HTTP: no redirect to TLS to time instead
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's host in
    call_command("migrate", verbosity=0)
    superuser = get_user_model().objects.create_superuser("bench", "bench@bench.example", "bench-password-42")
    client = Client()
    client.force_login(superuser)

    print(f"PostgreSQL database {BENCH_DATABASE}; median of {options.repetitions} requests per page")
    baseline = time_pages(client, options.repetitions)
    fill(connection, ONE_PAGE)
    one_page = time_pages(client, options.repetitions)

    started = time.perf_counter()
    fill(connection, {"messages": options.messages, "hostings": options.hostings})
    print(
        f"filled {options.messages} messages among {options.hostings} hostings in {time.perf_counter() - started:.1f} s"
    )
    loaded = time_pages(client, options.repetitions)
    connection.close()

    print(f"{'page':30} {'loaded ms':>10} {'empty ms':>9} {'ratio':>7} {'1 page ms':>10} {'ratio':>7}")
    short, figures = [], []
    for label, _url in PAGES:
        ratio = loaded[label] / baseline[label]
        page_ratio = loaded[label] / one_page[label]
        goal = "" if label not in GOAL_PAGES else ("  ok" if ratio <= GOAL else "  ABOVE GOAL")
        if goal.strip() == "ABOVE GOAL":
            short.append(label)
        print(
            f"{label:30} {loaded[label] * 1000:10.1f} {baseline[label] * 1000:9.1f} {ratio:6.2f}×"
            f" {one_page[label] * 1000:10.1f} {page_ratio:6.2f}×{goal}"
        )
        figures.append(
            {
                "benchmark": "admin",
                "figure": f"{label} ({options.messages} messages, {options.hostings} hostings)",
                "unit": "ms",
                "value": loaded[label] * 1000,
                "baseline": baseline[label] * 1000,
                "baseline_label": "empty database",
                "ratio": ratio,
                "goal": f"<= {GOAL:g}x empty" if label in GOAL_PAGES else "",
                "met": ratio <= GOAL if label in GOAL_PAGES else None,
                "one_page_ms": one_page[label] * 1000,
                "one_page_ratio": page_ratio,
            }
        )
    verdict = "missed: " + ", ".join(short) if short else "met"
    print(f"goal (message and hosting lists within {GOAL:g}× of empty): {verdict}")
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))

    if not options.keep:
        import psycopg

        with psycopg.connect(options.server, autocommit=True) as admin_connection:
            admin_connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
