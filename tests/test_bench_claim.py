"""bench/claim.py runs end to end on PostgreSQL (a claim beside the raw statement, at two sizes
of backlog): a benchmark that breaks fails here, not on the day its figures are needed."""

import pytest
from django.db import connection

from tests.conftest import requires_postgres
from tests.support import bench_run


@requires_postgres
def test_the_claim_bench_times_both_at_each_backlog(tmp_path):
    run = bench_run("claim.py", ["--queued", "300", "600", "--claims", "3", "--batch", "50"], tmp_path=tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith(("300 ", "600 "))]
    assert [row[0] for row in rows] == ["300", "600"]
    for row in rows:
        claim_median, raw_median, ratio = float(row[1].rstrip(",")), float(row[3].rstrip(",")), float(row[5])
        assert claim_median > 0 and raw_median > 0
        assert abs(ratio - claim_median / raw_median) <= 0.06 + 0.02 * ratio  # each printed rounded


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the embedded configuration: no PostgreSQL named")
def test_the_claim_bench_says_it_needs_postgresql(tmp_path):
    run = bench_run("claim.py", ["--queued", "10"], tmp_path=tmp_path)

    assert run.returncode == 2
    assert "DATABASE_URL must name a PostgreSQL server" in run.stderr
