"""Run one atheris fuzz target: ``python -m tests.fuzz.run TARGET [libFuzzer flags] [CORPUS_DIR ...]``.

vaxcred is imported under ``atheris.instrument_imports`` (coverage-guided); the target's seeds
(tests/fuzz/seeds.py) are written into the first corpus folder, or into a temporary one when none is given.
Everything after TARGET goes to libFuzzer, e.g. ``-runs=3000 -seed=1 -timeout=5 -rss_limit_mb=2048
-artifact_prefix=out/`` (short, reproducible: what ``tests/fuzz/test_fuzz.py`` does) or
``-max_total_time=600`` (``make fuzz-long``). A finding stops the run with a non-zero exit and leaves the
input in ``<artifact_prefix>crash-…`` (or ``timeout-…``); replay it with ``python -m tests.fuzz.run TARGET FILE``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    name, rest = argv[0], argv[1:]
    with atheris.instrument_imports(include=["vaxcred"]):
        from tests.fuzz import seeds, targets
    if name not in targets.TARGETS:
        raise SystemExit(f"unknown target {name!r}; one of: {', '.join(targets.TARGETS)}")
    target = targets.TARGETS[name]
    targets.fixture()  # keys and lists made before fuzzing starts, not inside the first input's time
    flags = [a for a in rest if a.startswith("-")]
    paths = [a for a in rest if not a.startswith("-")]
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        if not paths:
            paths = [tmp]
        if Path(paths[0]).is_dir() or not Path(paths[0]).exists():
            seeds.write_seeds(name, Path(paths[0]))
        atheris.Setup([sys.argv[0], *flags, *paths], target)
        atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
