"""Pages and API at scale (issue [H]): the Scripts e-mail page, the hosting list, GET …/email and
GET …/bounces, timed on an almost empty database, then again after loading one hosting with
--messages messages and --errors delivery errors among --hostings hostings. Prints each figure
beside its baseline with the ratio (goal: within 2×) and the query counts (goal: equal).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/pages.py
    … bench/pages.py --messages 1000000 --errors 100000 --hostings 10000

It works in its own database (default bench_pages), created and migrated on the fly.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        sys.exit("bench/pages.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    return base.rsplit("/", 1)[0] + "/" + name


def _prepare_database(name: str) -> None:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--errors", type=int, default=10_000)
    parser.add_argument("--hostings", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database", default="bench_pages")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()

    _prepare_database(args.database)
    os.environ["DATABASE_URL"] = _database_url(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["AXES_ENABLED"] = "false"
    os.environ["API_THROTTLE_USER"] = "1000000/minute"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from api.services import api_credentials_create
    from hosting.models import Customer
    from hosting.services import membership_add
    from mailqueue.blocking import mail_service_block
    from mailqueue.provisioning import hosting_provision
    from mailqueue.state import Actor

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    customer = Customer.objects.create(slug="bench", name="Bench", contact_email="bench@example.com")
    membership_add(customer=customer, user=user)
    hosting, _password = hosting_provision(service_name="big.example", customer=customer)
    token = api_credentials_create(customer=customer, name="bench").token
    client = Client()
    client.force_login(user)
    requests = {
        "Scripts e-mail page": ("/hostings/big.example/emails/", {}),
        "hosting list": ("/", {}),
        "GET …/email": ("/1.0/hosting/web/big.example/email", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        "GET …/bounces": ("/1.0/hosting/web/big.example/email/bounces", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
    }

    def measure() -> dict:
        results = {}
        for label, (url, headers) in requests.items():
            for _warm in range(3):
                assert client.get(url, **headers).status_code == 200, url
            timings = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                client.get(url, **headers)
                timings.append(time.perf_counter() - started)
            with CaptureQueriesContext(connection) as queries:
                client.get(url, **headers)
            results[label] = (statistics.median(timings), len(queries))
        return results

    print(f"baseline: 1 hosting, 0 messages ({connection.vendor})", flush=True)
    baseline = measure()
    print(f"loading {args.hostings} hostings, {args.messages} messages, {args.errors} errors…", flush=True)
    _load(connection, hosting_id=hosting.pk, args=args)
    mail_service_block(hosting=hosting, actor=Actor.system(), reason="spam")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    loaded = measure()
    print(f"\n{'request':<22} {'at scale':>10} {'baseline':>10} {'ratio':>7} {'queries':>9}")
    figures = []
    for label, (seconds, queries) in loaded.items():
        base_seconds, base_queries = baseline[label]
        print(
            f"{label:<22} {seconds * 1000:>8.1f}ms {base_seconds * 1000:>8.1f}ms "
            f"{seconds / base_seconds:>6.2f}× {queries:>4}/{base_queries:<4}"
        )
        figures.append(
            {
                "benchmark": "pages",
                "figure": f"{label} ({args.messages} messages, {args.errors} errors, {args.hostings} hostings)",
                "unit": "ms",
                "value": seconds * 1000,
                "baseline": base_seconds * 1000,
                "baseline_label": "1 hosting, 0 messages",
                "ratio": seconds / base_seconds,
                "goal": "<= 2x, same query count",
                "met": seconds / base_seconds <= 2 and queries == base_queries,
                "queries": queries,
                "baseline_queries": base_queries,
            }
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def _load(connection, *, hosting_id: int, args) -> None:
    """Bulk rows with generate_series: other hostings, then one hosting's messages and errors."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO hosting_customer (slug, name, contact_email, language, created_at)
            VALUES ('others', 'Other customers', 'others@example.com', 'fr', now())
            """
        )
        cursor.execute(
            """
            INSERT INTO hosting_hosting (service_name, customer_id, plan, smtp_password_hash, created_at)
            SELECT 'h' || n || '.example', (SELECT id FROM hosting_customer WHERE slug = 'others'), 'perso', '', now()
            FROM generate_series(1, %s) AS n
            """,
            [args.hostings - 1],
        )
        cursor.execute(
            """
            INSERT INTO mailqueue_mailservice (hosting_id, state, block_reason, report_recipient, state_changed_at,
                                               purge_deleted)
            SELECT id, 'active', '', '', now(), 0 FROM hosting_hosting WHERE id NOT IN
                (SELECT hosting_id FROM mailqueue_mailservice)
            """
        )
        statuses = "(ARRAY['held','held','held','sent','sent','failed','queued','deferred'])[1 + n %% 8]"
        cursor.execute(
            f"""
            INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject, size,
                raw, status, created_at, held_at, held_until, next_attempt_at, attempts, completed_at, last_reply)
            SELECT %s, '<' || n || '@big.example>', 'www@big.example',
                   '[{{"address": "r@example.org", "status": "pending", "code": null, "reply": ""}}]'::jsonb, 1,
                   'Subject ' || n, 1000, NULL, {statuses},
                   now() - (n || ' seconds')::interval, now(), now() + interval '72 hours', now(), 0, NULL, ''
            FROM generate_series(1, %s) AS n
            """,
            [hosting_id, args.messages],
        )
        cursor.execute(
            """
            INSERT INTO mailqueue_deliveryerror (hosting_id, message_id, created_at, recipient, reply, subject)
            SELECT %s, NULL, now() - (n || ' seconds')::interval, 'r' || n || '@example.org',
                   '550 5.1.1 User unknown', 'Subject'
            FROM generate_series(1, %s) AS n
            """,
            [hosting_id, args.errors],
        )
        cursor.execute(
            """
            INSERT INTO mailqueue_dailycounter (hosting_id, day, sent, errors, held, purged, expired)
            SELECT %s, current_date - n, 900, 100, 0, 0, 0 FROM generate_series(1, 365) AS n
            """,
            [hosting_id],
        )
    print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
