"""``vaxcred worker``: several long-lived worker processes on separate connections to one database (SQLite file
and a throwaway PostgreSQL cluster), persons becoming eligible while they run, SIGTERM, kill -9, health file."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from vaxcred.cli import main
from vaxcred.errors import IssuanceError
from vaxcred.issue import Issuer
from vaxcred.keys import PIN_ENV, KeyChainDir, TokenConfig, load_certificate
from vaxcred.pipeline.issuance.service import (
    MAX_BACKOFF,
    ServiceConfig,
    WorkerStatus,
    _wait_seconds,
    serve_issuance,
)
from vaxcred.pipeline.records.cccd import Gender
from vaxcred.pipeline.registry.lookup import RegistryEntry, write_registry_csv
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import ClaimState, issuance_claims, passport_doses, passports, persons

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "worker service test passphrase"
SITES = ("HCM-017", "HN-001")
NAME, OTHER_NAME = "Nguyễn Văn An", "Nguyễn Văn Khác"
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
#: persons per wave; every 8th does not match the registry (never VERIFIED, never a passport)
WAVE = 16


def _citizen(i: int) -> str:
    return f"001090{i:06d}"


def _mismatched(i: int) -> bool:
    return i % 8 == 7


def _run(args: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(args)
    return code, buffer.getvalue()


@pytest.fixture(scope="module")
def key_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key chain made an hour ago (the worker issues at the wall clock), with two site keys."""
    folder = tmp_path_factory.mktemp("worker-keys") / "keys"
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
        assert _run(["keys", "init", str(folder), "--at", at])[0] == 0
        for site in SITES:
            args = ["keys", "site", str(folder), "--site-id", site, "--site-name", f"Trạm {site}", "--at", at]
            assert _run(args)[0] == 0
    return folder


@dataclass
class Pipeline:
    """A migrated database and the upstream stages run through the CLI, wave by wave."""

    url: str
    keys: Path
    folder: Path

    def add_wave(self, wave: int, *, sign: bool = True) -> None:
        """Import WAVE new persons (two doses each), check them against the registry, sign their doses (unless
        not ``sign``)."""
        people = range(wave * WAVE, (wave + 1) * WAVE)
        doses = self.folder / f"doses-{wave}.csv"
        with doses.open("w", encoding="utf-8") as stream:
            stream.write(HEADER)
            for i in people:
                site = SITES[i % 2]
                stream.write(f"{_citizen(i)},{NAME},1990-05-17,M,Comirnaty,L{i}a,2021-08-01,1,{site}\n")
                stream.write(f"{_citizen(i)},{NAME},1990-05-17,M,Comirnaty,L{i}b,2021-09-01,2,{site}\n")
        registry = self.folder / f"registry-{wave}.csv"
        write_registry_csv(
            registry,
            [
                RegistryEntry(
                    citizen_id=_citizen(i),
                    full_name=OTHER_NAME if _mismatched(i) else NAME,
                    dob="1990-05-17",
                    gender=Gender.MALE,
                )
                for i in people
            ],
        )
        db = ["--db", self.url]
        for args in (
            ["import", str(doses), *db],
            ["registry-check", "--registry", str(registry), *db],
            *([["sign-sites", "--keys", str(self.keys), *db]] if sign else []),
        ):
            code, out = _run(args)
            assert code == 0, (args, out)


@pytest.fixture
def pipeline(
    database_url: str, key_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Pipeline:
    monkeypatch.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("VAXCRED_DB", raising=False)
    assert _run(["db", "init", "--db", database_url])[0] == 0
    return Pipeline(url=database_url, keys=key_folder, folder=tmp_path)


@contextlib.contextmanager
def _workers(
    pipeline: Pipeline, count: int, *extra: str, secret: tuple[str, str] = ("VAXCRED_PASSPHRASE", PASSPHRASE)
) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` ``vaxcred worker`` processes, each with its own health file ``health-<n>.json`` (a fresh one) and
    log ``worker-<n>.log`` (stderr), started (handlers installed); killed at the end if a test left them
    running."""
    for n in range(count):
        (pipeline.folder / f"health-{n}.json").unlink(missing_ok=True)
    env = {**os.environ, "VAXCRED_PROGRESS_SECONDS": "0"}
    env.pop("VAXCRED_PASSPHRASE", None)
    env[secret[0]] = secret[1]
    logs = contextlib.ExitStack()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vaxcred",
                "worker",
                "--keys",
                str(pipeline.keys),
                "--db",
                pipeline.url,
                "--poll",
                "0.3",
                "--batch",
                "3",
                "--worker-name",
                f"test-{n}",
                "--health-file",
                str(pipeline.folder / f"health-{n}.json"),
                *extra,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs.enter_context((pipeline.folder / f"worker-{n}.log").open("a", encoding="utf-8")),
            text=True,
        )
        for n in range(count)
    ]
    try:
        for n in range(count):  # the first status is written once the signal handlers are in place
            _until(lambda n=n: bool(_health(pipeline, n)), f"worker {n} to start")  # type: ignore[misc]
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(30)
        logs.close()


def _health(pipeline: Pipeline, n: int) -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads((pipeline.folder / f"health-{n}.json").read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return loaded


def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _counts(url: str) -> tuple[int, int, int]:
    """(VERIFIED persons, persons with an ACTIVE passport, ACTIVE passports)."""
    db = open_database(url)
    try:
        with db.connect() as conn:
            verified = conn.execute(
                sa.select(sa.func.count()).select_from(persons).where(persons.c.registry_status == "VERIFIED")
            ).scalar_one()
            holders, active = conn.execute(
                sa.select(sa.func.count(sa.distinct(passports.c.person_id)), sa.func.count()).where(
                    passports.c.status == "active"
                )
            ).one()
    finally:
        db.dispose()
    return int(verified), int(holders), int(active)


def _assert_exactly_once(url: str) -> None:
    """Every VERIFIED person holds one ACTIVE passport, none two; each with its dose links; no claim in flight."""
    verified, holders, active = _counts(url)
    assert verified > 0
    assert holders == active == verified
    db = open_database(url)
    try:
        with db.connect() as conn:
            unlinked = conn.execute(
                sa.select(sa.func.count())
                .select_from(passports)
                .where(~sa.exists().where(passport_doses.c.passport_id == passports.c.id))
            ).scalar_one()
            in_flight = conn.execute(
                sa.select(sa.func.count())
                .select_from(issuance_claims)
                .where(issuance_claims.c.state == ClaimState.CLAIMED.value)
            ).scalar_one()
    finally:
        db.dispose()
    assert unlinked == 0
    assert in_flight == 0


def _all_issued(url: str) -> Callable[[], bool]:
    def done() -> bool:
        verified, holders, _ = _counts(url)
        return verified > 0 and holders == verified

    return done


def _stop(processes: list[subprocess.Popen[str]], sig: int = signal.SIGTERM) -> list[int]:
    for process in processes:
        process.send_signal(sig)
    return [process.wait(15) for process in processes]


def test_workers_issue_exactly_once_to_persons_becoming_eligible_while_they_run(pipeline: Pipeline) -> None:
    """Three workers on one database: each wave of newly eligible persons gets exactly one passport each;
    SIGTERM stops every worker within seconds with exit 0, its health file saying ``stopped``."""
    pipeline.add_wave(0)
    with _workers(pipeline, 3) as processes:
        _until(_all_issued(pipeline.url), "the first wave")
        for wave in (1, 2):  # new persons while the workers poll
            pipeline.add_wave(wave)
            _until(_all_issued(pipeline.url), f"wave {wave}")
        _until(lambda: all(_health(pipeline, n).get("state") == "idle" for n in range(3)), "idle workers")
        started = time.monotonic()
        assert _stop(processes) == [0, 0, 0]
        assert time.monotonic() - started < 10
    _assert_exactly_once(pipeline.url)
    healths = [_health(pipeline, n) for n in range(3)]
    assert [h["state"] for h in healths] == ["stopped"] * 3
    assert sum(int(str(h["issued"])) for h in healths) == _counts(pipeline.url)[2]
    assert all(h["errors"] == 0 and int(str(h["passes"])) >= 1 for h in healths)
    assert any(int(str(h["issued"])) > 0 for h in healths)
    for n in range(3):
        log = (pipeline.folder / f"worker-{n}.log").read_text("utf-8")
        # a worker whose every poll found the others had claimed the wave issues nothing and logs no
        # "working" line (seen on a fresh-clone CI run); each one that issued must have logged its progress
        if int(str(healths[n]["issued"])) > 0:
            assert "worker working: passports issued:" in log
        assert "worker starting:" in log
        assert "worker stopped:" in log
        assert "Traceback" not in log
        assert "001090" not in log  # no citizen ID, ever


def test_killed_worker_persons_are_finished_by_the_others_after_the_lease(pipeline: Pipeline) -> None:
    """kill -9 of a worker holding claims mid-batch: nothing half-stored; two other workers issue its persons
    once the lease (3 s) has run out, and every person still gets exactly one passport."""
    for wave in range(3):
        pipeline.add_wave(wave)
    db = open_database(pipeline.url)
    try:
        held = (_kill_blocked if db.backend == "postgresql" else _kill_sampled)(pipeline, db)
    finally:
        db.dispose()
    assert held > 0, "the worker was never caught holding claims"
    verified, holders, _ = _counts(pipeline.url)
    assert holders < verified  # the victim did not finish
    with _workers(pipeline, 2, "--lease-minutes", "0.05") as processes:
        _until(_all_issued(pipeline.url), "the dead worker's persons")
        assert _stop(processes) == [0, 0]
    _assert_exactly_once(pipeline.url)


def _claimed(db: Database) -> int:
    with db.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(issuance_claims)
            .where(issuance_claims.c.state == ClaimState.CLAIMED.value)
        ).scalar_one()


def _kill_blocked(pipeline: Pipeline, db: Database) -> int:
    """PostgreSQL: start one worker while the test holds a lock its first store waits on (the INSERT into
    passports), its first batch claimed and committed by the call before; kill -9 it there and end its session
    (as the server does once it notices). Returns the claims it held. Sampling the claims table instead raced a
    worker that issued all three waves before the first sample."""
    held = 0
    with db.engine.connect() as blocker:
        blocker.begin()
        blocker.exec_driver_sql("LOCK TABLE passports IN SHARE MODE")
        with _workers(pipeline, 1, "--lease-minutes", "0.05") as (victim,):
            for _ in range(600):
                held = _claimed(db)
                with db.connect() as conn:
                    waiting = conn.exec_driver_sql(_WAITING_ON_A_LOCK.format("count(*)")).scalar_one()
                if held and waiting:
                    break
                time.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(15) == -signal.SIGKILL
            with db.connect() as conn:
                conn.exec_driver_sql(_WAITING_ON_A_LOCK.format("pg_terminate_backend(pid)")).all()
        blocker.rollback()
    return held


_WAITING_ON_A_LOCK = (
    "SELECT {} FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def _kill_sampled(pipeline: Pipeline, db: Database) -> int:
    """SQLite (one writer: a held lock would stop the claim too): stop the worker while it holds claims (it
    mostly does, mid-batch), then kill -9 it. Returns the claims it held."""
    held = 0
    with _workers(pipeline, 1, "--lease-minutes", "0.05") as (victim,):
        rng = random.Random(7)
        for _ in range(2000):
            with db.connect() as conn:
                started = conn.execute(sa.select(sa.func.count()).select_from(issuance_claims)).scalar_one()
            if started:
                victim.send_signal(signal.SIGSTOP)
                held = _claimed(db)
                if held:
                    break
                victim.send_signal(signal.SIGCONT)
            time.sleep(rng.uniform(0, 0.01))
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(15) == -signal.SIGKILL
    return held


def test_sigterm_mid_run_leaves_no_half_state_and_a_restart_finishes(pipeline: Pipeline) -> None:
    """Two workers that also sign the sites' doses (--stages issue,sign-sites), stopped with SIGTERM while
    issuing: exit 0 within seconds, no claim left in flight, no passport without its doses, none twice; a
    restarted worker finishes the rest."""
    for wave in range(3):
        pipeline.add_wave(wave, sign=False)
    stages = ("--stages", "issue,sign-sites")
    with _workers(pipeline, 2, *stages) as processes:
        _until(lambda: _counts(pipeline.url)[1] > 0, "the first passports")
        started = time.monotonic()
        assert _stop(processes) == [0, 0]
        assert time.monotonic() - started < 10
    verified, holders, active = _counts(pipeline.url)
    assert holders == active <= verified
    assert [_health(pipeline, n)["state"] for n in range(2)] == ["stopped", "stopped"]
    with _workers(pipeline, 1, *stages) as processes:
        _until(_all_issued(pipeline.url), "the rest")
        assert _stop(processes) == [0]
    _assert_exactly_once(pipeline.url)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the token, not the database, is tested
def test_worker_signs_with_a_dsc_on_a_pkcs11_token(
    database_url: str, softhsm_token: TokenConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key chain on a SoftHSM2 token: the worker opens it with the PIN from $VAXCRED_PKCS11_PIN alone (no
    passphrase in its environment) and issues every eligible person one passport."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with KeyChainDir.init(tmp_path / "keys", b"", at, token=softhsm_token) as chain:
        for site in SITES:
            chain.new_site(site_id=site, site_name=f"Trạm {site}", now=at)
    monkeypatch.delenv("VAXCRED_PASSPHRASE", raising=False)
    monkeypatch.delenv("VAXCRED_DB", raising=False)
    assert _run(["db", "init", "--db", database_url])[0] == 0
    pipeline = Pipeline(url=database_url, keys=tmp_path / "keys", folder=tmp_path)
    pipeline.add_wave(0)
    with _workers(pipeline, 1, secret=(PIN_ENV, os.environ[PIN_ENV])) as processes:
        _until(_all_issued(pipeline.url), "the passports")
        assert _stop(processes) == [0]
    _assert_exactly_once(pipeline.url)


def test_worker_refuses_a_health_file_in_a_missing_folder(pipeline: Pipeline) -> None:
    """--health-file in a folder that does not exist: a usage error (exit 3) before any key is read."""
    health = pipeline.folder / "missing" / "health.json"
    code, out = _run(
        ["worker", "--keys", str(pipeline.keys), "--db", pipeline.url, "--health-file", str(health)]
    )
    assert code == 3
    assert "--health-file" in out


def test_worker_refuses_to_start_without_the_secret_in_the_environment(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No $VAXCRED_PASSPHRASE: exit 1 with the key-store code at once, nothing claimed."""
    monkeypatch.delenv("VAXCRED_PASSPHRASE")
    code, out = _run(["worker", "--keys", str(pipeline.keys), "--db", pipeline.url])
    assert code == 1
    assert "keys.no_passphrase" in out


# --- the service loop in process ------------------------------------------------------------------------


def test_failed_pass_is_counted_in_the_status_and_retried(
    pipeline: Pipeline, key_folder: Path, tmp_path: Path
) -> None:
    """An issuer that cannot sign: the pass fails, the status counts the error with its code, the service waits
    and tries again, then stops when asked; the states go starting → working → idle → … → stopped."""
    pipeline.add_wave(0)
    statuses: list[WorkerStatus] = []
    waits: list[float] = []
    calls = 0

    def issuer_for(_now: dt.datetime) -> object:
        nonlocal calls
        calls += 1
        raise IssuanceError("no DSC", code="issue.dsc_not_valid")

    db = open_database(pipeline.url)
    try:
        final = serve_issuance(
            db,
            issuer_for,  # type: ignore[arg-type]
            ServiceConfig(site_ca=load_certificate(key_folder / "site-ca.pem"), poll=1.0),
            worker="test",
            clock=lambda: dt.datetime.now(dt.UTC),
            stop=lambda: len(waits) >= 2,
            wait=waits.append,
            on_status=statuses.append,
        )
    finally:
        db.dispose()
    assert calls == 2
    assert final.state == "stopped"
    assert final.errors == 2
    assert final.last_error == "issue.dsc_not_valid"
    assert final.issued == 0
    assert statuses[0].state == "starting"
    assert "working" in [s.state for s in statuses]
    assert 1.6 <= waits[1] <= 2.4  # the second wait doubled (±20 % jitter)


def test_failed_site_signing_does_not_stop_issuance(pipeline: Pipeline, key_folder: Path) -> None:
    """A pass whose site-signing part fails (a site key filed under another site's id) still issues every
    eligible person; the failure is in the status with its code."""
    pipeline.add_wave(0)
    chain = KeyChainDir(folder=key_folder, passphrase=PASSPHRASE.encode())
    now = dt.datetime.now(dt.UTC)
    issuer = Issuer(chain.load_dsc_signer(now=now))
    waits: list[float] = []
    db = open_database(pipeline.url)
    try:
        final = serve_issuance(
            db,
            lambda _now: issuer,
            ServiceConfig(
                site_ca=load_certificate(key_folder / "site-ca.pem"),
                site_signers={SITES[0]: chain.load(f"sites/{SITES[1]}").signer()},
            ),
            worker="test",
            clock=lambda: dt.datetime.now(dt.UTC),
            stop=lambda: bool(waits),
            wait=waits.append,
        )
    finally:
        db.dispose()
    verified, holders, active = _counts(pipeline.url)
    assert final.issued == holders == active == verified > 0
    assert (final.errors, final.passes) == (1, 1)
    assert str(final.last_error).startswith("sitesign.")


def test_wait_between_passes_jitters_and_backs_off_to_a_ceiling() -> None:
    """The wait is poll ± 20 %; after failures it doubles, never past MAX_BACKOFF (+ jitter)."""
    rng = random.Random(1)
    waits = [_wait_seconds(10.0, 0, rng) for _ in range(200)]
    assert 8.0 <= min(waits) < max(waits) <= 12.0
    assert 16.0 <= _wait_seconds(10.0, 2, rng) <= 24.0
    assert _wait_seconds(10.0, 30, rng) <= MAX_BACKOFF * 1.2


def test_second_signal_stops_at_once() -> None:
    """The first SIGTERM/SIGINT asks for a graceful stop (and ends the wait early); the second raises at once."""
    from vaxcred.cli.worker import _Signals, _StopNow

    signals = _Signals()
    assert not signals.stop()
    signals._handle(signal.SIGTERM, None)
    assert signals.stop()
    started = time.monotonic()
    signals.wait(30.0)
    assert time.monotonic() - started < 1.0
    with pytest.raises(_StopNow):
        signals._handle(signal.SIGINT, None)
