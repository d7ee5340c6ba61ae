"""bench/delivery.py runs end to end on a small queue (its sink in a process of its own, its
checks of what reached the sink), on the database of this test run's configuration: a benchmark
that breaks fails here, not on the day its figures are needed."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def test_the_delivery_bench_delivers_signs_and_reports_every_message(tmp_path):
    # A state of its own: its own var/ (logs, cache, broker files), no cache or broker of the suite's.
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "VAR_DIR")}
    env["VAR_DIR"] = str(tmp_path / "var")
    if connection.vendor == "postgresql":  # the server of this run; the bench makes its own database
        settings = connection.settings_dict
        user = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
        host = f"{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
        env["DATABASE_URL"] = f"postgres://{user}@{host}/postgres"
    figures = tmp_path / "delivery.json"

    arguments = ["--messages", "30", "--only", "plain", "dkim", "--database", "bench_test_delivery"]
    run = subprocess.run(
        [sys.executable, "bench/delivery.py", *arguments, "--json", str(figures)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "30/30 messages at the sink carry a DKIM-Signature" in run.stdout
    assert "the first verifies against its DNS record: True" in run.stdout
    lines = json.loads(figures.read_text())
    assert [line["figure"][:3] for line in lines] == ["(a)", "(b)"]
    for line in lines:
        assert line["value"] > 0 and line["baseline"] > 0
        assert line["ratio"] == line["value"] / line["baseline"]
        assert line["statements_per_message"] > 0 and line["cpu_ms_per_message"] > 0
