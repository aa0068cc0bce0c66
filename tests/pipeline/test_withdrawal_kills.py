"""kill -9 while ``duplicate`` corrections are resolved, on both backends: each withdrawal is whole or absent.

Persons hold passports issued on their two doses; a later import records each one's dose 2 again at the other
site (a contradictory history); ``duplicate`` corrections withdraw the original dose 2, which the passport relied
on. The child (:mod:`tests.pipeline.stage_child` ``resolve``) is killed at random points (seeded; the seed is in
every message); after each kill, a correction is resolved if and only if its dose is withdrawn, its site
signature superseded, and the passport revoked with both hashes. Resolving the rest and re-issuing then gives
every person a passport on the record in force that supersedes the revoked one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from tests.pipeline.stage_child import NOW, site_pairs
from tests.pipeline.test_stage_kills import (  # noqa: F401 (key_folder, registry_csv: fixtures)
    KILLS,
    NAME,
    SITES,
    _citizen,
    _kill_at_random,
    _mismatched,
    _seeded,
    key_folder,
    registry_csv,
)
from vaxcred import keys
from vaxcred.issue import Issuer
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import Database
from vaxcred.storage.schema import corrections, doses, passport_doses, passports, revocations, site_signatures

CA_TIME = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
CHECKED = dt.datetime(2022, 4, 1, tzinfo=dt.UTC)
#: persons the registry verifies (test_stage_kills' registry mismatches some on purpose)
PEOPLE = [i for i in range(16) if not _mismatched(i)][:12]
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"


def _row(i: int, lot: str, date: str, number: int, site: str) -> str:
    return f"{_citizen(i)},{NAME},1990-05-17,M,Comirnaty,{lot},{date},{number},{site}\n"


def _assert_withdrawals_whole(db: Database, filed: dict[int, int], seed: int) -> None:
    """Correction → dose: resolved iff the dose is withdrawn, its signature superseded, the passport issued on
    it revoked with both hashes; otherwise none of these."""
    with db.connect() as conn:
        for correction_id, dose_id in filed.items():
            state = conn.execute(
                sa.select(corrections.c.state).where(corrections.c.id == correction_id)
            ).scalar_one()
            withdrawn_at = conn.execute(
                sa.select(doses.c.withdrawn_at).where(doses.c.id == dose_id)
            ).scalar_one()
            current = conn.execute(
                sa.select(sa.func.count()).where(
                    site_signatures.c.dose_id == dose_id, site_signatures.c.superseded_at.is_(None)
                )
            ).scalar_one()
            passport_id, status = conn.execute(
                sa.select(passports.c.id, passports.c.status)
                .join(passport_doses, passport_doses.c.passport_id == passports.c.id)
                .where(passport_doses.c.dose_id == dose_id)
            ).one()
            hashes = conn.execute(
                sa.select(sa.func.count()).where(revocations.c.passport_id == passport_id)
            ).scalar_one()
            resolved = state == "resolved"
            applied = (withdrawn_at is not None, current == 0, status == "revoked", hashes == 2)
            assert applied == (resolved,) * 4, (
                f"seed {seed}: correction {correction_id} half applied: {applied}"
            )


def test_kill_9_during_duplicate_resolution_leaves_each_withdrawal_whole(
    database: Database,
    database_url: str,
    key_folder: Path,  # noqa: F811 (the fixture imported above)
    registry_csv: Path,  # noqa: F811
) -> None:
    """Withdrawals killed at random points are wholly applied or not at all; finishing them and re-issuing gives
    each person a successor passport on the record in force (2 of 2)."""
    clean = [HEADER]
    for i in PEOPLE:
        clean.append(_row(i, f"L{i}a", "2021-08-01", 1, SITES[i % 2]))
        clean.append(_row(i, f"L{i}b", "2021-09-01", 2, SITES[i % 2]))
    assert import_lines(database, clean, format="csv").imported == 2 * len(PEOPLE)
    registry = TableRegistry.from_csv(registry_csv)
    run_registry_check(database, registry, now=CHECKED)
    signers = {site: pair.signer() for site, pair in site_pairs(key_folder).items()}
    run_site_signing(database, signers, now=CHECKED)
    dsc = keys.make_dsc(keys.make_csca(now=CA_TIME), now=CA_TIME)
    site_ca = keys.load_certificate(key_folder / "site-ca.pem")
    assert run_issuance(database, lambda: Issuer(dsc.signer()), now=CHECKED, site_ca=site_ca).issued == len(
        PEOPLE
    )
    # dose 2 entered again at the other site
    late = [HEADER] + [_row(i, f"L{i}b", "2021-09-01", 2, SITES[(i + 1) % 2]) for i in PEOPLE]
    assert import_lines(database, late, format="csv").imported == len(PEOPLE)
    assert run_site_signing(database, signers, now=CHECKED).signed == len(PEOPLE)
    filed: dict[int, int] = {}
    for i in PEOPLE:
        key = (2, "2021-09-01", SITES[i % 2])  # the original, which the passport relied on
        correction_id = file_correction(
            database, citizen_id=_citizen(i), field="duplicate", dose_key=key, now=CHECKED
        )
        filed[correction_id] = _dose_of(database, correction_id)
    seed, rng = _seeded()
    for _ in range(KILLS):
        still_open = _open(database)
        if not still_open:
            break
        _kill_at_random(["resolve", database_url, str(registry_csv), *map(str, still_open)], rng, max_lines=5)
        _assert_withdrawals_whole(database, filed, seed)
    for correction_id in _open(database):
        resolve_correction(database, correction_id, now=NOW, registry=registry)
    _assert_withdrawals_whole(database, filed, seed)
    assert run_site_signing(database, signers, now=NOW).signed == 0, f"seed {seed}: a withdrawn record signed"
    issued = run_issuance(database, lambda: Issuer(dsc.signer()), now=NOW, site_ca=site_ca)
    assert issued.issued == len(PEOPLE), f"seed {seed}"
    with database.connect() as conn:
        active = conn.execute(
            sa.select(passports.c.id, passports.c.supersedes).where(passports.c.status == "active")
        ).all()
        linked_withdrawn = conn.execute(
            sa.select(sa.func.count())
            .select_from(passport_doses.join(doses, doses.c.id == passport_doses.c.dose_id))
            .where(
                passport_doses.c.passport_id.in_([a.id for a in active]), doses.c.withdrawn_at.is_not(None)
            )
        ).scalar_one()
    assert len(active) == len(PEOPLE), f"seed {seed}"
    assert all(a.supersedes is not None for a in active), f"seed {seed}"
    assert linked_withdrawn == 0, f"seed {seed}"


def _dose_of(db: Database, correction_id: int) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(corrections.c.dose_id).where(corrections.c.id == correction_id)
            ).scalar_one()
        )


def _open(db: Database) -> list[int]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(corrections.c.id).where(corrections.c.state == "open").order_by(corrections.c.id)
            ).scalars()
        )
