"""Pages and API at scale (issue [H]): the Scripts e-mail page, the hosting list, GET …/email,
GET …/bounces, the delivery log (page 1, a page ~1,000 pages deep by its cursor, failed e-mails
only) and the service's history, timed on an almost empty database, then again after loading one
hosting with --messages messages, --errors delivery errors and a tenth as many events among
--hostings hostings. Prints each figure beside its baseline with the ratio (goal: within 2×) and
the query counts (goal: equal); then the peak memory (tracemalloc) of reading the log's whole CSV
export, beside the same on the almost empty database and on the failed e-mails only, an eighth of
the rows (goal: flat, within 2× of the eighth).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/pages.py
    … bench/pages.py --messages 1000000 --errors 100000 --hostings 10000

It works in its own database (default bench_pages), created and migrated on the fly.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
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
    os.environ["HTTPS"] = "false"  # the test client speaks plain HTTP: no redirect to TLS to time instead
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
    from mailqueue.message_log import PAGE_SIZE, cursor_encode
    from mailqueue.models import Message
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
    log = "/hostings/big.example/emails/messages/"
    # The baseline renders full pages too: its log, filtered log and history each have a page of rows.
    first_page_end, seeded = _seed_pages(hosting, size=PAGE_SIZE)
    baseline_label = f"1 hosting, {seeded} messages"
    requests = {
        "Scripts e-mail page": ("/hostings/big.example/emails/", {}),
        "hosting list": ("/", {}),
        "GET …/email": ("/1.0/hosting/web/big.example/email", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        "GET …/bounces": ("/1.0/hosting/web/big.example/email/bounces", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        "delivery log, page 1": (log, {}),
        # On the almost empty database the second page; at scale, ~1,000 pages deep (below).
        "delivery log, deep page": (f"{log}?after={cursor_encode(first_page_end)}", {}),
        "delivery log, failed": (f"{log}?status=failed", {}),
        "history page": ("/hostings/big.example/emails/history/", {}),
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

    print(f"baseline: {baseline_label} ({connection.vendor})", flush=True)
    baseline = measure()
    export_baseline = _export_peak(client, "/hostings/big.example/emails/messages/export.csv")
    print(f"loading {args.hostings} hostings, {args.messages} messages, {args.errors} errors…", flush=True)
    _load(connection, hosting_id=hosting.pk, args=args)
    mail_service_block(hosting=hosting, actor=Actor.system(), reason="spam")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    newest = Message.objects.filter(hosting=hosting).order_by("-created_at", "-id")
    pages_deep = min(1000, args.messages // PAGE_SIZE - 1)
    deep = newest.only("created_at")[pages_deep * PAGE_SIZE]  # the cursor a reader has after that many pages
    requests["delivery log, deep page"] = (f"{log}?after={cursor_encode(deep)}", {})
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
                "baseline_label": baseline_label,
                "ratio": seconds / base_seconds,
                "goal": "<= 2x, same query count",
                "met": seconds / base_seconds <= 2 and queries == base_queries,
                "queries": queries,
                "baseline_queries": base_queries,
            }
        )
    figures += _export_figures(client, args=args, baseline=export_baseline, baseline_label=baseline_label)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def _seed_pages(hosting, *, size: int):
    """Three pages of messages (a page and one of them failed, older than the rest) and three of
    events, a day ago; returns the last message of the log's first page and how many messages."""
    from django.utils import timezone

    from mailqueue.models import Event, Message

    day_ago = timezone.now() - datetime.timedelta(days=1)
    statuses = ["held", "sent", "queued", "deferred", "sent"]
    Message.objects.bulk_create(
        Message(
            hosting=hosting,
            message_id=f"<seed-{n}@big.example>",
            sender="www@big.example",
            recipients=[{"address": "r@example.org", "status": "pending", "code": None, "reply": ""}],
            recipient_count=1,
            subject=f"Seed {n}",
            size=1000,
            status="failed" if n > 2 * size else statuses[n % len(statuses)],
            created_at=day_ago - datetime.timedelta(seconds=n),
        )
        for n in range(3 * size + 1)
    )
    Event.objects.bulk_create(
        Event(
            hosting=hosting,
            action="delete_messages",
            actor_kind="customer",
            actor_label="bench",
            message_count=n,
            created_at=day_ago - datetime.timedelta(seconds=n),
        )
        for n in range(3 * size)
    )
    return Message.objects.filter(hosting=hosting).order_by("-created_at", "-id")[size - 1], 3 * size + 1


def _export_peak(client, url: str) -> tuple[float, int, float]:
    """(peak KiB, lines, seconds) of reading `url`'s streamed CSV to the end, traced from the request on."""
    tracemalloc.start()
    started = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200 and response.streaming, url
    lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
    seconds = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024, lines, seconds


def _export_figures(client, *, args, baseline: tuple[float, int, float], baseline_label: str) -> list[dict]:
    """The log's CSV export: its peak memory over all of the hosting's rows, beside the almost empty
    database, and beside the failed e-mails only (an eighth of the rows): flat is within 2× of that."""
    url = "/hostings/big.example/emails/messages/export.csv"
    full = _export_peak(client, url)
    eighth = _export_peak(client, f"{url}?status=failed")
    print(f"\n{'CSV export':<22} {'peak':>10} {'lines':>9} {'time':>9}")
    for label, (peak, lines, seconds) in (("almost empty", baseline), ("failed only", eighth), ("all rows", full)):
        print(f"{label:<22} {peak:>7.0f}KiB {lines:>9} {seconds:>8.2f}s")
    figure = f"log CSV export, peak memory ({full[1]} lines, {args.messages} messages)"
    return [
        {
            "benchmark": "pages",
            "figure": figure,
            "unit": "KiB",
            "value": full[0],
            "baseline": baseline[0],
            "baseline_label": f"{baseline_label} ({baseline[1]} lines)",
            "ratio": full[0] / baseline[0],
            "goal": "flat (see the next line)",
            "met": None,
        },
        {
            "benchmark": "pages",
            "figure": figure,
            "unit": "KiB",
            "value": full[0],
            "baseline": eighth[0],
            "baseline_label": f"failed e-mails only ({eighth[1]} lines)",
            "ratio": full[0] / eighth[0],
            "goal": "<= 2x",
            "met": full[0] / eighth[0] <= 2,
        },
    ]


def _load(connection, *, hosting_id: int, args) -> None:
    """Bulk rows with generate_series: other hostings, then one hosting's messages, errors and events."""
    from hosting.models import Hosting
    from mailqueue.models import MailService

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
        # Their mail services through the ORM: every column with its model default, whatever is added later.
        missing = Hosting.objects.filter(mail_service__isnull=True).values_list("id", flat=True)
        MailService.objects.bulk_create([MailService(hosting_id=pk) for pk in missing], batch_size=5000)
        statuses = "(ARRAY['held','held','held','sent','sent','failed','queued','deferred'])[1 + n %% 8]"
        cursor.execute(
            f"""
            INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject, size,
                raw, status, created_at, held_at, held_until, next_attempt_at, attempts, completed_at, last_reply,
                door, spam_rules)
            SELECT %s, '<' || n || '@big.example>', 'www@big.example',
                   '[{{"address": "r@example.org", "status": "pending", "code": null, "reply": ""}}]'::jsonb, 1,
                   'Subject ' || n, 1000, NULL, {statuses},
                   now() - (n || ' seconds')::interval, now(), now() + interval '72 hours', now(), 0, NULL, '',
                   'smtp', ''
            FROM generate_series(1, %s) AS n
            """,
            [hosting_id, args.messages],
        )
        cursor.execute(
            """
            INSERT INTO mailqueue_deliveryerror (hosting_id, message_id, created_at, recipient, reply, subject, kind,
                                                 permanent, status)
            SELECT %s, NULL, now() - (n || ' seconds')::interval, 'r' || n || '@example.org',
                   '550 5.1.1 User unknown', 'Subject', 'relay', true, '5.1.1'
            FROM generate_series(1, %s) AS n
            """,
            [hosting_id, args.errors],
        )
        cursor.execute(
            """
            INSERT INTO mailqueue_event (hosting_id, created_at, action, from_state, to_state, reason, actor_kind,
                                         actor_label, message_count, detail)
            SELECT %s, now() - (n || ' minutes')::interval, (ARRAY['block','unblock','delete_messages'])[1 + n %% 3],
                   '', '', '', 'customer', 'bench', n %% 50, ''
            FROM generate_series(1, %s) AS n
            """,
            [hosting_id, max(1, args.messages // 10)],
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
