"""kill -9 at random points of site signing, the registry check and correction resolution, on both backends.

Each test runs its stage in a child process (:mod:`tests.pipeline.stage_child`), kills it with SIGKILL after a
random number of committed batches plus a random few milliseconds (seeded; the seed is in every message), checks
what must hold after any crash, and lets a re-run finish. The invariants are ones a unique index does not
already enforce: every stored signature verifies for its dose as stored; every check stored once, matching the
person's status; a correction resolved if and only if its change, supersession and revocation are all stored.
Small data and two kills per test keep them fast.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from tests.pipeline.stage_child import NOW, PASSPHRASE, site_pairs
from vaxcred import keys
from vaxcred.issue import Issuer
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.cccd import Gender
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry, write_registry_csv
from vaxcred.pipeline.site_signing.record import verify_stored_dose
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    corrections,
    doses,
    passports,
    persons,
    registry_checks,
    revocations,
    site_certificates,
    site_signature_batches,
    site_signatures,
)

REPO = Path(__file__).resolve().parents[2]
CA_TIME = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
CHECKED = dt.datetime(2022, 4, 1, tzinfo=dt.UTC)
SITES = ("HCM-017", "HN-001")
PEOPLE = 40
NAME, OTHER_NAME = "Nguyễn Văn An", "Nguyễn Văn Khác"
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
KILLS = 2


def _citizen(i: int) -> str:
    return f"001090{i:06d}"


def _mismatched(i: int) -> bool:
    return i % 8 == 7


@pytest.fixture(scope="module")
def key_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Site certificates under a site CA, keys encrypted with cheap iterations; ``site-ca.pem`` beside."""
    folder = tmp_path_factory.mktemp("stage-keys")
    (folder / "sites").mkdir()
    site_ca = keys.make_site_ca(now=CA_TIME)
    keys.save_certificate(folder / "site-ca.pem", site_ca.certificate)
    for site in SITES:
        pair = keys.make_site_certificate(site_ca, site_id=site, site_name=f"Trạm {site}", now=CA_TIME)
        keys.save_private_key(folder / "sites" / f"{site}.key", pair.private_key, PASSPHRASE, iterations=1000)
        keys.save_certificate(folder / "sites" / f"{site}.pem", pair.certificate)
    return folder


@pytest.fixture(scope="module")
def registry_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stage-registry") / "registry.csv"
    entries = [
        RegistryEntry(
            citizen_id=_citizen(i),
            full_name=OTHER_NAME if _mismatched(i) else NAME,
            dob="1990-05-17",
            gender=Gender.MALE,
        )
        for i in range(PEOPLE)
    ]
    write_registry_csv(path, entries)
    return path


def _import(db: Database) -> None:
    rows = [HEADER]
    for i in range(PEOPLE):
        site = SITES[i % 2]
        rows.append(f"{_citizen(i)},{NAME},1990-05-17,M,Comirnaty,L{i}a,2021-08-01,1,{site}\n")
        rows.append(f"{_citizen(i)},{NAME},1990-05-17,M,Comirnaty,L{i}b,2021-09-01,2,{site}\n")
    assert import_lines(db, rows, format="csv").imported == 2 * PEOPLE


def _kill_at_random(argv: Sequence[str], rng: random.Random, max_lines: int) -> bool:
    """Run the child, kill -9 it after a random number of its lines plus a few ms; True if it died killed."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.stage_child", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            for _ in range(rng.randrange(0, max_lines)):
                if child.stdout.readline().strip() in ("end", ""):
                    break
            time.sleep(rng.uniform(0.0, 0.03))
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            child.kill()
    assert child.returncode in (0, -signal.SIGKILL)
    return child.returncode == -signal.SIGKILL


def _seeded() -> tuple[int, random.Random]:
    seed = random.SystemRandom().randrange(2**32)
    return seed, random.Random(seed)


# --- sign-sites ---------------------------------------------------------------------------------------------


def _assert_signatures_sound(db: Database, seed: int) -> int:
    """Every stored signature verifies, under its site's certificate, for its dose as stored, of a VERIFIED
    person, signed by the dose's own site; returns how many there are."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                site_signatures.c.cose,
                site_signatures.c.leaf_index,
                site_signatures.c.proof,
                site_signature_batches.c.head,
                site_signature_batches.c.site_id,  # a member's site and certificate are its batch's (0012)
                site_certificates.c.der,
                doses.c.site_id.label("dose_site"),
                doses.c.dose_number,
                doses.c.date,
                doses.c.lot,
                persons.c.citizen_id,
                persons.c.registry_status,
            )
            .join(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            .join(site_certificates, site_certificates.c.fingerprint == site_signature_batches.c.certificate)
            .join(doses, doses.c.id == site_signatures.c.dose_id)
            .join(persons, persons.c.id == doses.c.person_id)
        ).all()
    for r in rows:
        claims = verify_stored_dose(
            r.cose,
            r.head,
            r.leaf_index,
            r.proof,
            site_certificate=x509.load_der_x509_certificate(r.der),
            citizen_id=r.citizen_id,
            now=NOW,
        )
        assert (claims.site_id, claims.dose_number, claims.date, claims.lot) == (
            r.dose_site,
            r.dose_number,
            r.date.isoformat(),
            r.lot,
        ), f"seed {seed}"
        assert r.site_id == r.dose_site, f"seed {seed}"
        assert r.registry_status == "VERIFIED", f"seed {seed}"
    return len(rows)


def test_kill_9_during_sign_sites_then_a_rerun_signs_every_verified_dose_once(
    database: Database, database_url: str, key_folder: Path, registry_csv: Path
) -> None:
    """Killed at random batches: what was stored verifies; the re-run signs exactly the rest."""
    _import(database)
    run_registry_check(database, TableRegistry.from_csv(registry_csv), now=CHECKED)
    seed, rng = _seeded()
    for _ in range(KILLS):
        _kill_at_random(["sign", database_url, str(key_folder)], rng, max_lines=12)
        _assert_signatures_sound(database, seed)
    signers = {site: pair.signer() for site, pair in site_pairs(key_folder).items()}
    run_site_signing(database, signers, now=NOW)
    verified_doses = 2 * sum(1 for i in range(PEOPLE) if not _mismatched(i))
    assert _assert_signatures_sound(database, seed) == verified_doses, f"seed {seed}"


# --- registry-check -----------------------------------------------------------------------------------------


def _assert_checks_sound(db: Database, seed: int) -> None:
    """Each checked person has exactly one check, and its status and time are the person's."""
    with db.connect() as conn:
        people = conn.execute(
            sa.select(persons.c.id, persons.c.registry_status, persons.c.registry_checked_at)
        ).all()
        checks: dict[int, list[tuple[str, dt.datetime]]] = {}
        for person_id, status, at in conn.execute(
            sa.select(registry_checks.c.person_id, registry_checks.c.status, registry_checks.c.checked_at)
        ):
            checks.setdefault(person_id, []).append((status, at))
    for person_id, status, at in people:
        if status is None:
            assert person_id not in checks, f"seed {seed}: a check stored without the person's status"
        else:
            assert checks.get(person_id) == [(status, at)], f"seed {seed}"


@pytest.mark.parametrize(("workers", "matching"), [(1, "here"), (1, "matcher"), (2, "here")])
def test_kill_9_during_registry_check_then_a_rerun_checks_everyone_once(
    database: Database, database_url: str, registry_csv: Path, workers: int, matching: str
) -> None:
    """Killed at random batches (with worker processes or the forked matcher: the run that reads and looks up
    is killed, its workers stop after the batch they hold, the matcher with it): every stored result is whole;
    the re-run checks exactly the others."""
    _import(database)
    seed, rng = _seeded()
    for _ in range(KILLS):
        argv = ["registry", database_url, str(registry_csv), str(workers), matching]
        _kill_at_random(argv, rng, max_lines=6)
        _assert_checks_sound(database, seed)
    run_registry_check(database, TableRegistry.from_csv(registry_csv), now=NOW, workers=workers)
    _assert_checks_sound(database, seed)
    with database.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(persons.c.registry_status, sa.func.count()).group_by(persons.c.registry_status)
            ).all()
        )
    mismatched = sum(1 for i in range(PEOPLE) if _mismatched(i))
    assert statuses == {"VERIFIED": PEOPLE - mismatched, "MISMATCH": mismatched}, f"seed {seed}"


# --- corrections resolve ------------------------------------------------------------------------------------


def _assert_resolutions_whole(db: Database, filed: dict[int, str], seed: int) -> None:
    """A correction is resolved if and only if its new lot is stored, the old signature superseded, and the
    person's passport revoked with both revocation hashes; otherwise nothing of it is."""
    with db.connect() as conn:
        for correction_id, lot in filed.items():
            state, dose_id = conn.execute(
                sa.select(corrections.c.state, corrections.c.dose_id).where(corrections.c.id == correction_id)
            ).one()
            dose = conn.execute(sa.select(doses.c.lot, doses.c.person_id).where(doses.c.id == dose_id)).one()
            current = conn.execute(
                sa.select(sa.func.count()).where(
                    site_signatures.c.dose_id == dose_id, site_signatures.c.superseded_at.is_(None)
                )
            ).scalar_one()
            (passport_id, status) = conn.execute(
                sa.select(passports.c.id, passports.c.status).where(passports.c.person_id == dose.person_id)
            ).one()
            hashes = conn.execute(
                sa.select(sa.func.count()).where(revocations.c.passport_id == passport_id)
            ).scalar_one()
            resolved = state == "resolved"
            assert (dose.lot == lot, current == 0, status == "revoked", hashes == 2) == (
                resolved,
                resolved,
                resolved,
                resolved,
            ), f"seed {seed}: correction {correction_id} half applied"


def test_kill_9_during_corrections_resolve_leaves_each_correction_whole(
    database: Database, database_url: str, key_folder: Path, registry_csv: Path
) -> None:
    """Resolutions killed at random points: each correction is either wholly applied (record, supersession,
    revocation) or not at all; resolving the open ones and re-checking finishes the job."""
    _import(database)
    registry = TableRegistry.from_csv(registry_csv)
    run_registry_check(database, registry, now=CHECKED)
    signers = {site: pair.signer() for site, pair in site_pairs(key_folder).items()}
    run_site_signing(database, signers, now=CHECKED)
    dsc = keys.make_dsc(keys.make_csca(now=CA_TIME), now=CA_TIME)
    site_ca = keys.load_certificate(key_folder / "site-ca.pem")
    run_issuance(database, lambda: Issuer(dsc.signer()), now=CHECKED, site_ca=site_ca)
    filed: dict[int, str] = {}
    with database.connect() as conn:
        targets = conn.execute(
            sa.select(persons.c.citizen_id, doses.c.id)
            .join(doses, doses.c.person_id == persons.c.id)
            .where(persons.c.registry_status == "VERIFIED", doses.c.dose_number == 1)
            .order_by(persons.c.id)
            .limit(12)
        ).all()
    for n, (citizen_id, dose_id) in enumerate(targets):
        lot = f"FIX{n}"
        correction_id = file_correction(
            database, citizen_id=citizen_id, dose_id=dose_id, field="lot", proposed_value=lot, now=CHECKED
        )
        filed[correction_id] = lot
    seed, rng = _seeded()
    for _ in range(KILLS):
        with database.connect() as conn:
            still_open = [
                str(i)
                for i in conn.execute(
                    sa.select(corrections.c.id)
                    .where(corrections.c.state == "open")
                    .order_by(corrections.c.id)
                ).scalars()
            ]
        if not still_open:
            break
        _kill_at_random(["resolve", database_url, str(registry_csv), *still_open], rng, max_lines=4)
        _assert_resolutions_whole(database, filed, seed)
    with database.connect() as conn:
        remaining = list(
            conn.execute(sa.select(corrections.c.id).where(corrections.c.state == "open")).scalars()
        )
    for correction_id in remaining:
        resolve_correction(database, correction_id, now=NOW, registry=registry)
    run_registry_check(database, registry, now=NOW)  # persons a kill left between reset and re-check
    _assert_resolutions_whole(database, filed, seed)
    with database.connect() as conn:
        unchecked = conn.execute(
            sa.select(sa.func.count()).where(persons.c.registry_status.is_(None)).select_from(persons)
        ).scalar_one()
    assert unchecked == 0, f"seed {seed}"
