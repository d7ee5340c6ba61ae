"""bench/delivery.py runs end to end on a small queue (its sink in a process of its own, its
checks of what reached the sink, its rounds and its timeline), on the database of this test run's
configuration: a benchmark that breaks fails here, not on the day its figures are needed."""

import json

from tests.support import bench_run


def test_the_delivery_bench_delivers_signs_and_reports_every_message(tmp_path):
    figures = tmp_path / "delivery.json"
    arguments = ["--messages", "30", "--only", "plain", "dkim", "--database", "bench_test_delivery", "--runs", "2"]
    arguments.append("--timeline")

    run = bench_run("delivery.py", [*arguments, "--json", str(figures)], tmp_path=tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "30/30 messages at the sink carry a DKIM-Signature" in run.stdout
    assert "the first verifies against its DNS record: True" in run.stdout
    assert "best of 2 runs in rounds" in run.stdout
    lines = json.loads(figures.read_text())
    assert [line["figure"][:3] for line in lines] == ["(a)", "(b)"]
    assert all(line["figure"].endswith("best of 2") for line in lines)
    timelines = run.stdout.split("where the time went")[1:]
    assert len(timelines) == 2
    for timeline in timelines:  # the relay's answer to each final dot, once a message; the claim
        dot = next(line for line in timeline.splitlines() if "dot sent → reply read" in line)
        assert dot.split()[-3] == "30"
        assert "claim → claimed" in timeline
        total = float(next(line for line in timeline.splitlines() if "all steps" in line).split()[-1])
        assert total > 0
    for line in lines:
        assert line["value"] > 0 and line["baseline"] > 0
        assert line["ratio"] == line["value"] / line["baseline"]
        assert line["statements_per_message"] > 0 and line["cpu_ms_per_message"] > 0
