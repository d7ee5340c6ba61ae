"""bench/submission.py runs end to end on a few messages: the door in two processes, every
message it accepted found stored, its CPU summed over its processes, its commits counted once its
connections have ended, beside Postfix when this machine has it (a line says so otherwise)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_submission_bench_stores_and_counts_what_the_door_in_two_processes_accepted(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the bench creates its database on a PostgreSQL server (DATABASE_URL)")
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "VAR_DIR")}
    env["VAR_DIR"] = str(tmp_path / "var")  # the embedded broker: the door's kicks stay in this test
    settings = connection.settings_dict
    user = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    env["DATABASE_URL"] = f"postgres://{user}@{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}/postgres"
    figures = tmp_path / "submission.json"

    arguments = ["--clients", "2", "--messages", "10", "--sizes", "1.6", "--door-processes", "2"]
    run = subprocess.run(
        [sys.executable, "bench/submission.py", *arguments, "--database", "bench_sub_test", "--json", str(figures)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    [line] = json.loads(figures.read_text())
    assert line["figure"].startswith("SMTP door (2 processes), 2 clients x 10 messages")
    assert (line["stored"], line["expected"]) == (20, 20)
    assert line["value"] > 0 and line["door_cpu_ms_per_message"] > 0
    # Two clients each waiting for their reply: a transaction holds at most two messages.
    assert line["commits_per_message"] >= 0.5
    if line["baseline"] is None:
        assert "Postfix baseline skipped" in run.stdout
    else:
        assert line["postfix_queued"] == 20
