"""benchmarks/bench_server.py runs end to end (a fraction of a second per phase) and ends with its JSON line."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_server


def test_bench_server_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """Both phases complete against a real two-worker service; every verdict is the expected one."""
    result = bench_server.main(["--duration", "0.4", "--passports", "20", "--connections", "4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == result
    assert set(result) == {"rps", "p50_ms", "p99_ms"}
    assert result["rps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    rows = [line for line in lines if line.startswith(("| capacity", "| latency"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "0"  # errors
        assert cells[4] == "0"  # wrong verdicts
