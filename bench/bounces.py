"""Bounces (SPEC §10.1): how fast the bounce door takes delivery reports in, beside the SMTP door's
submission rate, and what the hourly bounce ratio of the abuse check costs on a big messages table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bounces.py
    … bench/bounces.py --clients 8 --messages 2000 --rows 1000000

1. Intake: N client processes each open one SMTP connection to the bounce door (`runbounced`, in
   its own process) and send M reports over it: `MAIL FROM:<>`, `RCPT TO:<return path>`, DATA a
   Postfix DSN (5.1.1, tests/fixtures/bounces/postfix-hard.eml) about a distinct delivered message
   created beforehand. The baseline is the SMTP door's submission rate with the same N × M
   (bench/submission.py's clients), measured in the same run. Goal: intake ≥ 0.5 × submission.
   Afterwards every report must have become exactly one DeliveryError of kind "dsn".
2. Scale: --rows messages over 1,000 hostings, most finished long ago, 5 % in the last hour
   (a tenth of those failed, a fifth of those only because suppressed); `abuse.abuse_check()`
   (best of 3), its bounce query timed apart, beside a raw `GROUP BY hosting_id` over the hour's
   finished messages (best of 3). Goal: the bounce query within 2× the raw one; beyond that its
   EXPLAIN (ANALYZE, BUFFERS) is printed.

PostgreSQL only. Works in a database of its own, bench_bounces_<id> on DATABASE_URL's server,
created and migrated here and dropped at the end, even on failure. With REDIS_URL the SMTP door's
tasks go to Redis (a throwaway queue, purged). Like `make bench`, DEBUG=false and LOG_LEVEL=WARNING
unless set; VAR_DIR (the doors' logs, any filesystem broker) is a temporary directory unless set.
"""

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from submission import MESSAGE, clients_measure, server_start, server_stop

BASE_DIR = Path(__file__).resolve().parent.parent
INTAKE_GOAL = 0.5  # intake / submission
QUERY_GOAL = 2.0  # bounce query / raw GROUP BY
RUNS = 3
HOSTINGS = 1_000
SAMPLE = "postfix-hard"


# --- intake ---------------------------------------------------------------------------------------


def intake_client_run(path: str, port: int, start_at: float) -> tuple[int, list[str]]:
    """One client: its reports (a JSON file of [return path, DSN]) over one connection, null sender.
    Returns how many were accepted (250) and the replies of those answered 4xx (not retried)."""
    items = json.loads(Path(path).read_text())
    accepted, temporary = 0, []
    while time.time() < start_at:
        time.sleep(0.001)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for return_path, raw in items:
            try:
                refused = client.sendmail("<>", [return_path], raw.encode("latin-1"))
            except smtplib.SMTPDataError as error:
                if not 400 <= error.smtp_code < 500:
                    raise
                temporary.append(f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}")
                continue
            if refused:
                raise RuntimeError(f"refused: {refused}")
            accepted += 1
    return accepted, temporary


def intake_measure(*, port: int, paths: list[Path]) -> tuple[float, list[str]]:
    """Reports accepted per second for one client process per file, wall clock from a common start
    (as submission.clients_measure, whose clients AUTH and send one fixed message), and the 4xx replies."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(paths)) as pool:
        start_at = time.time() + 2  # every process is up and has read its file before the clock starts
        results = [pool.apply_async(intake_client_run, (str(path), port, start_at)) for path in paths]
        outcomes = [result.get(timeout=600) for result in results]
        elapsed = time.time() - start_at
    return sum(accepted for accepted, _temporary in outcomes) / elapsed, [
        reply for _accepted, temporary in outcomes for reply in temporary
    ]


def profiler_attach(pid: int, path: str, *, gil: bool) -> subprocess.Popen:
    """py-spy sampling every thread of the bounce door, waits included (or, `gil`, only the thread
    holding the GIL: where the Python CPU goes), collapsed stacks (one line per stack) to `path`."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--threads", "--gil" if gil else "--idle", "--rate", "250"]
    command += ["--format", "raw"]
    process = subprocess.Popen([*command, "--output", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the clients start
    return process


def profiler_stop(process: subprocess.Popen, path: str) -> None:
    process.send_signal(signal.SIGINT)
    try:
        _out, errors = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, errors = process.communicate()
    print(f"[intake] bounce door profile: {path} (py-spy exit {process.returncode}) {errors.decode()[-300:]}")


def delivered_messages_create(*, hosting_ids: list[int], count: int) -> list[tuple[str, bytes]]:
    """`count` messages of one recipient each, delivered 20 minutes ago, in turn of these hostings;
    the (return path, DSN) of each."""
    from django.db import connection

    from mailqueue.return_path import return_path_for
    from tests.bounce_samples import bounce_sample

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject, size,
                raw, status, created_at, attempts, completed_at, last_reply, door, spam_rules)
            SELECT (%s::bigint[])[1 + n %% %s], '<intake-' || n || '@shop.bench.example>',
                   'www-data@shop.bench.example',
                   jsonb_build_array(jsonb_build_object('address', 'customer' || n || '@dest.example',
                                                        'status', 'sent', 'code', 250, 'reply', 'OK')),
                   1, 'Order ' || n, 2048, NULL, 'sent', now() - interval '21 minutes', 1,
                   now() - interval '20 minutes', '250 OK', 'smtp', ''
            FROM generate_series(1, %s) AS n
            RETURNING id, hosting_id, message_id, recipients -> 0 ->> 'address', subject
            """,
            [hosting_ids, len(hosting_ids), count],
        )
        rows = cursor.fetchall()
    items = []
    for pk, hosting_id, message_id, address, subject in sorted(rows):
        return_path = return_path_for(hosting_id=hosting_id, message_pk=pk, index=0)
        raw = bounce_sample(SAMPLE, return_path=return_path, recipient=address, message_id=message_id, subject=subject)
        items.append((return_path, raw))
    return items


def intake_bench(args, *, run_id: str, work_dir: Path) -> tuple[list[dict], list[str]]:
    from django.conf import settings
    from django.db.models import F

    from hosting.models import Customer
    from mailqueue.models import DeliveryError, ErrorKind, Message, Suppression, UnattributedBounce
    from mailqueue.provisioning import hosting_provision

    total = args.clients * args.messages
    log_dir = Path(settings.VAR_DIR)
    customer = Customer.objects.create(slug="bench", name="Bench", contact_email="bench@example.net")
    sender, password = hosting_provision(service_name=f"submit-{run_id}.bench.example", customer=customer)
    bounced = [
        hosting_provision(service_name=f"bounced-{index}-{run_id}.bench.example", customer=customer)[0]
        for index in range(args.intake_hostings)
    ]

    print(
        f"[intake] creating {total} delivered messages of {len(bounced)} hosting(s) and a {SAMPLE} DSN for each…",
        flush=True,
    )
    items = delivered_messages_create(hosting_ids=[hosting.pk for hosting in bounced], count=total)
    paths = []
    for index in range(args.clients):
        path = work_dir / f"intake-client-{index}.json"
        chunk = items[index * args.messages : (index + 1) * args.messages]
        path.write_text(json.dumps([[return_path, raw.decode("latin-1")] for return_path, raw in chunk]))
        paths.append(path)
    dsn_bytes = len(items[0][1])

    threads = ["--db-threads", str(args.db_threads)]
    print(f"[intake] submission: {args.clients} clients x {args.messages} messages through the SMTP door…", flush=True)
    door_command = [sys.executable, "manage.py", "runsmtpd", "--addr", "127.0.0.1:0", *threads]
    door, door_port = server_start(door_command, dict(os.environ), log_dir / "bench-bounces-smtpd.log")
    try:
        submission_rate = clients_measure(
            port=door_port, user=sender.service_name, password=password, clients=args.clients, messages=args.messages
        )
    finally:
        server_stop(door)
    stored = Message.objects.filter(hosting=sender).count()

    print(f"[intake] bounces: {args.clients} clients x {args.messages} DSNs through the bounce door…", flush=True)
    bounce_command = [sys.executable, "manage.py", "runbounced", "--addr", "127.0.0.1:0", *threads]
    door, door_port = server_start(bounce_command, dict(os.environ), log_dir / "bench-bounces-bounced.log")
    spy = profiler_attach(door.pid, args.profile, gil=args.profile_gil) if args.profile else None
    try:
        intake_rate, temporary = intake_measure(port=door_port, paths=paths)
    finally:
        if spy is not None:
            profiler_stop(spy, args.profile)
        server_stop(door)

    dsn_errors = DeliveryError.objects.filter(kind=ErrorKind.DSN)
    count = dsn_errors.count()
    ours = (
        dsn_errors.filter(hosting__in=bounced, message__hosting_id=F("hosting_id"))
        .values("message_id")
        .distinct()
        .count()
    )
    failed = Message.objects.filter(hosting__in=bounced, status="failed").count()
    suppressed = Suppression.objects.filter(hosting__in=bounced).count()
    unattributed = UnattributedBounce.objects.count()
    ratio = intake_rate / submission_rate
    problems = []
    if stored != total:
        problems.append(f"the SMTP door stored {stored} of {total} messages")
    if not count == ours == total:
        problems.append(f"{total} DSNs became {count} DeliveryErrors of kind dsn, on {ours} distinct messages")
    if unattributed:
        problems.append(f"{unattributed} reports unattributed")
    if temporary:
        replies = sorted(set(temporary))[:3]
        problems.append(f"{len(temporary)} reports answered 4xx (not recorded), e.g. {replies}; see the door's log")

    print(
        f"{args.clients} clients x {args.messages} messages, one connection each, --db-threads {args.db_threads}, "
        f"reports about {len(bounced)} hosting(s)' messages"
    )
    print(f"{'door':<48}{'messages/s':>12}")
    print(f"{'SMTP door, submission (' + str(len(MESSAGE)) + ' bytes each)':<48}{submission_rate:>12.0f}")
    print(f"{'bounce door, DSN intake (' + str(dsn_bytes) + ' bytes each)':<48}{intake_rate:>12.0f}")
    print(f"{'ratio intake / submission':<48}{ratio:>12.2f}   (goal >= {INTAKE_GOAL})")
    print(
        f"check: {count} DeliveryErrors of kind dsn for {total} DSNs ({ours} distinct messages), {failed} messages "
        f"failed, {suppressed} suppressions, {unattributed} unattributed, {len(temporary)} answered 4xx, "
        f"{stored}/{total} submissions stored"
    )
    figure = {
        "benchmark": "bounces",
        "figure": f"DSN intake, {args.clients} clients x {args.messages} reports (recorded {count}/{total})",
        "unit": "msg/s",
        "value": intake_rate,
        "baseline": submission_rate,
        "baseline_label": "SMTP door submission, same clients",
        "ratio": ratio,
        "goal": f"ratio >= {INTAKE_GOAL}",
        "met": ratio >= INTAKE_GOAL and not problems,
        "recorded": count,
        "expected": total,
        "unattributed": unattributed,
    }
    return [figure], problems


# --- the bounce ratio at scale --------------------------------------------------------------------

FILL_SQL = [
    "TRUNCATE hosting_customer, hosting_hosting, mailqueue_unattributedbounce CASCADE",
    "SELECT setseed(0.42)",
    """INSERT INTO hosting_customer (slug, name, contact_email, language, created_at)
       SELECT 'customer-' || i, 'Customer ' || i, 'contact' || i || '@bench.example', 'fr', now()
       FROM generate_series(1, GREATEST(%(hostings)s / 10, 1)) AS i""",
    """INSERT INTO hosting_hosting (service_name, customer_id, plan, smtp_password_hash, created_at)
       SELECT 'site-' || i || '.bench.example',
              (SELECT min(id) FROM hosting_customer) + (i %% GREATEST(%(hostings)s / 10, 1)),
              (ARRAY['starter', 'perso', 'pro', 'performance'])[1 + i %% 4], '', now() - interval '1 year'
       FROM generate_series(1, %(hostings)s) AS i""",
    # All active for a month (the hour is not cut short), a limit that never binds (no `rate`
    # block from the skewed hour below), one in fifty forced.
    """INSERT INTO mailqueue_mailservice (hosting_id, state, block_reason, report_recipient, hourly_limit_override,
                                          state_changed_at, purge_deleted, forced, support_only,
                                          allowed_sender_domains)
       SELECT id, 'active', '', '', 100000, now() - interval '30 days', 0, id %% 50 = 0, false, '[]'::jsonb
       FROM hosting_hosting""",
    # Bucket by n %% 100: 0-4 finished within the last 50 minutes (skewed towards the first
    # hostings), 5-89 finished between 2 hours and 30 days ago, 90-99 still queued, deferred or
    # held (with their content). One finished message in ten failed.
    """INSERT INTO mailqueue_message (hosting_id, message_id, sender, recipients, recipient_count, subject, size, raw,
                                      status, created_at, held_at, held_until, next_attempt_at, attempts,
                                      completed_at, last_reply, door, spam_rules)
       SELECT m.hosting_id, '<bench-' || m.n || '@bench.example>', 'www-data@bench.example',
              jsonb_build_array(jsonb_build_object(
                  'address', 'user' || (m.n %% 50000) || '@dest.example',
                  'status', CASE m.status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
                  'code', CASE m.status WHEN 'sent' THEN 250 WHEN 'failed' THEN 550 END,
                  'reply', CASE m.status WHEN 'sent' THEN '250 OK' WHEN 'failed' THEN '550 5.1.1 User unknown'
                                ELSE '' END)),
              1, 'Message ' || m.n, 2048,
              CASE WHEN m.status IN ('sent', 'failed') THEN NULL ELSE convert_to(repeat('x', 1000), 'UTF8') END,
              m.status, m.created_at,
              CASE WHEN m.status = 'held' THEN m.created_at END,
              CASE WHEN m.status = 'held' THEN m.created_at + interval '72 hours' END,
              CASE WHEN m.status IN ('queued', 'deferred') THEN now() + interval '5 minutes' END,
              CASE WHEN m.status = 'queued' THEN 0 ELSE 1 END,
              m.completed_at,
              CASE m.status WHEN 'sent' THEN '250 OK' WHEN 'failed' THEN '550 5.1.1 User unknown' ELSE '' END,
              'smtp', ''
       FROM (
           SELECT s.n, s.completed_at,
                  CASE WHEN s.completed_at IS NULL THEN s.completed_at_or_created
                       ELSE s.completed_at - random() * interval '5 minutes' END AS created_at,
                  CASE WHEN s.completed_at IS NULL
                       THEN (ARRAY['queued', 'deferred', 'held'])[1 + s.n %% 3]
                       WHEN (s.n / 100) %% 10 = 0 THEN 'failed' ELSE 'sent' END AS status,
                  h.first_id + LEAST(h.total - 1, floor(h.total * CASE WHEN s.n %% 100 < 5 THEN power(random(), 2)
                                                                      ELSE random() END)::int) AS hosting_id
           FROM (
               SELECT n,
                      CASE WHEN n %% 100 < 5 THEN now() - random() * interval '50 minutes'
                           WHEN n %% 100 < 90 THEN now() - interval '2 hours' - random() * interval '30 days' END
                          AS completed_at,
                      now() - interval '1 hour' - random() * interval '5 hours' AS completed_at_or_created
               FROM generate_series(1, %(rows)s) AS n
           ) AS s,
           (SELECT min(id) AS first_id, count(*)::int AS total FROM hosting_hosting) AS h
       ) AS m""",
    # One error per failed message: relay refusals and reports; in the last hour a fifth are
    # recipients skipped because suppressed (they do not count in the ratio).
    """INSERT INTO mailqueue_deliveryerror (hosting_id, message_id, created_at, recipient, reply, subject, kind,
                                            permanent, status)
       SELECT hosting_id, id, completed_at, recipients -> 0 ->> 'address', last_reply, subject,
              CASE WHEN completed_at >= now() - interval '1 hour' AND id %% 5 = 0 THEN 'suppressed'
                   WHEN id %% 2 = 0 THEN 'dsn' ELSE 'relay' END,
              true, '5.1.1'
       FROM mailqueue_message WHERE status = 'failed'""",
]

RAW_SQL = """
    SELECT hosting_id, count(*) FROM mailqueue_message
    WHERE completed_at >= now() - interval '1 hour' AND status IN ('sent', 'failed')
    GROUP BY hosting_id
"""


class QueryTimer:
    """A connection.execute_wrapper noting each statement's SQL, parameters and duration."""

    def __init__(self):
        self.queries: list[tuple[str, tuple, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, params, time.perf_counter() - started))


def is_bounce_query(sql: str) -> bool:
    return "mailqueue_deliveryerror" in sql and '"forced"' in sql


def query_label(sql: str) -> str:
    """Which of abuse_check()'s queries this is."""
    if is_bounce_query(sql):
        return "bounce"
    if "mailqueue_complaint" in sql:
        return "complaints"
    if '"created_at" >=' in sql:
        return "rate"
    if "MIN(" in sql:
        return "lowest limit"
    return sql.split()[0].lower()


def fill(rows: int) -> dict:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in FILL_SQL:
            cursor.execute(statement, {"hostings": HOSTINGS, "rows": rows})
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE status IN ('sent', 'failed') AND completed_at >= now() - interval '1 hour'),
                   count(*) FILTER (WHERE status = 'failed' AND completed_at >= now() - interval '1 hour'),
                   count(*) FILTER (WHERE status IN ('sent', 'failed')),
                   (SELECT count(*) FROM mailqueue_deliveryerror),
                   (SELECT count(*) FROM mailqueue_deliveryerror WHERE kind = 'suppressed'),
                   (SELECT max(c) FROM (SELECT count(*) AS c FROM mailqueue_message
                                        WHERE completed_at >= now() - interval '1 hour' GROUP BY hosting_id) AS x),
                   pg_size_pretty(pg_total_relation_size('mailqueue_message'))
            FROM mailqueue_message
            """
        )
        recent, recent_failed, finished, errors, suppressed, busiest, size = cursor.fetchone()
    return {
        "seconds": time.perf_counter() - started,
        "recent": recent,
        "recent_failed": recent_failed,
        "finished": finished,
        "errors": errors,
        "suppressed": suppressed,
        "busiest": busiest,
        "size": size,
    }


def services_reactivate() -> None:
    """Undo what an automatic block changed, so every run sees the same rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mailqueue_mailservice SET state = 'active', block_reason = '', "
            "state_changed_at = now() - interval '30 days' WHERE state <> 'active'"
        )


def scale_bench(args) -> list[dict]:
    from django.db import connection

    from mailqueue import abuse

    print(f"[scale] filling {args.rows:,} messages over {HOSTINGS:,} hostings…", flush=True)
    facts = fill(args.rows)
    print(
        f"[scale] filled in {facts['seconds']:.0f} s ({facts['size']}): {facts['finished']:,} finished, of which "
        f"{facts['recent']:,} in the last hour ({facts['recent_failed']:,} failed, busiest hosting "
        f"{facts['busiest']:,}); {facts['errors']:,} delivery errors, {facts['suppressed']:,} of kind suppressed",
        flush=True,
    )
    print(f"[scale] abuse_check() and the raw GROUP BY, best of {RUNS} each…", flush=True)
    check_times, bounce_times, blocked_runs, best_queries = [], [], [], []
    bounce_sql = None
    for _run in range(RUNS):
        timer = QueryTimer()
        started = time.perf_counter()
        with connection.execute_wrapper(timer):
            blocked = abuse.abuse_check()
        check_times.append(time.perf_counter() - started)
        if check_times[-1] == min(check_times):
            best_queries = [(query_label(sql), seconds) for sql, _params, seconds in timer.queries]
        bounce = [(sql, params, seconds) for sql, params, seconds in timer.queries if is_bounce_query(sql)]
        if len(bounce) != 1:
            raise RuntimeError(f"expected one bounce query in abuse_check(), saw {len(bounce)}")
        bounce_sql = bounce[0][:2]
        bounce_times.append(bounce[0][2])
        if blocked:
            blocked_runs.append(blocked)
            services_reactivate()
    raw_times = []
    with connection.cursor() as cursor:
        for _run in range(RUNS):
            started = time.perf_counter()
            cursor.execute(RAW_SQL)
            raw_rows = cursor.fetchall()
            raw_times.append(time.perf_counter() - started)

    check_ms, bounce_ms, raw_ms = (min(times) * 1000 for times in (check_times, bounce_times, raw_times))
    bounce_ratio, check_ratio = bounce_ms / raw_ms, check_ms / raw_ms
    title = f"{args.rows:,} messages, {HOSTINGS:,} hostings, {facts['recent']:,} finished in the last hour"
    print(title)
    print(f"{'query (best of ' + str(RUNS) + ')':<52}{'ms':>10}{'ratio':>8}")
    print(f"{'abuse_check(), the whole call':<52}{check_ms:>10.1f}{check_ratio:>8.2f}")
    print(f"{'abuse_check(), its bounce query':<52}{bounce_ms:>10.1f}{bounce_ratio:>8.2f}   (goal <= {QUERY_GOAL})")
    print(f"{'raw SELECT hosting_id, count(*) … GROUP BY (' + str(len(raw_rows)) + ' rows)':<52}{raw_ms:>10.1f}")
    print(
        "abuse_check()'s queries in its best run: "
        + ", ".join(f"{label} {seconds * 1000:.1f} ms" for label, seconds in best_queries)
    )
    if blocked_runs:
        print(f"abuse_check() blocked (set active again after each run): {blocked_runs[0]}")
    else:
        print("abuse_check() blocked no hosting (no threshold crossed)")
    if bounce_ratio > QUERY_GOAL:
        sql, params = bounce_sql
        with connection.cursor() as cursor:
            print(f"\nThe bounce query is {bounce_ratio:.1f}x the raw one. EXPLAIN (ANALYZE, BUFFERS) of it:")
            print(cursor.mogrify(sql, params) if hasattr(cursor, "mogrify") else sql)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print("\n".join(row[0] for row in cursor.fetchall()))
            print("\nand of the raw one:")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + RAW_SQL)
            print("\n".join(row[0] for row in cursor.fetchall()))
    blocked_note = f", blocked {len(blocked_runs[0])}" if blocked_runs else ""
    common = {
        "benchmark": "bounces",
        "unit": "ms",
        "baseline": raw_ms,
        "baseline_label": "raw GROUP BY hosting_id over the hour",
    }
    return [
        {
            **common,
            "figure": f"abuse_check() bounce query ({title}{blocked_note})",
            "value": bounce_ms,
            "ratio": bounce_ratio,
            "goal": f"<= {QUERY_GOAL:g}x",
            "met": bounce_ratio <= QUERY_GOAL,
            "blocked": [f"hosting {hosting_id}: {reason}" for hosting_id, reason in (blocked_runs or [[]])[0]],
        },
        {
            **common,
            "figure": f"abuse_check() whole call, 4 queries ({args.rows:,} messages)",
            "value": check_ms,
            "ratio": check_ratio,
            "goal": "",
            "met": None,
        },
    ]


# --- the database of its own ------------------------------------------------------------------------


def server_sql(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(statement)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="intake: client processes")
    parser.add_argument("--messages", type=int, default=200, help="intake: messages (reports) per client")
    parser.add_argument("--rows", type=int, default=100_000, help="scale: messages in the table")
    parser.add_argument("--db-threads", type=int, default=8, help="both doors' database threads")
    parser.add_argument("--profile-gil", action="store_true", help="--profile: only the thread holding the GIL")
    parser.add_argument("--intake-hostings", type=int, default=1, help="intake: hostings the reports are about")
    parser.add_argument("--only", choices=["intake", "scale"], help="run one part only")
    parser.add_argument("--profile", metavar="PATH", help="intake: py-spy samples of the bounce door, to PATH")
    parser.add_argument("--database", help="its database's name, bench_bounces… (default: bench_bounces_<random>)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()
    if min(args.clients, args.messages, args.rows, args.db_threads, args.intake_hostings) < 1:
        parser.error("--clients, --messages, --rows, --db-threads and --intake-hostings must be at least 1")
    if args.database is not None and not re.fullmatch(r"bench_bounces\w*", args.database):
        parser.error("--database must be a name starting with bench_bounces (letters, digits, _)")

    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        sys.exit(
            "bench/bounces.py measures PostgreSQL: set DATABASE_URL=postgres://… (any database of the server; "
            "the bench creates and drops a database of its own there)"
        )
    run_id = uuid.uuid4().hex[:8]
    database = args.database or f"bench_bounces_{run_id}"
    work_dir = Path(tempfile.mkdtemp(prefix="bench-bounces-"))
    sys.path.insert(0, str(BASE_DIR))
    os.environ.update(
        {
            "DATABASE_URL": urlunsplit(urlsplit(server_url)._replace(path=f"/{database}")),
            "CELERY_QUEUE_PREFIX": f"bench-bounces-{run_id}-",  # the SMTP door's tasks: a throwaway queue
        }
    )
    os.environ.pop("CELERY_DELIVERY_QUEUE", None)  # a separate delivery queue would escape the purge
    os.environ.setdefault("VAR_DIR", str(work_dir / "var"))
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

    print(f"bench/bounces.py: database {database} on {urlsplit(server_url).hostname}", flush=True)
    server_sql(server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    server_sql(server_url, f"CREATE DATABASE {database}")
    figures, problems, django_ready, finished = [], [], False, False
    try:
        import django

        django.setup()
        django_ready = True
        from django.core.management import call_command

        print(f"migrating {database}…", flush=True)
        call_command("migrate", "--noinput", verbosity=0)
        if args.only in (None, "intake"):
            intake_figures, problems = intake_bench(args, run_id=run_id, work_dir=work_dir)
            figures += intake_figures
        if args.only in (None, "scale"):
            figures += scale_bench(args)
        finished = True
    finally:
        if django_ready:
            from django.db import connections

            from portal.celery import app as celery_app

            if args.only in (None, "intake"):
                try:
                    queue = os.environ["CELERY_QUEUE_PREFIX"] + "portal"
                    with celery_app.connection_for_write() as broker:
                        channel = broker.default_channel
                        channel.queue_purge(queue)
                        if hasattr(channel, "keyprefix_binding_permanent"):  # Redis: the queue's bindings too
                            channel.client.delete(
                                channel.keyprefix_queue % queue, channel.keyprefix_binding_permanent % queue
                            )
                except Exception as error:  # the queue may never have been declared
                    print(f"(queue purge: {error})")
            connections.close_all()
        server_sql(server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        print(f"dropped {database}", flush=True)
        if finished and not problems:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"kept the doors' logs in {os.environ['VAR_DIR']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
