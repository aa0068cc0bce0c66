"""The site-signing stage alone, in each of its modes, on SQLite and PostgreSQL: wall, client CPU, server CPU.

Run as ``make bench-site-signing`` (``PEOPLE=100000 BACKEND=both``). One database per backend is built once up to
the registry check (the pipeline's import and check of ``PEOPLE`` generated people, as in
:mod:`benchmarks.bench_pipeline`, whose helpers this reuses: dataset cache, keys, throwaway durable PostgreSQL
cluster); then every run signs a fresh copy of it (SQLite: a file copy; PostgreSQL: ``CREATE DATABASE … TEMPLATE``)
in one of the modes, the modes interleaved, ``--repeat`` rounds:

- ``serial``: ``run_site_signing(pipelined=False)``: read, sign and store each batch in one process;
- ``pipelined``: the default: a forked child signs while the stage reads and stores (:mod:`…site_signing.pipelined`);
- ``workers2``: ``workers=2``: two forked processes, whole sites each (:mod:`…site_signing.workers`).

Per run: wall seconds, CPU seconds of this process and its reaped children (the signing processes), and on
PostgreSQL the server's CPU seconds (``/proc``, every server process) and WAL bytes. The last line is one JSON
object with every run.
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from benchmarks.bench_pipeline import (
    CHECK_TIME,
    IMPORT_DAY,
    SIGN_TIME,
    FileRegistry,
    make_dataset,
    make_keys,
    own_cpu_seconds,
    postgres_database,
    server_cpu_seconds,
)
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import open_database

MODES = {"serial": {"pipelined": False}, "pipelined": {}, "workers2": {"workers": 2}}


def _build(url: str, people: int, work: Path) -> None:
    dataset, _ = make_dataset(people, Path(os.environ.get("DATA_DIR", "/tmp/vaxcred-bench-data")))
    db = open_database(url)
    try:
        db.migrate()
        import_file(db, dataset.csv_path, rejects_path=work / "rejects.csv", today=IMPORT_DAY)
        run_registry_check(db, FileRegistry(dataset.registry_path), now=CHECK_TIME)
    finally:
        db.dispose()


@contextlib.contextmanager
def _copies(backend: str, people: int, work: Path) -> Iterator[tuple[Any, Path | None]]:
    """Yields a function giving a fresh copy's URL (and a dropper), and the PostgreSQL data directory."""
    if backend == "sqlite":
        base = work / "base.db"
        _build(f"sqlite:///{base}", people, work)

        @contextlib.contextmanager
        def sqlite_copy() -> Iterator[str]:
            path = work / f"run-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(base, path)
            try:
                yield f"sqlite:///{path}"
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)

        yield sqlite_copy, None
        return
    with postgres_database() as (url, data_dir):
        _build(url, people, work)
        base_name = url.rsplit("/", 1)[1]
        admin = sa.make_url(url)
        conninfo = f"host={admin.host} port={admin.port} user={admin.username} dbname=postgres"

        @contextlib.contextmanager
        def pg_copy() -> Iterator[str]:
            name = f"run_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base_name}"')  # names made here
                conn.execute("CHECKPOINT")
            try:
                yield url.rsplit("/", 1)[0] + "/" + name
            finally:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        yield pg_copy, data_dir


def _wal(url: str) -> int:
    db = open_database(url)
    try:
        with db.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one())
    finally:
        db.dispose()


def run(people: int, backends: list[str], repeat: int, work: Path) -> list[dict[str, Any]]:
    keys = make_keys(work / "keys")
    results: list[dict[str, Any]] = []
    for backend in backends:
        with _copies(backend, people, work) as (copy, data_dir):
            for round_ in range(repeat):
                for mode, options in MODES.items():
                    with copy() as url:
                        wal = _wal(url) if data_dir else 0
                        db = open_database(url)
                        server = server_cpu_seconds(data_dir) if data_dir else 0.0
                        cpu = own_cpu_seconds()
                        started = time.perf_counter()
                        report = run_site_signing(db, keys.signers, now=SIGN_TIME, **options)
                        seconds = time.perf_counter() - started
                        cpu = own_cpu_seconds() - cpu
                        server = (server_cpu_seconds(data_dir) - server) if data_dir else 0.0
                        db.dispose()
                        wal = (_wal(url) - wal) if data_dir else 0
                    assert report.failed == 0, report
                    row = {
                        "backend": backend,
                        "mode": mode,
                        "round": round_,
                        "people": people,
                        "doses": report.signed,
                        "seconds": round(seconds, 2),
                        "cpu": round(cpu, 2),
                        "server_cpu": round(server, 2),
                        "wal_mib": round(wal / 2**20, 1),
                    }
                    results.append(row)
                    print(
                        f"{backend:10s} {mode:9s} round {round_}: {seconds:6.1f} s wall, client CPU {cpu:6.1f} s, "
                        f"server CPU {server:6.1f} s, WAL {row['wal_mib']} MiB ({report.signed:,} doses)",
                        flush=True,
                    )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=int(os.environ.get("PEOPLE", "100000")))
    parser.add_argument("--backend", default=os.environ.get("BACKEND", "both"))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT", "2")))
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="vaxcred-bench-signing-") as tmp:
        results = run(args.people, backends, args.repeat, Path(tmp))
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
