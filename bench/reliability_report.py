"""Run the reliability, security and fault tests and write docs/RELIABILITY.md from their JUnit XML.

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/reliability_report.py

Without DATABASE_URL/REDIS_URL it runs on SQLite and the filesystem broker (PostgreSQL-only tests
are then reported as skipped). The table lists each fault, load or input class, the test that
proves it and its result; the header says when, on which database and broker it ran. Everything from
HAND_WRITTEN_MARKER on (the hardening section: attacks and faults with their figures) is written by
hand and kept as it is when the report is regenerated.
"""

import argparse
import datetime
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
JUNIT_XML = BASE_DIR / "var" / "reliability.xml"
REPORT = BASE_DIR / "docs" / "RELIABILITY.md"
HAND_WRITTEN_MARKER = "<!-- Written by hand from here on: bench/reliability_report.py keeps it. -->"
COMMAND = (
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 "
    ".venv/bin/python bench/reliability_report.py"
)

# What is run: the reliability and security suites, and the fault and race tests of the mail queue.
TARGETS = [
    "tests/reliability",
    "tests/security",
    "tests/mailqueue/test_delivery_workers.py",
    "tests/mailqueue/test_locks.py",
    "tests/mailqueue/test_delivery.py::test_relay_down_defers_and_relay_back_delivers",
    "tests/mailqueue/test_delivery.py::test_a_block_racing_delivery_batches",
    "tests/mailqueue/test_delivery.py::test_stale_claims_are_recovered_to_the_queue_or_the_held_mail",
    "tests/mailqueue/test_delivery.py::test_no_claim_after_a_block_commits",
    "tests/mailqueue/test_purge.py",
    "tests/mailqueue/test_expiry.py",
    "tests/mailqueue/test_group_commit.py",
    "tests/mailqueue/test_message_insert.py",
    # Hardening: limits and faults at the doors.
    "tests/mailqueue/test_rfc5322.py",
    "tests/mailqueue/test_null_sender.py",
    "tests/mailqueue/test_smtp_door_limits.py",
    "tests/mailqueue/test_runsmtpd.py",
    "tests/mailqueue/test_smtpd.py::test_one_tenants_failed_logins_do_not_lock_out_another_tenant_on_the_same_address",
    "tests/mailqueue/test_smtpd.py::test_failures_across_user_names_lock_the_address_at_its_own_cap",
    "tests/api/test_auth.py::test_one_customers_failures_do_not_lock_out_another_customer_on_the_same_address",
    "tests/api/test_auth.py::test_failures_across_credentials_lock_the_address_at_its_own_cap",
    "tests/api/test_throttle_concurrency.py",
]

# Test file (or file::name prefix) → the class of fault, load or input it proves; first match wins.
CLASSES = [
    ("tests/reliability/test_broker_down.py", "fault", "Broker (Redis) down during transitions and submissions"),
    ("tests/reliability/test_cache_down.py", "fault", "Cache and broker (Redis) unreachable or hung under the API"),
    (
        "tests/mailqueue/test_runsmtpd.py::test_a_door_in_two_processes",
        "fault",
        "SMTP door in several processes: a worker killed (SIGKILL)",
    ),
    (
        "tests/mailqueue/test_runsmtpd.py::test_the_per_address_limits",
        "load",
        "SMTP door in several processes: the per-address limits shared out",
    ),
    ("tests/mailqueue/test_runsmtpd.py", "fault", "SMTP door stopped with SIGTERM mid-transaction"),
    ("tests/mailqueue/test_smtp_door_limits.py", "load", "SMTP door: connections per address, idle and session limits"),
    ("tests/api/test_throttle_concurrency.py", "load", "API rate limits under concurrent requests"),
    ("tests/mailqueue/test_smtpd.py", "input", "Failed SMTP logins of one tenant on a shared address"),
    ("tests/api/test_auth.py", "input", "Failed API authentications of one customer on a shared address"),
    ("tests/mailqueue/test_rfc5322.py", "input", "Bare CR / LF (SMTP smuggling) and over-long lines at every door"),
    ("tests/mailqueue/test_null_sender.py", "input", "Null sender at every door"),
    ("tests/reliability/test_db_reconnect.py::test_auth", "fault", "Database error during SMTP AUTH"),
    ("tests/reliability/test_db_reconnect.py", "fault", "PostgreSQL connections terminated under door and worker"),
    ("tests/reliability/test_soak.py", "load", "Concurrent submissions, actions, delivery, purge and expiry"),
    ("tests/reliability/", "input", "Hostile or malformed submissions"),
    ("tests/security/", "input", "Tenant isolation and hostile requests"),
    ("tests/mailqueue/test_delivery_workers.py::test_a_worker_killed", "fault", "Worker killed mid-batch (SIGKILL)"),
    ("tests/mailqueue/test_delivery_workers.py", "fault", "Real worker end to end"),
    ("tests/mailqueue/test_locks.py", "load", "Concurrent transitions and submissions (races)"),
    ("tests/mailqueue/test_delivery.py::test_relay_down", "fault", "Relay down, then back"),
    ("tests/mailqueue/test_delivery.py::test_stale_claims", "fault", "Claims left by dead workers"),
    ("tests/mailqueue/test_delivery.py", "load", "Block racing delivery"),
    ("tests/mailqueue/test_purge.py", "fault", "Purge: lost, crashed, concurrent runs"),
    ("tests/mailqueue/test_expiry.py", "fault", "72 h expiry"),
    ("tests/mailqueue/test_group_commit.py", "load", "Group commit: no 250 before its commit, no loss by others"),
    (
        "tests/mailqueue/test_message_insert.py",
        "fault",
        "Store in one round trip: a connection closed by the server, a blocked service, every byte as sent",
    ),
]


# Hardening: each fault or attack, the test that shows it, and the figure it measured (first
# the behaviour now; "before:" what the code did until the fix). Rendered as its own section.
HARDENING = [
    (
        "One hosting's failed SMTP logins locked out every hosting on the same address (shared web server)",
        "tests/mailqueue/test_smtpd.py::test_one_tenants_failed_logins_do_not_lock_out_another_tenant_on_the_same_address",
        "5 failures of one hosting from 127.0.0.1: that hosting gets 421, another hosting's valid credentials "
        "from 127.0.0.1 get 235 and its message 250 (before: 421 for every hosting of the address, 300 s)",
    ),
    (
        "Guessing across many SMTP user names from one address",
        "tests/mailqueue/test_smtpd.py::test_failures_across_user_names_lock_the_address_at_its_own_cap",
        "failures over 6 user names with a per-address cap of 6: the whole address gets 421, 127.0.0.2 gets 235 "
        "(default caps: 5 per address and user, 100 per address)",
    ),
    (
        "One customer's bad tokens or signatures locked out every API customer on the same address",
        "tests/api/test_auth.py::test_one_customers_failures_do_not_lock_out_another_customer_on_the_same_address",
        "20 bad tokens (or signatures) from one address: that credential gets 429, another customer's valid "
        "credential from the same address 200 (before: 429)",
    ),
    (
        "Guessing across many API credentials from one address",
        "tests/api/test_auth.py::test_failures_across_credentials_lock_the_address_at_its_own_cap",
        "10 different bad tokens with a per-address cap of 10: the address gets 429 (default caps: 20 per "
        "address and credential, 400 per address)",
    ),
    (
        "Redis down: the whole API answered an HTML 500, even GET /1.0/auth/time",
        "tests/reliability/test_cache_down.py::test_the_api_answers_in_json_with_the_cache_and_broker_down",
        "cache and broker on a closed port: /1.0/auth/time 200 (before: HTML 500), signed and bearer calls 200, "
        "a bad token 401 JSON, a submission 201, BLOCK 200; portal_cache_unavailable_total{use=api_throttle} "
        "+6 or more, a warning logged; /metrics keeps the queue depth",
    ),
    (
        "Redis hung (takes connections, never answers)",
        "tests/reliability/test_cache_down.py::test_a_hung_cache_costs_one_timeout_not_one_per_request",
        "5 API requests (14 cache calls): 1 connection tried, a 1 s timeout, the rest let through at once "
        "(without the 5 s back-off: 14 connections, a timeout each; redis-py's default timeout is 5 s)",
    ),
    (
        "Broker or cache needed by a view and unreachable",
        "tests/reliability/test_cache_down.py::test_what_needs_the_broker_answers_a_json_503",
        'JSON 503 {"message": …} with Retry-After: 30, never HTML (no view needs them today: submissions '
        "and actions commit first and enqueue best effort)",
    ),
    (
        "Outbound SMTP smuggling: bare CR passed verbatim to the relay (line1\\r.\\rMAIL FROM:…)",
        "tests/mailqueue/test_rfc5322.py::test_smtp_door_bare_cr_smuggling_never_reaches_the_relay",
        "through the SMTP door to a relay that ends lines on CR: 1 transaction, the dot line dot-stuffed, no bare "
        "CR on the wire (before: 2 transactions, the second from ceo@victim.example); same at the API and sendmail",
    ),
    (
        "Lines over 998 octets (RFC 5322 §2.1.1)",
        "tests/mailqueue/test_rfc5322.py::test_smtp_door_refuses_a_line_over_998_octets_with_554",
        "a 999-octet line: SMTP 554 5.6.0 naming the line and its length, API 400 (smtpCode 554), sendmail exit 65; "
        "998 octets accepted (before: stored and relayed as they were)",
    ),
    (
        "A To: line with every recipient (PHP's mail()) over 998 octets",
        "tests/mailqueue/test_rfc5322.py::test_smtp_door_folds_a_long_header_line_and_refuses_one_it_cannot_fold",
        "a 2,000-octet To: line: 250, stored folded at its spaces (every line 998 octets or less, the same header "
        "unfolded); a 1,009-octet header line without whitespace: 554 5.6.0",
    ),
    (
        "Too many connections from one address",
        "tests/mailqueue/test_smtp_door_limits.py::test_connections_over_the_per_address_limit_get_421_and_are_closed",
        "50 open from 127.0.0.1: the 51st to 55th get 421 4.7.0 and are closed, 127.0.0.2 gets 220, a closed "
        "connection frees its place (before: no limit)",
    ),
    (
        "Slow clients holding connections (slowloris)",
        "tests/mailqueue/test_smtp_door_limits.py::test_400_slow_connections_are_all_closed_after_the_idle_timeout",
        "400 idle or dripping connections (8 addresses x 50), SMTP_IDLE_TIMEOUT=1: all 400 closed by the door, "
        "the silent ones with 421 4.4.2 (before: all 400 still open after 60 s)",
    ),
    (
        "A busy session that never ends",
        "tests/mailqueue/test_smtp_door_limits.py::test_a_busy_session_is_closed_at_the_session_deadline",
        "a NOOP every 50 ms, SMTP_SESSION_MAX_SECONDS=1: 421 4.4.2 then closed (before: open as long as the "
        "client wished)",
    ),
    (
        "SIGTERM cut clients in the middle of DATA",
        "tests/mailqueue/test_runsmtpd.py::test_sigterm_lets_a_client_mid_data_finish_and_stops_taking_new_ones",
        "manage.py runsmtpd, SIGTERM with one client mid-DATA and one idle: new connections refused at once, the idle "
        "one 421 4.3.2, the other its 250 and the message stored, exit 0 (before: cut off, nothing stored)",
    ),
    (
        "A door process that dies",
        "tests/mailqueue/test_runsmtpd.py::test_a_door_in_two_processes_serves_its_clients_and_starts_again_a_worker_that_died",
        "runsmtpd with SMTP_DOOR_PROCESSES=2, six sessions at once all stored, one worker SIGKILLed: another started, "
        "the next four messages stored, SIGTERM ends both, exit 0 (before: one process, whose death closed the door)",
    ),
    (
        "A transaction longer than the drain",
        "tests/mailqueue/test_runsmtpd.py::test_sigterm_gives_up_on_a_transaction_longer_than_the_drain",
        "SMTP_DRAIN_SECONDS=1, a client stalled mid-DATA: 421 4.3.2 at the end of the drain, nothing stored, exit 0",
    ),
    (
        "Null sender <> refused at the SMTP door, accepted by the API",
        "tests/mailqueue/test_null_sender.py::test_api_refuses_the_null_sender_as_the_smtp_door_does",
        'MAIL FROM:<> and API sender "", "<>", " " or missing: 553 5.7.1 with the same text everywhere '
        "(before: the door said 501 syntax error, the API stored the message)",
    ),
    (
        "API rate limit lost counts under concurrency (read-modify-write on the cache)",
        "tests/api/test_throttle_concurrency.py::test_650_concurrent_anonymous_requests_with_a_limit_of_100_let_100_through",
        "650 concurrent requests (32 threads, live server), limit 100: 100 let through (before, DRF's "
        "SimpleRateThrottle: 199 on Redis, 392 on the embedded file cache)",
    ),
    (
        "Same, per customer",
        "tests/api/test_throttle_concurrency.py::test_300_concurrent_requests_of_one_customer_with_a_limit_of_50_let_50_through",
        "300 concurrent bearer requests of one customer, limit 50: 50 let through (before: 124 on Redis, 101 on "
        "the file cache)",
    ),
]


def tests_run(xml_path: Path) -> int:
    command = [sys.executable, "-m", "pytest", *TARGETS, "-q", "-p", "no:cacheprovider", f"--junitxml={xml_path}"]
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=BASE_DIR, check=False).returncode


def test_path(case: ET.Element) -> str:
    """`tests/x/test_y.py::name` from a JUnit testcase (classname is the dotted module path)."""
    classname = case.get("classname", "")
    module, _dot, klass = classname, "", ""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = BASE_DIR.joinpath(*parts[:cut]).with_suffix(".py")
        if candidate.exists():
            module = "/".join(parts[:cut]) + ".py"
            klass = "::".join(parts[cut:])
            break
    name = case.get("name", "")
    return f"{module}::{klass}::{name}" if klass else f"{module}::{name}"


def outcome(case: ET.Element) -> tuple[str, str]:
    """(result, detail) of a testcase."""
    for tag, result in (("failure", "failed"), ("error", "error")):
        element = case.find(tag)
        if element is not None:
            return result, (element.get("message") or "").splitlines()[0][:120] if element.get("message") else ""
    skipped = case.find("skipped")
    if skipped is not None:
        message = skipped.get("message") or ""
        if skipped.get("type") == "pytest.xfail":
            return "xfailed (known defect)", message[:160]
        return "skipped", message.removeprefix("Skipped: ")[:120]
    return "passed", ""


def classify(path: str) -> tuple[str, str]:
    for prefix, kind, label in CLASSES:
        if path.startswith(prefix):
            return kind, label
    return "other", path.split("::")[0]


def environment() -> tuple[str, str]:
    database_url = os.environ.get("DATABASE_URL", "")
    database = "PostgreSQL" if database_url.startswith("postgres") else "SQLite (embedded)"
    if database_url.startswith("postgres"):
        try:
            version = subprocess.run(
                ["psql", database_url, "-tAc", "SHOW server_version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            version = ""
        database += f" {version}" if version else ""
    broker = "Redis" if os.environ.get("REDIS_URL") else "kombu filesystem transport (embedded)"
    return database, broker


def report_write(xml_path: Path, report: Path, returncode: int) -> None:
    root = ET.parse(xml_path).getroot()  # noqa: S314 (our own pytest output)
    cases = list(root.iter("testcase"))
    database, broker = environment()
    rows = []
    totals: dict[str, int] = {}
    for case in cases:
        path = test_path(case)
        kind, label = classify(path)
        result, detail = outcome(case)
        totals[result] = totals.get(result, 0) + 1
        rows.append((kind, label, path, result, float(case.get("time") or 0), detail))
    rows.sort(key=lambda row: (["fault", "load", "input", "other"].index(row[0]), row[1], row[2]))
    now = datetime.datetime.now(datetime.UTC).astimezone()
    summary = ", ".join(f"{count} {result}" for result, count in sorted(totals.items()))
    lines = [
        "# Reliability report",
        "",
        "Generated by `bench/reliability_report.py`; do not edit by hand. Regenerate with:",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        f"- Date: {now:%Y-%m-%d %H:%M %Z}",
        f"- Database: {database}",
        f"- Broker: {broker}",
        f"- Python {sys.version.split()[0]}; pytest exit code {returncode}",
        f"- Result: {len(cases)} tests: {summary}",
        f"- Run: `pytest {' '.join(TARGETS)}`",
        "",
        "Each row is one test: the class of fault (something breaks), load (many things at once) or input",
        "(what a client sends) it exercises, the test that proves the behaviour, and its result.",
        "`xfailed (known defect)` marks a test that documents a defect not fixed yet (strict: it fails once fixed).",
        "",
        "| class | what is tested | test | result | duration |",
        "|---|---|---|---|---|",
    ]
    for kind, label, path, result, seconds, detail in rows:
        shown = f"{result}: {detail}" if detail and result != "passed" else result
        shown = shown.replace("|", "\\|")
        lines.append(f"| {kind} | {label} | `{path}` | {shown} | {seconds:.1f} s |")
    lines.extend(hardening_lines({path: result for _kind, _label, path, result, _seconds, _detail in rows}))
    lines.append("")
    kept = report.read_text(encoding="utf-8").partition(HAND_WRITTEN_MARKER) if report.exists() else ("", "", "")
    if kept[1]:
        lines.append(kept[1] + kept[2].rstrip("\n") + "\n")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {report.relative_to(BASE_DIR)}: {len(cases)} tests, {summary}")


def hardening_lines(results: dict[str, str]) -> list[str]:
    """The Hardening section: one row per HARDENING entry, with the result of its test(s) in this run."""
    lines = [
        "",
        "## Hardening",
        "",
        "Faults and attacks found at the doors and fixed, each with the test that shows it from outside",
        "(real SMTP clients, HTTP requests, `manage.py` processes) and the figure it measured.",
        "",
        "| fault or attack | test | figure | result |",
        "|---|---|---|---|",
    ]
    for fault, test, figure in HARDENING:
        # A parametrised test is several cases: passed only if every case passed.
        outcomes = {result for path, result in results.items() if path == test or path.startswith(test + "[")}
        result = "not run" if not outcomes else outcomes.pop() if len(outcomes) == 1 else ", ".join(sorted(outcomes))
        cells = [cell.replace("|", "\\|") for cell in (fault, test, figure, result)]
        lines.append(f"| {cells[0]} | `{cells[1]}` | {cells[2]} | {cells[3]} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xml", type=Path, default=JUNIT_XML, help="JUnit XML path")
    parser.add_argument("--output", type=Path, default=REPORT, help="the Markdown report to write")
    parser.add_argument("--no-run", action="store_true", help="only rewrite the report from an existing XML")
    arguments = parser.parse_args()
    arguments.xml.parent.mkdir(parents=True, exist_ok=True)
    returncode = 0 if arguments.no_run else tests_run(arguments.xml)
    report_write(arguments.xml, arguments.output, returncode)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
