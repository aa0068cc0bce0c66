"""Issuance alone, as CPU per passport: the client (this process and its worker processes) and, on PostgreSQL,
the server (its processes' CPU, and pg_stat_statements' costliest statements), repeated on fresh copies of one
database prepared up to site signing.

``PEOPLE`` (``--people``, default 100 k), ``BACKEND=sqlite|postgresql|both`` (``--backend``), ``WORKERS``
(``--workers``, default 2: issuance's default deployment), ``REPEAT`` (``--repeat``, default 2). Every repeat
issues the same people from the same stored state (SQLite: a copy of the prepared file; PostgreSQL: a database
made from the prepared one as its template), so runs of two code versions compare by CPU, not by wall time.
The PostgreSQL server is a throwaway cluster (tests/pipeline/pg.py) with pg_stat_statements preloaded, only
there. Data come from benchmarks.bench_pipeline's generator and its cache (``--data-dir``).

``make bench-issuance`` (e.g. ``PEOPLE=100000 BACKEND=both``); compare two checkouts by running it in each,
interleaved, on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks.bench_pipeline import (
    CHECK_TIME,
    IMPORT_DAY,
    ISSUE_TIME,
    SIGN_TIME,
    FileRegistry,
    Keys,
    make_dataset,
    make_keys,
    own_cpu_seconds,
    server_cpu_seconds,
)
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import open_database

_TOP_STATEMENTS = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    issued: int
    client: float
    server: float | None

    def line(self, label: str) -> str:
        per = 1e6 / max(self.issued, 1)
        text = f"{label}: {self.issued} passports, client {self.client:.2f} s CPU ({self.client * per:.0f} µs each)"
        if self.server is not None:
            text += f", server {self.server:.2f} s CPU ({self.server * per:.0f} µs each)"
        return text


def _prepare(url: str, people: int, data_dir: Path, keys: Keys, work: Path) -> None:
    dataset, _ = make_dataset(people, data_dir)
    db = open_database(url)
    try:
        db.migrate()
        import_file(db, dataset.csv_path, rejects_path=work / "rejects.csv", today=IMPORT_DAY)
        run_registry_check(db, FileRegistry(dataset.registry_path), now=CHECK_TIME)
        run_site_signing(db, keys.signers, now=SIGN_TIME)
    finally:
        db.dispose()


def _issue(url: str, keys: Keys, workers: int, server: Path | None) -> Run:
    db = open_database(url)
    try:
        server_before = server_cpu_seconds(server) if server else 0.0
        before = own_cpu_seconds()
        report = run_issuance(db, keys.issuer_factory, now=ISSUE_TIME, site_ca=keys.site_ca, workers=workers)
        client = own_cpu_seconds() - before
        spent = server_cpu_seconds(server) - server_before if server else None
    finally:
        db.dispose()
    assert report.failed == 0, report
    return Run(issued=report.issued, client=client, server=spent)


def bench_sqlite(people: int, workers: int, repeat: int, data_dir: Path, work: Path) -> None:
    keys = make_keys(work / "keys")
    prepared = work / "prepared.db"
    _prepare(f"sqlite:///{prepared}", people, data_dir, keys, work)
    for i in range(repeat):
        copy = work / f"run-{i}.db"
        shutil.copy(prepared, copy)
        print(
            _issue(f"sqlite:///{copy}", keys, workers, None).line(f"sqlite {people} run {i + 1}"), flush=True
        )
        for path in work.glob(f"run-{i}.db*"):
            path.unlink()


@contextlib.contextmanager
def _cluster() -> Iterator[tuple[object, Path]]:
    from tests.pipeline.pg import PostgresCluster  # test helper: initdb/pg_ctl as the postgres user

    class StatementsCluster(PostgresCluster):
        """A throwaway cluster with pg_stat_statements preloaded (this cluster only)."""

        def _run(self, *argv: str) -> None:
            if argv[:2] == ("pg_ctl", "start"):
                # track=all: the statements inside issuance's batch function and the foreign-key checks are
                # listed too (their time is also inside the call's)
                argv = (
                    *argv[:-1],
                    argv[-1]
                    + " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
                )
            super()._run(*argv)

    cluster = StatementsCluster(name="vaxcred-bench-issuance")
    cluster.start()
    try:
        yield cluster, cluster.data_dir
    finally:
        cluster.stop()


def bench_postgresql(people: int, workers: int, repeat: int, data_dir: Path, work: Path) -> None:
    keys = make_keys(work / "keys")
    with _cluster() as (cluster, server):
        admin = cluster._conninfo()  # type: ignore[attr-defined]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE prepared")
        _prepare(cluster.url("prepared"), people, data_dir, keys, work)  # type: ignore[attr-defined]
        with psycopg.connect(cluster._conninfo("prepared"), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute("VACUUM ANALYZE")
        for i in range(repeat):
            name = f"run_{i}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name} TEMPLATE prepared")
            statements = cluster._conninfo(name)  # type: ignore[attr-defined]
            with psycopg.connect(statements, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
            run = _issue(cluster.url(name), keys, workers, server)  # type: ignore[attr-defined]
            print(run.line(f"postgresql {people} run {i + 1}"), flush=True)
            _print_statements(statements, run.issued)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _print_statements(conninfo: str, issued: int) -> None:
    """The statements that took the server longest (execution time, which includes waits), per passport; nested
    statements (inside a function, foreign-key checks) are counted again in the statement that ran them."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY total_exec_time DESC LIMIT %s",
            (_TOP_STATEMENTS,),
        ).fetchall()
    for calls, total_ms, query in rows:
        print(f"    {1e3 * total_ms / max(issued, 1):7.1f} µs/passport {calls:8d} calls  {query}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=int(os.environ.get("PEOPLE") or 100_000))
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "both"],
        default=os.environ.get("BACKEND") or "sqlite",
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS") or 2))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT") or 2))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "vaxcred-bench-data")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="vaxcred-bench-issuance-") as folder:
            bench = bench_sqlite if backend == "sqlite" else bench_postgresql
            bench(args.people, args.workers, args.repeat, args.data_dir, Path(folder))
    print(f"(done in {time.perf_counter() - started:.0f} s wall)")


if __name__ == "__main__":
    main()
