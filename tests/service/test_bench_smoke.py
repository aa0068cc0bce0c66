"""benchmarks/bench_server.py runs end to end (a fraction of a second per phase) and ends with its JSON line."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_server


def _table(lines: list[str], first: str) -> list[list[str]]:
    start = lines.index(first)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_bench_server_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """Against a real two-worker service on a published sync folder, every kind of the mix (valid, revoked,
    rule-failing, expired, forged, unknown signer) is sent and answered as expected, in both phases."""
    result = bench_server.main(
        ["--duration", "0.4", "--passports", "20", "--connections", "4", "--revocation-entries", "50"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == result
    assert set(result) == {"rps", "p50_ms", "p99_ms"}
    assert result["rps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    mix = {
        row[0]: row for row in _table(lines, next(line for line in lines if line.startswith("| passport")))
    }
    assert set(mix) == set(bench_server.MIX)
    assert {"valid", "revoked", "incomplete_course", "too_recent", "expired", "forged"} <= set(mix)
    for kind, row in mix.items():
        assert int(row[3]) >= 1, kind  # sent at least once
        assert row[4] == row[5] == "0", kind  # no wrong verdict, alone or under load
    phases = _table(lines, next(line for line in lines if line.startswith("| phase")))
    assert len(phases) == 2
    for row in phases:
        assert row[3] == "0"  # errors
        assert row[4] == "0"  # wrong verdicts


def test_expected_verdicts_are_strict() -> None:
    """A VALID answer does not satisfy a revoked passport, nor a rules failure a revoked one: the check fails."""
    valid = b'{"status":"VALID","reasons":[],"notes":[],"details":{"steps":[{"code":"rules.ok"}]}}'
    rules_failed = (
        b'{"status":"INVALID","reasons":[{"code":"rules.failed","step":"rules"}],'
        b'"details":{"steps":[{"code":"revocation.ok"},{"code":"rules.failed","message":"failed: VR-VN-0003"}]}}'
    )
    assert bench_server.Expected.of("valid").matches(valid)
    assert not bench_server.Expected.of("revoked").matches(valid)
    assert not bench_server.Expected.of("revoked").matches(rules_failed)
    assert bench_server.Expected.of("too_recent").matches(rules_failed)
    assert not bench_server.Expected.of("incomplete_course").matches(rules_failed)  # VR-VN-0002 expected


def test_wrong_verdict_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mismatch (here: revoked passports expected VALID) makes the run exit 1 after its report."""
    monkeypatch.setitem(
        bench_server.MIX, "revoked", bench_server.Kind(share=0.1, status="VALID", detail="rules.ok")
    )
    with pytest.raises(SystemExit) as exit_info:
        bench_server.main(
            ["--duration", "0.2", "--passports", "8", "--connections", "2", "--revocation-entries", "0"]
        )
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "wrong verdict for revoked" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1]).keys() == {"rps", "p50_ms", "p99_ms"}
