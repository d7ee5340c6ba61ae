"""bench/store.py runs end to end on PostgreSQL (the one round trip beside the three, at two
sizes): a benchmark that breaks fails here, not on the day its figures are needed."""

import pytest
from django.db import connection

from tests.conftest import requires_postgres
from tests.support import bench_run


@requires_postgres
def test_the_store_bench_times_both_ways_at_each_size(tmp_path):
    run = bench_run("store.py", ["--sizes", "1.6", "30", "--messages", "20"], tmp_path=tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith(("1,590 ", "30,"))]
    assert len(rows) == 2, run.stdout
    for row in rows:
        one_cpu, three_cpu, cpu_ratio = float(row[1].rstrip(",")), float(row[3].rstrip(",")), float(row[5])
        assert one_cpu > 0 and three_cpu > 0
        assert abs(cpu_ratio - one_cpu / three_cpu) <= 0.02 + 0.02 * cpu_ratio  # each printed rounded


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the embedded configuration: no PostgreSQL named")
def test_the_store_bench_says_it_needs_postgresql(tmp_path):
    run = bench_run("store.py", ["--sizes", "1.6"], tmp_path=tmp_path)

    assert run.returncode == 2
    assert "DATABASE_URL must name a PostgreSQL server" in run.stderr
