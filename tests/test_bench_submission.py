"""bench/submission.py runs end to end on a few messages: the door in two processes, every
message it accepted found stored, its CPU summed over its processes, its commits counted once its
connections have ended, beside Postfix when this machine has it (a line says so otherwise)."""

import json

import pytest
from django.db import connection

from tests.support import bench_run

pytestmark = pytest.mark.slow


def test_the_submission_bench_stores_and_counts_what_the_door_in_two_processes_accepted(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the bench creates its database on a PostgreSQL server (DATABASE_URL)")
    figures = tmp_path / "submission.json"  # the embedded broker of its own var/: the door's kicks stay here
    arguments = ["--clients", "2", "--messages", "10", "--sizes", "1.6", "--door-processes", "2"]

    run = bench_run(
        "submission.py", [*arguments, "--database", "bench_sub_test", "--json", str(figures)], tmp_path=tmp_path
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
