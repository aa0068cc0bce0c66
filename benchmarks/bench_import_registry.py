"""The pipeline's first two stages alone (import, registry check), repeated: CPU per row, pipeline and server.

Run as ``make bench-import-registry`` (``PEOPLE=100000 BACKEND=postgresql REPEAT=2``). Each round imports the
generated CSV of ``PEOPLE`` people into a fresh database and checks every person against the stand-in registry,
exactly as :mod:`benchmarks.bench_pipeline` runs those stages (whose helpers this reuses: dataset cache, stand-in
registry, throwaway durable PostgreSQL cluster: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on);
with ``BACKEND=both`` the backends alternate within each round.

Per stage and round: wall seconds, CPU seconds of this process and its reaped children (the import's validation
workers, the registry matcher), and on PostgreSQL the server's CPU seconds (``/proc``: every server process) and
WAL bytes; each also per row (the import: per CSV row; the registry check: per person) in µs. Compare two
versions of the code by CPU, not wall (a shared machine's wall clock says little): run this on each, alternating,
at least twice. One ``RESULT {json}`` line per round; the last line is one JSON object with every round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.bench_pipeline import (
    CHECK_TIME,
    IMPORT_DAY,
    FileRegistry,
    make_dataset,
    own_cpu_seconds,
    postgres_database,
    server_cpu_seconds,
)
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.storage import Database, open_database

MIB = 1 << 20


@contextlib.contextmanager
def _database(backend: str, work: Path) -> Iterator[tuple[Database, Callable[[], tuple[float, int]]]]:
    """A fresh, migrated database and a reader of (server CPU seconds, WAL bytes) — zeros on SQLite."""
    if backend == "sqlite":
        db = open_database(f"sqlite:///{work / 'vaxcred.db'}")
        db.migrate()
        try:
            yield db, lambda: (0.0, 0)
        finally:
            db.dispose()
            for path in work.glob("vaxcred.db*"):
                path.unlink()
        return
    with postgres_database() as (url, data_dir):
        db = open_database(url)
        db.migrate()

        def server() -> tuple[float, int]:
            with db.connect() as conn:
                lsn = conn.execute(sa.text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
            return server_cpu_seconds(data_dir), int(lsn)

        try:
            yield db, server
        finally:
            db.dispose()


def _stage(
    name: str, rows: int, run: Callable[[], object], server: Callable[[], tuple[float, int]]
) -> dict[str, Any]:
    server_before, cpu_before, started = server(), own_cpu_seconds(), time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    cpu = own_cpu_seconds() - cpu_before
    server_after = server()
    server_cpu, wal = server_after[0] - server_before[0], server_after[1] - server_before[1]
    return {
        "stage": name,
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "wal_mib": round(wal / MIB, 1),
        "cpu_us_per_row": round(cpu / rows * 1e6, 2),
        "server_us_per_row": round(server_cpu / rows * 1e6, 2),
    }


def run_round(people: int, backend: str, data_dir: Path, work: Path) -> dict[str, Any]:
    dataset, _ = make_dataset(people, data_dir)
    registry = FileRegistry(dataset.registry_path)
    try:
        with _database(backend, work) as (db, server):
            imported = _stage(
                "import",
                dataset.doses,
                lambda: import_file(
                    db, dataset.csv_path, rejects_path=work / "rejects.csv", today=IMPORT_DAY
                ),
                server,
            )
            checked = _stage(
                "registry check", people, lambda: run_registry_check(db, registry, now=CHECK_TIME), server
            )
            with db.connect() as conn:
                unchecked = conn.execute(
                    sa.text("SELECT count(*) FROM persons WHERE registry_status IS NULL")
                )
                assert unchecked.scalar_one() == 0
    finally:
        registry.close()
    return {"people": people, "doses": dataset.doses, "backend": backend, "stages": [imported, checked]}


def _print(result: dict[str, Any]) -> None:
    print(f"{result['people']:,} people, {result['doses']:,} doses — {result['backend']}")
    print(
        f"  {'stage':<16}{'wall s':>8}{'CPU s':>8}{'server s':>10}{'WAL MiB':>9}{'CPU µs/row':>12}{'server µs/row':>15}"
    )
    for s in result["stages"]:
        print(
            f"  {s['stage']:<16}{s['seconds']:>8.2f}{s['cpu_seconds']:>8.2f}{s['server_cpu_seconds']:>10.2f}"
            f"{s['wal_mib']:>9.0f}{s['cpu_us_per_row']:>12.2f}{s['server_us_per_row']:>15.2f}"
        )
    print("RESULT " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=int(os.environ.get("PEOPLE", "100000")))
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default=os.environ.get("BACKEND", "postgresql")
    )
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT", "2")))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "vaxcred-bench-data")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    work = Path(tempfile.mkdtemp(prefix="vaxcred-bench-ir-"))
    results = []
    try:
        for _ in range(args.repeat):
            for backend in backends:
                result = run_round(args.people, backend, args.data_dir, work)
                _print(result)
                results.append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
