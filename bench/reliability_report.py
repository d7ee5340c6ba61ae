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
    "tests/mailqueue/test_concurrency.py",
    "tests/mailqueue/test_delivery.py::test_relay_down_defers_and_relay_back_delivers",
    "tests/mailqueue/test_delivery.py::test_a_block_racing_delivery_batches",
    "tests/mailqueue/test_delivery.py::test_stale_claims_are_recovered_to_the_queue_or_the_held_mail",
    "tests/mailqueue/test_delivery.py::test_no_claim_after_a_block_commits",
    "tests/mailqueue/test_purge.py",
    "tests/mailqueue/test_expiry.py",
]

# Test file (or file::name prefix) → the class of fault, load or input it proves; first match wins.
CLASSES = [
    ("tests/reliability/test_broker_down.py", "fault", "Broker (Redis) down during transitions and submissions"),
    ("tests/reliability/test_db_reconnect.py::test_auth", "fault", "Database error during SMTP AUTH"),
    ("tests/reliability/test_db_reconnect.py", "fault", "PostgreSQL connections terminated under door and worker"),
    ("tests/reliability/test_soak.py", "load", "Concurrent submissions, actions, delivery, purge and expiry"),
    ("tests/reliability/", "input", "Hostile or malformed submissions"),
    ("tests/security/", "input", "Tenant isolation and hostile requests"),
    ("tests/mailqueue/test_delivery_workers.py::test_a_worker_killed", "fault", "Worker killed mid-batch (SIGKILL)"),
    ("tests/mailqueue/test_delivery_workers.py", "fault", "Real worker end to end"),
    ("tests/mailqueue/test_concurrency.py", "load", "Concurrent transitions and submissions (races)"),
    ("tests/mailqueue/test_delivery.py::test_relay_down", "fault", "Relay down, then back"),
    ("tests/mailqueue/test_delivery.py::test_stale_claims", "fault", "Claims left by dead workers"),
    ("tests/mailqueue/test_delivery.py", "load", "Block racing delivery"),
    ("tests/mailqueue/test_purge.py", "fault", "Purge: lost, crashed, concurrent runs"),
    ("tests/mailqueue/test_expiry.py", "fault", "72 h expiry"),
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
    lines.append("")
    kept = report.read_text(encoding="utf-8").partition(HAND_WRITTEN_MARKER) if report.exists() else ("", "", "")
    if kept[1]:
        lines.append(kept[1] + kept[2].rstrip("\n") + "\n")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {report.relative_to(BASE_DIR)}: {len(cases)} tests, {summary}")


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
