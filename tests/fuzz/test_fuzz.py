"""Short, reproducible atheris runs of every fuzz target (SECURITY.md §6), and the replay of past findings.

Each target runs in its own process for a fixed number of inputs with a fixed seed (``-runs``, ``-seed``),
starting from its seeds (tests/fuzz/seeds.py). A finding — a foreign exception, an input slower than
``-timeout`` seconds, memory past ``-rss_limit_mb`` — fails the test with the traceback and the input.
Longer runs: ``make fuzz-long`` (docs/security.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import seeds, targets

#: inputs per target in `make test` (each run ~2-4 s on one core); the slow targets sign every input
RUNS = {"hc1_claims": 1500, "trust_signed_payload": 800, "hc1_cose": 2000}
DEFAULT_RUNS = 3000
_RUN = [sys.executable, "-m", "tests.fuzz.run"]


def _finding(output: str, artifacts: Path) -> str:
    found = sorted(artifacts.glob("*-*"))
    shown = [f"{p.name}: {p.read_bytes()[:2000]!r}" for p in found]
    lines = [line for line in output.splitlines() if not line.startswith("INFO: Instrumenting")]
    start = next((i for i, line in enumerate(lines) if "Uncaught Python exception" in line), -40)
    tail = "\n".join(lines[start:])
    return f"{tail}\n\ninputs:\n" + "\n".join(shown)


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    """A short coverage-guided run ends with no untyped exception, hang or memory blow-up."""
    pytest.importorskip("atheris", reason="atheris is a test dependency (pyproject extra 'test')")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    runs = RUNS.get(target, DEFAULT_RUNS)
    flags = [f"-runs={runs}", "-seed=1", "-timeout=10", "-rss_limit_mb=2048", "-max_total_time=120"]
    done = subprocess.run(
        [*_RUN, target, *flags, f"-artifact_prefix={artifacts}/", str(tmp_path / "corpus")],
        capture_output=True,
        text=True,
        cwd=targets.REPO,
        check=False,
    )
    assert done.returncode == 0, _finding(done.stderr + done.stdout, artifacts)
    # libFuzzer may overshoot -runs by a few (it counts whole mutation rounds: "Done 2064 runs" for 2000)
    completed = re.search(r"Done (\d+) runs", done.stderr)
    assert completed is not None, done.stderr[-2000:]
    assert int(completed.group(1)) >= runs, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("target", "path"),
    [(t, p) for t in sorted(targets.TARGETS) for p in seeds.regressions(t)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_past_finding_ends_typed(target: str, path: Path) -> None:
    """Each input that once found a bug now ends in a value or a typed VaxcredError."""
    targets.TARGETS[target](path.read_bytes())


def test_make_fuzz_long_runs_every_target() -> None:
    """`make fuzz-long` lists exactly the targets of tests/fuzz/targets.py."""
    makefile = (targets.REPO / "Makefile").read_text(encoding="utf-8")
    line = next(x for x in makefile.splitlines() if x.startswith("FUZZ_TARGETS ?="))
    assert line.split("?=", 1)[1].split() == list(targets.TARGETS)
