"""The national pipeline end to end, on generated people: import → registry check → site signing → issuance.

Run as ``make bench-pipeline`` (``.venv/bin/python -m benchmarks.bench_pipeline``). ``PEOPLE=10000,100000`` (or
``--people``) picks the sizes, largest last (default 10 k, 100 k, 1 M); ``BACKEND=sqlite|postgresql|both`` (or
``--backend``) the storage (default SQLite); ``WORKERS`` (``--workers``) the processes of the parallel stages
(default: the machine's cores).

Each size runs in a fresh child process (so its memory figures are its own) against a fresh database: a new SQLite
file, or a new database in a throwaway PostgreSQL cluster started for the run (Debian's server binaries, run as
the ``postgres`` user when we are root, on a free loopback port; **durable settings**: ``fsync``,
``synchronous_commit`` and ``full_page_writes`` on, like the SQLite side, which runs at ``synchronous=FULL``;
``shared_buffers=256MB``, ``max_wal_size=4GB``, ``checkpoint_timeout=15min``; ``PG_SETTINGS="-c name=value …"``
adds or overrides server settings, and the ``RESULT`` line records them).

Stages, each timed on the wall clock (``time.perf_counter``), in this order:

- generate (not part of the pipeline's total): :func:`vaxcred.pipeline.synthetic.generate_people` streamed into
  the import CSV and into the stand-in population registry (a separate SQLite file, see :class:`FileRegistry`);
  cached under ``--data-dir`` per size and seed, so a second run starts at the import;
- import: :func:`vaxcred.pipeline.records.importer.import_file` of the CSV (~2.5 rows per person);
- registry check: :func:`vaxcred.pipeline.registry.check.run_registry_check` against that registry;
- site signing: :func:`vaxcred.pipeline.site_signing.stage.run_site_signing`, every site with its own certificate;
- issuance: :func:`vaxcred.pipeline.issuance.stage.run_issuance`, ``WORKERS`` processes, passports stored.

After the run the stored counts are checked (every verified person holds exactly one ACTIVE passport, every dose
of a verified person holds a current site signature) — a fast run that stored the wrong thing is no result.

Memory: ``ru_maxrss`` of the run's process and of its largest child (issuance and signing workers), and the peak
of their sum sampled every 0.1 s from ``/proc`` (the processes run at the same time).

Output per size: a stage table, then one line ``RESULT {json}`` (every figure; ``benchmarks/chart_pipeline.py``
reads them). The last line of the whole run is one JSON object for the largest size::

    {"people": 1000000, "doses": 2549811, "seconds": 287.1, "peak_rss_mib": 412.3, "backend": "sqlite"}
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from cryptography import x509

from vaxcred import keys
from vaxcred.pipeline.issuance.stage import KeyChainIssuerFactory, run_issuance
from vaxcred.pipeline.records.cccd import Gender
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.records.model import OPTIONAL_FIELDS, ROW_FIELDS
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.pipeline.synthetic import default_sites, generate_people
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, passports, persons, site_signatures

DEFAULT_PEOPLE = (10_000, 100_000, 1_000_000)
SEED = 2021
#: the pipeline's clock: every dose (2021–2022) is in the past, every certificate valid when it is used
CA_TIME = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
SITE_TIME = dt.datetime(2022, 6, 1, tzinfo=dt.UTC)
DSC_TIME = dt.datetime(2023, 1, 2, tzinfo=dt.UTC)
IMPORT_DAY = dt.date(2023, 1, 8)
CHECK_TIME = dt.datetime(2023, 1, 9, 8, 0, tzinfo=dt.UTC)
SIGN_TIME = dt.datetime(2023, 1, 10, 9, 0, tzinfo=dt.UTC)
ISSUE_TIME = dt.datetime(2023, 1, 15, 9, 0, tzinfo=dt.UTC)
PASSPHRASE_ENV = "VAXCRED_BENCH_PASSPHRASE"
PASSPHRASE = "bench-pipeline passphrase (throwaway keys)"
#: PBKDF2 iterations of the throwaway DSC key file (opened once per issuance worker)
KEY_ITERATIONS = 1000
STAGES = ("import", "registry check", "site signing", "issuance")
MIB = 1024 * 1024

T = TypeVar("T")


# --- the stand-in population registry -------------------------------------------------------------------------


class FileRegistry:
    """A :class:`~vaxcred.pipeline.registry.lookup.PopulationRegistry` over a SQLite file of registry entries.

    It stands in for the national registry service (which the pipeline reaches through ``HttpRegistry``): batched
    lookups by citizen ID, constant memory on our side at any size (an in-memory ``TableRegistry`` of 1 M people
    would hold ~300 MiB that production does not have). Entries are validated as ``RegistryEntry`` objects, as
    every adapter's are.
    """

    source = "bench registry (SQLite file)"

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        found: dict[str, RegistryEntry] = {}
        for start in range(0, len(citizen_ids), 900):
            chunk = list(citizen_ids[start : start + 900])
            marks = ",".join("?" * len(chunk))
            for cid, name, dob, gender in self._conn.execute(
                f"SELECT citizen_id, full_name, dob, gender FROM registry WHERE citizen_id IN ({marks})",
                chunk,
            ):
                found[cid] = RegistryEntry(citizen_id=cid, full_name=name, dob=dob, gender=Gender(gender))
        return MappingProxyType(found)

    def close(self) -> None:
        self._conn.close()


# --- generated data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    people: int
    doses: int
    csv_path: Path
    registry_path: Path


def make_dataset(people: int, data_dir: Path) -> tuple[Dataset, float]:
    """The import CSV and the registry file for ``people`` (cached); (dataset, seconds spent generating)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = data_dir / f"people-{people}-seed{SEED}"
    csv_path, registry_path, meta_path = (
        stem.with_suffix(".csv"),
        stem.with_suffix(".registry.db"),
        stem.with_suffix(".json"),
    )
    if meta_path.exists() and csv_path.exists() and registry_path.exists():
        meta = json.loads(meta_path.read_text())
        return Dataset(people, int(meta["doses"]), csv_path, registry_path), 0.0
    started = time.perf_counter()
    tmp_csv, tmp_registry = csv_path.with_suffix(".csv.tmp"), registry_path.with_suffix(".tmp")
    tmp_registry.unlink(missing_ok=True)
    registry = sqlite3.connect(tmp_registry)
    registry.execute(
        "CREATE TABLE registry (citizen_id TEXT PRIMARY KEY, full_name TEXT NOT NULL, dob TEXT NOT NULL, "
        "gender TEXT NOT NULL) WITHOUT ROWID"
    )
    dose_count = 0
    pending: list[tuple[str, str, str, str]] = []
    with open(tmp_csv, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[*ROW_FIELDS, *OPTIONAL_FIELDS], restval="")
        writer.writeheader()
        for person in generate_people(people, seed=SEED):
            for row in person.rows:
                writer.writerow(row.to_fields())
            dose_count += len(person.rows)
            if person.entry is not None:
                e = person.entry
                pending.append((e.citizen_id, e.full_name, e.dob, e.gender.value))
            if len(pending) >= 10_000:
                registry.executemany("INSERT INTO registry VALUES (?, ?, ?, ?)", pending)
                pending.clear()
    registry.executemany("INSERT INTO registry VALUES (?, ?, ?, ?)", pending)
    registry.commit()
    registry.close()
    os.replace(tmp_csv, csv_path)
    os.replace(tmp_registry, registry_path)
    meta_path.write_text(json.dumps({"people": people, "doses": dose_count, "seed": SEED}))
    return Dataset(people, dose_count, csv_path, registry_path), time.perf_counter() - started


# --- keys -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    site_ca: x509.Certificate
    signers: Mapping[str, Any]
    issuer_factory: KeyChainIssuerFactory


def make_keys(folder: Path) -> Keys:
    """A throwaway chain: CSCA → DSC (key in ``folder`` for the issuance workers), site CA → one certificate per
    synthetic site."""
    csca = keys.make_csca(now=CA_TIME)
    dsc = keys.make_dsc(csca, now=DSC_TIME)
    site_ca = keys.make_site_ca(now=CA_TIME)
    signers = {
        site: keys.make_site_certificate(
            site_ca, site_id=site, site_name=f"Trạm Y tế {site}", now=SITE_TIME
        ).signer()
        for site in default_sites()
    }
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"dsc-{dsc.kid.hex()}"
    keys.save_private_key(
        folder / f"{stem}.key", dsc.private_key, PASSPHRASE.encode(), iterations=KEY_ITERATIONS
    )
    keys.save_certificate(folder / f"{stem}.pem", dsc.certificate)
    os.environ[PASSPHRASE_ENV] = (
        PASSPHRASE  # read by each issuance worker (spawned: inherits the environment)
    )
    factory = KeyChainIssuerFactory(folder=folder, at=ISSUE_TIME, passphrase_env=PASSPHRASE_ENV)
    return Keys(site_ca=site_ca.certificate, signers=MappingProxyType(signers), issuer_factory=factory)


# --- PostgreSQL -----------------------------------------------------------------------------------------------


#: server settings added to (and overriding) the durable ones: ``PG_SETTINGS="-c shared_buffers=2GB"``
PG_SETTINGS: Final = os.environ.get("PG_SETTINGS", "").strip()


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, Path]]:
    """A fresh database in a throwaway, durably configured PostgreSQL cluster; yields its URL and its data
    directory (whose ``postmaster.pid`` names the server process, for :func:`server_cpu_seconds`)."""
    from tests.pipeline.pg import PostgresCluster  # test helper: initdb/pg_ctl as the postgres user

    class DurableCluster(PostgresCluster):
        """:class:`PostgresCluster` with durable settings (the test cluster runs with fsync off)."""

        def start(self) -> None:
            original = self._run

            def run(*argv: str) -> None:
                if argv[:2] == ("pg_ctl", "start"):
                    options = argv[-1]
                    for fast in ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"):
                        options = options.replace(fast, "")
                    options = options.replace("-c shared_buffers=64MB", "-c shared_buffers=256MB")
                    options += " -c max_wal_size=4GB -c checkpoint_timeout=15min " + PG_SETTINGS
                    argv = (*argv[:-1], options)
                original(*argv)

            self._run = run  # type: ignore[method-assign]
            super().start()

    cluster = DurableCluster(name="vaxcred-bench")
    cluster.start()
    try:
        yield cluster.create_database("bench"), cluster.data_dir
    finally:
        cluster.stop()


# --- measuring ------------------------------------------------------------------------------------------------


class TreeRss:
    """Samples the summed RSS of this process and its descendants (``/proc``) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1) -> None:
        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, _tree_rss(os.getpid()))

    def sample(self) -> None:
        self.peak = max(self.peak, _tree_rss(os.getpid()))


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(stat[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def _proc_stats() -> dict[int, tuple[int, list[bytes]]]:
    """pid → (ppid, the fields of /proc/pid/stat after the command name)."""
    stats: dict[int, tuple[int, list[bytes]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), fields)
    return stats


def server_cpu_seconds(data_dir: Path) -> float:
    """CPU seconds (user + system) the PostgreSQL server has used so far: the postmaster, its live processes
    (backends, WAL writer, checkpointer, …) and the ones that have exited (reaped: ``cutime``/``cstime``)."""
    try:
        root = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            fields = stats[pid][1]
            # after "pid (comm)": state=0 ppid=1 … utime=11 stime=12 cutime=13 cstime=14
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the stages' worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Stage:
    name: str
    seconds: float
    items: int
    unit: str
    #: CPU seconds of the pipeline's processes (this one and its workers) during the stage
    cpu: float = 0.0
    #: CPU seconds of the PostgreSQL server during the stage (0 on SQLite)
    server_cpu: float = 0.0
    #: bytes of write-ahead log the PostgreSQL server wrote during the stage (0 on SQLite)
    wal_bytes: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


def timed(
    name: str,
    unit: str,
    fn: Callable[[], T],
    count: Callable[[T], int],
    server: Callable[[], tuple[float, int]] | None = None,
) -> tuple[Stage, T]:
    """Run one stage: wall time, the pipeline's CPU time, and the PostgreSQL server's CPU time and WAL bytes
    (``server`` reads both counters)."""
    print(f"  {name} …", end="", flush=True, file=sys.stderr)
    server_before = server() if server else (0.0, 0)
    cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    cpu = own_cpu_seconds() - cpu_before
    server_after = server() if server else (0.0, 0)
    server_cpu, wal = server_after[0] - server_before[0], server_after[1] - server_before[1]
    stage = Stage(name, seconds, count(value), unit, cpu=cpu, server_cpu=server_cpu, wal_bytes=wal)
    print(
        f" {seconds:.1f} s ({stage.rate:,.0f} {unit}/s; CPU {cpu:.1f} s"
        + (f", server {server_cpu:.1f} s, WAL {wal / MIB:,.0f} MiB" if server else "")
        + ")",
        flush=True,
        file=sys.stderr,
    )
    return stage, value


# --- one run --------------------------------------------------------------------------------------------------


def run_once(people: int, backend: str, workers: int, data_dir: Path, work_dir: Path) -> dict[str, Any]:
    dataset, generate_seconds = make_dataset(people, data_dir)
    keyset = make_keys(work_dir / "keys")
    registry = FileRegistry(dataset.registry_path)
    with contextlib.ExitStack() as stack:
        data_dir: Path | None = None
        if backend == "postgresql":
            url, data_dir = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{work_dir / 'vaxcred.db'}"
        db = open_database(url)
        stack.callback(db.dispose)
        db.migrate(os.environ.get("SCHEMA_REVISION") or "head")  # an older revision: A/B of a migration
        server: Callable[[], tuple[float, int]] | None = None
        if data_dir is not None:
            pg_dir = data_dir

            def server() -> tuple[float, int]:
                with db.connect() as conn:
                    lsn = conn.execute(sa.text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
                return server_cpu_seconds(pg_dir), int(lsn)

        tree = stack.enter_context(TreeRss())
        # SQLite: one process, pipelined (a forked child reads and signs, the stage stores; one writer). PostgreSQL: WORKERS
        # processes — they cost the server ~10 % more CPU than one pipelined process, but one process and its
        # server backend take turns, and on a quiet machine (make bench-site-signing, 100 k people) two workers
        # signed in 12.6 s against 18.4 s pipelined (docs/pipeline.md, "Site signing on two cores")
        signing_workers = 1 if backend == "sqlite" else workers
        stages: list[Stage] = []
        stage, report = timed(
            "import",
            "rows",
            lambda: import_file(
                db, dataset.csv_path, rejects_path=work_dir / "rejects.csv", today=IMPORT_DAY
            ),
            lambda r: r.rows,
            server=server,
        )
        assert report.rejected == 0, report
        assert report.imported == dataset.doses, report
        stages.append(stage)
        stage, checked = timed(
            "registry check",
            "persons",
            lambda: run_registry_check(db, registry, now=CHECK_TIME),
            lambda r: r.checked,
            server=server,
        )
        stage.detail = {
            "verified": checked.verified,
            "mismatch": checked.mismatch,
            "not_found": checked.not_found,
        }
        stages.append(stage)
        stage, signing = timed(
            "site signing",
            "doses",
            lambda: run_site_signing(db, keyset.signers, now=SIGN_TIME, workers=signing_workers),
            lambda r: r.signed,
            server=server,
        )
        assert signing.failed == 0, signing
        assert signing.skipped_no_key == 0, signing
        stages.append(stage)
        stage, issuance = timed(
            "issuance",
            "persons",
            lambda: run_issuance(
                db, keyset.issuer_factory, now=ISSUE_TIME, site_ca=keyset.site_ca, workers=workers
            ),
            lambda r: r.issued,
            server=server,
        )
        assert issuance.failed == 0, issuance
        stage.detail = {"evaluated": issuance.evaluated}
        stages.append(stage)
        tree.sample()
        stored = _stored_counts(db)
        assert stored["active_passports"] == issuance.issued == checked.verified, (stored, issuance, checked)
        assert stored["unsigned_verified_doses"] == 0, stored
        assert stored["signatures"] == signing.signed, (stored, signing)
        if backend == "sqlite":
            stored["db_mib"] = round(sum(p.stat().st_size for p in work_dir.glob("vaxcred.db*")) / MIB, 1)
    registry.close()
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    seconds = sum(s.seconds for s in stages)
    return {
        "people": people,
        "doses": dataset.doses,
        "seconds": round(seconds, 1),
        # the whole pipeline: the sampled sum over its processes (forked workers' shared pages counted in each, so
        # an over-estimate), or the largest single process if a sample missed a peak
        "peak_rss_mib": round(max(self_rss, child_rss, tree.peak / MIB), 1),
        "backend": backend,
        "workers": workers,
        "signing_workers": signing_workers,
        **({"pg_settings": PG_SETTINGS} if backend == "postgresql" and PG_SETTINGS else {}),
        "generate_seconds": round(generate_seconds, 1),
        "main_rss_mib": round(self_rss, 1),
        "largest_child_rss_mib": round(child_rss, 1),
        "tree_rss_mib": round(tree.peak / MIB, 1),
        "us_per_person": round(seconds / people * 1e6, 1),
        "stages": [
            {
                "name": s.name,
                "seconds": round(s.seconds, 2),
                "items": s.items,
                "unit": s.unit,
                "per_second": round(s.rate),
                "us_per_person": round(s.seconds / people * 1e6, 1),
                "cpu_seconds": round(s.cpu, 2),
                "server_cpu_seconds": round(s.server_cpu, 2),
                "wal_mib": round(s.wal_bytes / MIB, 1),
                **s.detail,
            }
            for s in stages
        ],
        "stored": stored,
    }


def _stored_counts(db: Database) -> dict[str, Any]:
    verified = persons.c.registry_status == "VERIFIED"
    current = site_signatures.c.superseded_at.is_(None)
    with db.connect() as conn:

        def count(query: sa.Select[Any]) -> int:
            return int(conn.execute(query).scalar_one())

        return {
            "persons": count(sa.select(sa.func.count()).select_from(persons)),
            "doses": count(sa.select(sa.func.count()).select_from(doses)),
            "verified": count(sa.select(sa.func.count()).select_from(persons).where(verified)),
            "signatures": count(sa.select(sa.func.count()).select_from(site_signatures).where(current)),
            "active_passports": count(
                sa.select(sa.func.count()).select_from(passports).where(passports.c.status == "active")
            ),
            "unsigned_verified_doses": count(
                sa.select(sa.func.count())
                .select_from(doses.join(persons, persons.c.id == doses.c.person_id))
                .where(verified, ~sa.exists().where(site_signatures.c.dose_id == doses.c.id, current))
            ),
        }


def print_table(result: Mapping[str, Any]) -> None:
    people = result["people"]
    print(
        f"\n{people:,} people, {result['doses']:,} doses — {result['backend']}, "
        f"{result['workers']} worker processes"
    )
    print(
        f"{'stage':<16}{'seconds':>10}{'items':>12}  {'per second':>12}  {'µs/person':>10}"
        f"{'CPU s':>9}{'server CPU s':>14}{'WAL MiB':>9}"
    )
    for s in result["stages"]:
        print(
            f"{s['name']:<16}{s['seconds']:>10.1f}{s['items']:>12,}  "
            f"{s['per_second']:>8,} {s['unit']:<4}{s['us_per_person']:>10.1f}"
            f"{s['cpu_seconds']:>9.1f}{s['server_cpu_seconds']:>14.1f}{s['wal_mib']:>9.0f}"
        )
    print(
        f"{'total':<16}{result['seconds']:>10.1f}{people:>12,}  "
        f"{people / result['seconds']:>8,.0f} ppl {result['us_per_person']:>10.1f}"
    )
    print(
        f"peak RSS: main {result['main_rss_mib']:.0f} MiB, largest child {result['largest_child_rss_mib']:.0f} MiB, "
        f"process tree (sampled sum) {result['tree_rss_mib']:.0f} MiB"
    )
    generated = result["generate_seconds"]
    print(f"(data generation {generated:.1f} s{' (cached)' if generated == 0 else ''}, not in the total)")
    print(f"stored: {json.dumps(result['stored'])}", flush=True)


# --- the driver -----------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("PEOPLE: comma-separated positive integers")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--people", type=_sizes, default=_sizes(os.environ.get("PEOPLE", "")
                        or ",".join(map(str, DEFAULT_PEOPLE))))  # fmt: skip
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default=os.environ.get("BACKEND", "sqlite"),
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", os.cpu_count() or 1)))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "vaxcred-bench-data")
    parser.add_argument(
        "--single", action="store_true", help=argparse.SUPPRESS
    )  # a child: one size, one backend
    args = parser.parse_args(argv)

    if args.single:
        work_dir = Path(tempfile.mkdtemp(prefix="vaxcred-bench-"))
        try:
            result = run_once(args.people[0], args.backend, args.workers, args.data_dir, work_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        print_table(result)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(
        f"bench-pipeline: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, sizes {args.people}, backends {list(backends)}, workers {args.workers}",
        flush=True,
    )
    largest: dict[str, dict[str, Any]] = {}  # backend → its largest run
    for people in sorted(args.people):
        for backend in backends:
            command = [sys.executable, "-m", "benchmarks.bench_pipeline", "--single", "--people", str(people),
                       "--backend", backend, "--workers", str(args.workers), "--data-dir", str(args.data_dir)]  # fmt: skip
            process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
            sys.stdout.write(process.stdout)
            sys.stdout.flush()
            if process.returncode != 0:
                print(f"run of {people} people on {backend} failed ({process.returncode})", file=sys.stderr)
                return 1
            for line in process.stdout.splitlines():
                if line.startswith("RESULT "):
                    largest[backend] = json.loads(line[len("RESULT ") :])
    # the last line(s): one JSON object per backend (its largest run), the last backend's last
    for backend in backends:
        result = largest[backend]
        print(
            json.dumps(
                {key: result[key] for key in ("people", "doses", "seconds", "peak_rss_mib", "backend")}
            )
        )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
