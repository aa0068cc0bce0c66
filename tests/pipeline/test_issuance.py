"""Central issuance on both backends: eligibility, the DCC, traceability, exactly-once, kill -9, worker processes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from tests.pipeline import issuance_child
from tests.pipeline.issuance_child import NOW, PASSPHRASE_ENV, issuer_factory, write_keys
from tests.pipeline.pg import PostgresCluster
from vaxcred import keys
from vaxcred.errors import IssuanceError
from vaxcred.issue import IssuedPassport, Issuer
from vaxcred.model import DCC, generate_uvci
from vaxcred.pipeline import log
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.issuance import Job, take_claims
from vaxcred.pipeline.issuance import select as issuance_select
from vaxcred.pipeline.issuance.rows import DoseRow
from vaxcred.pipeline.issuance.select import Reason, latest_dose, primary_series
from vaxcred.pipeline.issuance.stage import IssuanceReport, pending_count, run_issuance
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry
from vaxcred.pipeline.site_signing.record import sign_dose
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.result import Status
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import (
    doses,
    issuance_claims,
    issuance_log,
    passport_doses,
    passports,
    persons,
    registry_checks,
    site_certificates,
    site_signatures,
)
from vaxcred.trust import TrustStore
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.verify import verify

REPO = Path(__file__).resolve().parents[2]
CA_TIME = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
SITE_TIME = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
DSC_TIME = dt.datetime(2022, 4, 1, tzinfo=dt.UTC)
CHECK_TIME = dt.datetime(2022, 4, 9, tzinfo=dt.UTC)
SIGN_TIME = dt.datetime(2022, 4, 10, 9, 0, tzinfo=dt.UTC)
SITES = ("HN-001", "HCM-017", "DN-003")
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
MALE = ("Nguyễn Văn Đức", "Phạm Minh Tuấn", "Đặng Quốc Bảo")
FEMALE = ("Trần Thị Bích Ngọc", "Lê Thị Hoa", "Võ Ngọc Ánh")
NO_LEASE = dt.timedelta(0)


@dataclass(frozen=True)
class Chain:
    dsc: keys.KeyPair
    site_ca: keys.KeyPair
    sites: Mapping[str, keys.KeyPair]
    rogue_site: keys.KeyPair  # a certificate for HN-001 issued by another CA

    def issuer(self) -> Issuer:
        return Issuer(self.dsc.signer())

    def trust(self) -> TrustStore:
        return TrustStore.from_dsc_certificates([self.dsc.certificate.public_bytes(Encoding.DER)])


@pytest.fixture(scope="module")
def chain() -> Chain:
    csca = keys.make_csca(now=CA_TIME)
    site_ca = keys.make_site_ca(now=CA_TIME)
    sites = {
        site: keys.make_site_certificate(site_ca, site_id=site, site_name=f"Trạm Y tế {site}", now=SITE_TIME)
        for site in SITES
    }
    rogue = keys.make_site_certificate(
        keys.make_site_ca(now=CA_TIME), site_id="HN-001", site_name="Trạm Y tế giả", now=SITE_TIME
    )
    return Chain(dsc=keys.make_dsc(csca, now=DSC_TIME), site_ca=site_ca, sites=sites, rogue_site=rogue)


@pytest.fixture(scope="module")
def key_folder(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keys(tmp_path_factory.mktemp("issuance-keys"), chain.dsc, chain.site_ca)


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, issuance_child.PASSPHRASE.decode())


# --- the people ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A person as the sites recorded them, and the vaccination their passport must certify."""

    citizen_id: str
    full_name: str
    doses: tuple[tuple[str, str, str, int, str], ...]  # vaccine, lot, date, dose number, site
    expect: tuple[str, int, int, str]  # mp, dn, sd, dt

    def rows(self) -> list[str]:
        gender = "F" if self.citizen_id[3] == "1" else "M"
        return [
            f"{self.citizen_id},{self.full_name},1990-05-17,{gender},{v},{lot},{d},{n},{site}\n"
            for v, lot, d, n, site in self.doses
        ]

    def entry(self, *, full_name: str | None = None) -> RegistryEntry:
        gender = "F" if self.citizen_id[3] == "1" else "M"
        return RegistryEntry.from_fields(
            {
                "citizen_id": self.citizen_id,
                "full_name": full_name or self.full_name,
                "dob": "1990-05-17",
                "gender": gender,
            }
        )


def _mp(vaccine: str) -> str:
    return VIETNAM_VACCINES[vaccine].mp


def plan(i: int) -> Planned:
    """Person ``i``: four histories in turn — two doses; Janssen once; a booster of another product; and seed 004
    (dose 2 recorded before dose 1, at another site)."""
    female = i % 2 == 1
    citizen_id = f"001{int(female)}90{i:06d}"
    name = (FEMALE if female else MALE)[i // 2 % 3]
    kind = i % 4
    history: tuple[tuple[str, str, str, int, str], ...]
    if kind == 0:
        history = (
            ("Comirnaty", f"FK{i}a", "2021-08-01", 1, "HN-001"),
            ("Comirnaty", f"FK{i}b", "2021-09-01", 2, "HN-001"),
        )
        expect = (_mp("Comirnaty"), 2, 2, "2021-09-01")
    elif kind == 1:
        history = (("Janssen", f"JJ{i}", "2021-09-15", 1, "HCM-017"),)
        expect = (_mp("Janssen"), 1, 1, "2021-09-15")
    elif kind == 2:
        history = (
            ("Vaxzevria", f"AZ{i}a", "2021-07-01", 1, "HCM-017"),
            ("Vaxzevria", f"AZ{i}b", "2021-09-20", 2, "DN-003"),
            ("Comirnaty", f"FK{i}c", "2022-02-01", 3, "DN-003"),
        )
        expect = (_mp("Comirnaty"), 3, 3, "2022-02-01")
    else:
        history = (
            ("Comirnaty", f"FK{i}b", "2021-12-10", 2, "DN-003"),
            ("Comirnaty", f"FK{i}a", "2021-11-12", 1, "HN-001"),
        )
        expect = (_mp("Comirnaty"), 2, 2, "2021-12-10")
    return Planned(citizen_id=citizen_id, full_name=name, doses=history, expect=expect)


def populate(
    db: Database,
    chain: Chain,
    people: Sequence[Planned],
    *,
    mismatch: Sequence[Planned] = (),
    not_found: Sequence[Planned] = (),
) -> None:
    """Import everyone, check them against a registry (``mismatch``: another name there; ``not_found``: absent),
    and have every site sign its verified records."""
    everyone = [*people, *mismatch, *not_found]
    report = import_lines(db, [HEADER, *(row for p in everyone for row in p.rows())], format="csv")
    assert report.rejected == 0
    entries = [p.entry() for p in people] + [p.entry(full_name="Hoàng Văn Khác") for p in mismatch]
    run_registry_check(db, TableRegistry(entries), now=CHECK_TIME)
    run_site_signing(db, {site: pair.signer() for site, pair in chain.sites.items()}, now=SIGN_TIME)


def issue(db: Database, chain: Chain, **options: Any) -> IssuanceReport:
    options.setdefault("batch_size", 7)
    return run_issuance(db, chain.issuer, now=NOW, site_ca=chain.site_ca.certificate, **options)


def _scalar(db: Database, query: sa.Select[Any]) -> Any:
    with db.connect() as conn:
        return conn.execute(query).scalar_one()


def active_passports(db: Database) -> dict[str, list[str]]:
    """citizen ID -> the HC1 of each ACTIVE passport."""
    query = (
        sa.select(persons.c.citizen_id, passports.c.hc1)
        .join(persons, persons.c.id == passports.c.person_id)
        .where(passports.c.status == "active")
    )
    found: dict[str, list[str]] = {}
    with db.connect() as conn:
        for citizen_id, hc1 in conn.execute(query):
            found.setdefault(citizen_id, []).append(hc1)
    return found


def assert_exactly_one_each(db: Database, eligible: Sequence[Planned]) -> None:
    """Every eligible person holds exactly one ACTIVE passport, nobody else holds one, nothing is orphaned."""
    held = active_passports(db)
    assert {cid: len(hc1s) for cid, hc1s in held.items()} == {p.citizen_id: 1 for p in eligible}
    assert _scalar(db, sa.select(sa.func.count()).select_from(passports)) == len(eligible)
    unlinked = sa.select(sa.func.count()).where(
        ~sa.exists().where(passport_doses.c.passport_id == passports.c.id)
    )
    assert _scalar(db, unlinked.select_from(passports)) == 0
    still_claimed = sa.select(sa.func.count()).where(issuance_claims.c.state == "claimed")
    assert _scalar(db, still_claimed.select_from(issuance_claims)) == 0


def dose_ids(db: Database, person: Planned) -> list[int]:
    query = (
        sa.select(doses.c.id)
        .join(persons, persons.c.id == doses.c.person_id)
        .where(persons.c.citizen_id == person.citizen_id)
        .order_by(doses.c.id)
    )
    with db.connect() as conn:
        return list(conn.execute(query).scalars())


def replace_signature(db: Database, dose_id: int, cose: bytes, pair: keys.KeyPair) -> None:
    """Supersede the dose's current signature with ``cose``, signed by ``pair`` (its certificate stored)."""
    der = pair.certificate.public_bytes(Encoding.DER)
    fingerprint = hashlib.sha256(der).digest()
    site_id = pair.certificate.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    with db.begin() as conn:
        conn.execute(
            site_signatures.update()
            .where(site_signatures.c.dose_id == dose_id, site_signatures.c.superseded_at.is_(None))
            .values(superseded_at=SIGN_TIME)
        )
        conn.execute(
            db.insert_ignoring_conflicts(site_certificates, on=["fingerprint"]),
            {
                "fingerprint": fingerprint,
                "site_id": site_id,
                "kid": pair.kid,
                "der": der,
                "not_before": pair.certificate.not_valid_before_utc,
                "not_after": pair.certificate.not_valid_after_utc,
            },
        )
        conn.execute(
            sa.insert(site_signatures).values(
                dose_id=dose_id,
                site_id=site_id,
                certificate=fingerprint,
                kid=pair.kid,
                cose=cose,
                signed_at=SIGN_TIME,
            )
        )


def record_of(person: Planned, index: int, *, citizen_id: str | None = None) -> DoseRecord:
    vaccine, lot, date, number, site = person.doses[index]
    return DoseRecord(
        citizen_id=citizen_id or person.citizen_id,
        vaccine=vaccine,
        lot=lot,
        date=date,
        dose_number=number,
        site_id=site,
    )


# --- pure rules ---------------------------------------------------------------------------------------------------


def test_primary_series_janssen_one_abdala_three_others_two() -> None:
    """The primary-series table: single-dose products 1, Abdala 3, everything else 2."""
    assert primary_series(_mp("Janssen")) == 1
    assert primary_series("Sputnik-Light") == 1
    assert primary_series("Abdala") == 3
    for vaccine in ("Comirnaty", "Spikevax", "Vaxzevria", "BBIBP-CorV", "Sputnik-V", "Hayat-Vax", "Novavax"):
        assert primary_series(_mp(vaccine)) == 2


def test_latest_dose_is_the_greatest_date_then_number_then_site() -> None:
    """Latest dose: newest date; then the higher dose number; then the greater site ID (seed 004 duplicates)."""

    def row(i: int, date: str, number: int, site: str) -> DoseRow:
        return DoseRow(
            id=i,
            dose_number=number,
            date=dt.date.fromisoformat(date),
            site_id=site,
            vaccine="Comirnaty",
            lot="L",
            signature=None,
        )

    a, b = row(1, "2021-12-10", 2, "DN-003"), row(2, "2021-12-10", 2, "HN-001")
    assert latest_dose([a, b]) is b
    assert latest_dose([b, a]) is b  # not the order of the rows
    c = row(3, "2021-12-10", 3, "AA-000")
    assert latest_dose([a, b, c]) is c
    d = row(0, "2022-01-01", 1, "AA-000")
    assert latest_dose([a, b, c, d]) is d


# --- issuing ------------------------------------------------------------------------------------------------------


def test_every_eligible_person_gets_one_passport_that_verifies(database: Database, chain: Chain) -> None:
    """Verified, fully site-signed people each get one passport that verify() accepts, with their name, date of
    birth, latest dose and dn/sd."""
    people = [plan(i) for i in range(24)]
    populate(database, chain, people)
    assert pending_count(database) == 24

    report = issue(database, chain)

    assert (report.issued, report.skipped_ineligible, report.failed, report.already_issued) == (24, 0, 0, 0)
    assert_exactly_one_each(database, people)
    held = active_passports(database)
    trust = chain.trust()
    for person in people:
        result = verify(held[person.citizen_id][0], trust, now=NOW)
        assert result.status is Status.VALID, [s for s in result.steps if s.result != "ok"]
        assert result.holder is not None
        family, given = person.full_name.split(" ", 1)
        assert (result.holder.fn, result.holder.gn, result.holder.dob) == (family, given, "1990-05-17")
        assert result.certificate is not None
        (entry,) = result.certificate["v"]
        assert (entry["mp"], entry["dn"], entry["sd"], entry["dt"]) == person.expect
        assert (entry["co"], entry["tg"]) == ("VN", "840539006")
        assert entry["is"] == "Ministry of Health of Viet Nam"
        assert person.citizen_id not in entry["ci"]
    assert pending_count(database) == 0


def test_ineligible_people_get_no_passport_and_are_counted_by_reason(
    database: Database, chain: Chain
) -> None:
    """Unverified, not found, not checked, an unsigned dose, a tampered signature, a certificate outside the site
    CA, a record signed for another citizen, a dose changed after signing: no passport, each with its reason."""
    people = [plan(i) for i in range(16)]
    mismatch, not_found = [plan(100), plan(101)], [plan(102)]
    populate(database, chain, people, mismatch=mismatch, not_found=not_found)
    unchecked = plan(103)  # recorded after the registry check ran
    import_lines(database, [HEADER, *unchecked.rows()], format="csv")

    unsigned, tampered, rogue, other_citizen, changed = people[0], people[1], people[4], people[5], people[8]
    # a third dose recorded after the sites signed
    extra = f"{unsigned.citizen_id},{unsigned.full_name},1990-05-17,M,Comirnaty,FK-X,2022-03-01,3,HN-001\n"
    import_lines(database, [HEADER, extra], format="csv")
    with database.begin() as conn:
        first = dose_ids(database, tampered)[0]
        cose = conn.execute(
            sa.select(site_signatures.c.cose).where(site_signatures.c.dose_id == first)
        ).scalar_one()
        flipped = cose[:-1] + bytes([cose[-1] ^ 0x01])  # a bit of the signature
        conn.execute(site_signatures.update().where(site_signatures.c.dose_id == first).values(cose=flipped))
    rogue_record = sign_dose(record_of(rogue, 0), signer=chain.rogue_site.signer(), now=SIGN_TIME)
    replace_signature(database, dose_ids(database, rogue)[0], rogue_record.cose, chain.rogue_site)
    foreign = sign_dose(
        record_of(other_citizen, 0, citizen_id="001090999999"),
        signer=chain.sites["HCM-017"].signer(),
        now=SIGN_TIME,
    )
    replace_signature(database, dose_ids(database, other_citizen)[0], foreign.cose, chain.sites["HCM-017"])
    with database.begin() as conn:
        conn.execute(doses.update().where(doses.c.id == dose_ids(database, changed)[0]).values(lot="CHANGED"))

    report = issue(database, chain)

    bad = [unsigned, tampered, rogue, other_citizen, changed]
    eligible = [p for p in people if p not in bad]
    assert_exactly_one_each(database, eligible)
    assert report.issued == len(eligible)
    assert report.failed == 0
    assert report.skipped_ineligible == 9
    assert dict(report.reasons) == {
        Reason.REGISTRY_MISMATCH: 2,
        Reason.REGISTRY_NOT_FOUND: 1,
        Reason.REGISTRY_NOT_CHECKED: 1,
        Reason.DOSE_UNSIGNED: 1,
        Reason.SIGNATURE_INVALID: 1,
        Reason.UNTRUSTED_CERTIFICATE: 1,
        Reason.CITIZEN_MISMATCH: 1,
        Reason.RECORD_MISMATCH: 1,
    }


def test_signatures_without_a_certificate_link_are_matched_by_kid_among_their_sites_certificates(
    database: Database, chain: Chain
) -> None:
    """A signature row that names no certificate is verified with the stored certificates of its site that share
    its kid; an unknown kid is signature.unknown_certificate; a record signed after ``now`` is not accepted.
    (v1 rows: a batch member names its batch, whose certificate is always stored, since migration 0012.)"""
    people = [plan(i) for i in range(3)]
    populate(database, chain, people)
    by_kid, unknown, future = people
    for person in (by_kid, unknown):
        for index, dose_id in enumerate(dose_ids(database, person)):
            site = chain.sites[person.doses[index][4]]
            v1 = sign_dose(record_of(person, index), signer=site.signer(), now=SIGN_TIME)
            replace_signature(database, dose_id, v1.cose, site)
    with database.begin() as conn:
        for person, kid in ((by_kid, None), (unknown, b"\x00" * 8)):
            ids = dose_ids(database, person)
            values: dict[str, Any] = (
                {"certificate": None} if kid is None else {"certificate": None, "kid": kid}
            )
            conn.execute(
                site_signatures.update()
                .where(site_signatures.c.dose_id.in_(ids), site_signatures.c.superseded_at.is_(None))
                .values(**values)
            )
    late = sign_dose(
        record_of(future, 0), signer=chain.sites["HCM-017"].signer(), now=NOW + dt.timedelta(days=1)
    )
    replace_signature(database, dose_ids(database, future)[0], late.cose, chain.sites["HCM-017"])

    report = issue(database, chain)

    assert report.issued == 1
    assert list(active_passports(database)) == [by_kid.citizen_id]
    assert dict(report.reasons) == {Reason.UNKNOWN_CERTIFICATE: 1, Reason.CERTIFICATE_NOT_VALID: 1}


def test_a_rerun_issues_nothing_new(database: Database, chain: Chain) -> None:
    """Issuance is idempotent: the second run finds everyone holding a passport and changes nothing."""
    people = [plan(i) for i in range(12)]
    populate(database, chain, people, mismatch=[plan(50)])
    issue(database, chain)
    before = active_passports(database)

    again = issue(database, chain)

    assert (again.issued, again.failed, again.already_issued) == (0, 0, 12)
    assert dict(again.reasons) == {Reason.REGISTRY_MISMATCH: 1}
    assert active_passports(database) == before


def test_a_person_holding_an_active_passport_is_skipped(database: Database, chain: Chain) -> None:
    """People added later get passports; those holding one keep exactly the one they have."""
    first = [plan(i) for i in range(8)]
    populate(database, chain, first)
    issue(database, chain)
    before = active_passports(database)
    later = [plan(i) for i in range(8, 14)]
    populate(database, chain, later)

    report = issue(database, chain)

    assert (report.issued, report.already_issued) == (6, 8)
    assert_exactly_one_each(database, first + later)
    after = active_passports(database)
    assert all(after[p.citizen_id] == before[p.citizen_id] for p in first)


def test_a_revoked_passport_holder_gets_a_new_passport_with_a_fresh_uvci(
    database: Database, chain: Chain
) -> None:
    """A claim marked done in an earlier run does not block a later one: after revocation, a new passport with a
    new random UVCI is issued, linked to the one it supersedes."""
    person = plan(0)
    populate(database, chain, [person])
    issue(database, chain)
    with database.begin() as conn:
        old_uvci = conn.execute(sa.select(passports.c.uvci)).scalar_one()
        conn.execute(passports.update().values(status="revoked", revoked_at=NOW))

    report = issue(database, chain)

    assert report.issued == 1
    with database.connect() as conn:
        uvcis: dict[str, str] = {}
        for status, uvci in conn.execute(sa.select(passports.c.status, passports.c.uvci)):
            uvcis[status] = uvci
    assert uvcis["revoked"] == old_uvci
    assert uvcis["active"] != old_uvci
    with database.connect() as conn:
        links = dict(conn.execute(sa.select(passports.c.status, passports.c.supersedes)).all())
        old_id = conn.execute(sa.select(passports.c.id).where(passports.c.uvci == old_uvci)).scalar_one()
    assert links == {"revoked": None, "active": old_id}  # the successor names the passport it replaces
    assert person.citizen_id not in uvcis["active"]


def test_passports_trace_back_to_site_signed_doses_and_the_verified_check(
    database: Database, chain: Chain
) -> None:
    """Each passport links every dose of its holder with the current site signature relied on, and the newest
    registry check, which is VERIFIED; it stores UVCI, HC1, kid, iat, exp and the issuance time."""
    people = [plan(i) for i in range(8)]
    populate(database, chain, people)
    run_registry_check(database, TableRegistry([p.entry() for p in people]), now=CHECK_TIME, recheck=True)
    issue(database, chain)

    with database.connect() as conn:
        for row in conn.execute(sa.select(passports)):
            check = conn.execute(
                sa.select(registry_checks).where(registry_checks.c.id == row.registry_check_id)
            ).one()
            assert check.person_id == row.person_id
            assert check.status == "VERIFIED"
            newest = conn.execute(
                sa.select(sa.func.max(registry_checks.c.id)).where(
                    registry_checks.c.person_id == row.person_id
                )
            ).scalar_one()
            assert row.registry_check_id == newest  # the re-check, not the first one
            links = conn.execute(
                sa.select(
                    passport_doses.c.dose_id, passport_doses.c.site_signature_id, site_signatures.c.dose_id
                )
                .join(site_signatures, site_signatures.c.id == passport_doses.c.site_signature_id)
                .where(passport_doses.c.passport_id == row.id)
            ).all()
            own = set(conn.execute(sa.select(doses.c.id).where(doses.c.person_id == row.person_id)).scalars())
            assert {dose_id for dose_id, _, _ in links} == own
            assert all(dose_id == signed_dose for dose_id, _, signed_dose in links)
            assert row.kid == chain.dsc.kid
            assert row.uvci.startswith("URN:UVCI:01:VN:")
            assert row.hc1.startswith("HC1:")
            assert row.iat == NOW
            assert row.issued_at == NOW
            assert row.exp == NOW.replace(year=2023)


# --- the last line of defence ------------------------------------------------------------------------------------


class _MeddlingIssuer(Issuer):
    """An issuer that, while the first passport of the run is being signed (outside any transaction), lets
    someone else change the database."""

    def __init__(self, chain: Chain, meddle: Callable[[dt.datetime], None]) -> None:
        super().__init__(chain.dsc.signer())
        self._meddle: Callable[[dt.datetime], None] | None = meddle

    def issue(self, dcc: DCC | Mapping[str, Any], *, now: dt.datetime) -> IssuedPassport:
        passport = super().issue(dcc, now=now)
        if self._meddle is not None:
            self._meddle(now)
            self._meddle = None
        return passport


def _person_id(db: Database, person: Planned) -> int:
    return int(_scalar(db, sa.select(persons.c.id).where(persons.c.citizen_id == person.citizen_id)))


def test_a_passport_stored_meanwhile_by_someone_else_is_not_duplicated(
    database: Database, chain: Chain
) -> None:
    """The partial unique index wins: a person who got an ACTIVE passport elsewhere while being signed is counted
    passport.already_active, the run goes on, and everyone holds exactly one."""
    people = [plan(i) for i in range(6)]
    populate(database, chain, people)
    victim = _person_id(database, people[2])

    def another_worker_issues(now: dt.datetime) -> None:
        with database.begin() as conn:
            check = conn.execute(
                sa.select(sa.func.max(registry_checks.c.id)).where(registry_checks.c.person_id == victim)
            ).scalar_one()
            conn.execute(
                sa.insert(passports).values(
                    person_id=victim,
                    uvci="URN:UVCI:01:VN:BYT/OTHERWORKER#0",
                    hc1="HC1:x",
                    kid=b"k",
                    iat=now,
                    exp=now,
                    issued_at=now,
                    status="active",
                    registry_check_id=check,
                )
            )

    report = run_issuance(
        database,
        lambda: _MeddlingIssuer(chain, another_worker_issues),
        now=NOW,
        site_ca=chain.site_ca.certificate,
    )

    assert report.issued == 5
    assert dict(report.reasons) == {Reason.ALREADY_ACTIVE: 1}
    held = active_passports(database)
    assert {cid: len(hc1s) for cid, hc1s in held.items()} == {p.citizen_id: 1 for p in people}
    assert _count_passports(database) == 6
    assert active_passports(database)[people[2].citizen_id] == ["HC1:x"]


def test_a_worker_that_lost_its_claim_stores_nothing_for_that_person(
    database: Database, chain: Chain
) -> None:
    """Fencing: when another worker took a claim over (the lease ran out) while this one was signing, this one
    stores no passport for that person (claim.lost) and leaves the claim to its new owner."""
    people = [plan(i) for i in range(4)]
    populate(database, chain, people)
    victim = _person_id(database, people[0])

    def taken_over(_now: dt.datetime) -> None:
        with database.begin() as conn:
            conn.execute(
                issuance_claims.update()
                .where(issuance_claims.c.person_id == victim)
                .values(worker="thief:2:cd", claimed_at=dt.datetime.now(dt.UTC))
            )

    report = run_issuance(
        database, lambda: _MeddlingIssuer(chain, taken_over), now=NOW, site_ca=chain.site_ca.certificate
    )

    assert (report.issued, report.failed) == (3, 1)
    assert dict(report.reasons) == {Reason.CLAIM_LOST: 1}
    assert people[0].citizen_id not in active_passports(database)
    with database.connect() as conn:
        owner = conn.execute(
            sa.select(issuance_claims.c.worker, issuance_claims.c.state).where(
                issuance_claims.c.person_id == victim
            )
        ).one()
    assert tuple(owner) == ("thief:2:cd", "claimed")
    assert issue(database, chain, lease=NO_LEASE).issued == 1
    assert_exactly_one_each(database, people)


def test_a_signature_superseded_while_signing_stores_no_passport(database: Database, chain: Chain) -> None:
    """A correction that supersedes a signature the passport relied on, committed while the passport was being
    signed, is seen at commit: no passport (record.changed); the next run decides again."""
    people = [plan(i) for i in range(4)]
    populate(database, chain, people)
    victim = _person_id(database, people[0])

    def corrected(now: dt.datetime) -> None:
        with database.begin() as conn:
            dose = conn.execute(
                sa.select(sa.func.min(doses.c.id)).where(doses.c.person_id == victim)
            ).scalar_one()
            conn.execute(
                site_signatures.update()
                .where(site_signatures.c.dose_id == dose, site_signatures.c.superseded_at.is_(None))
                .values(superseded_at=now)
            )

    report = run_issuance(
        database, lambda: _MeddlingIssuer(chain, corrected), now=NOW, site_ca=chain.site_ca.certificate
    )

    assert (report.issued, report.failed) == (3, 1)
    assert dict(report.reasons) == {Reason.RECORD_CHANGED: 1}
    assert people[0].citizen_id not in active_passports(database)
    again = issue(database, chain)
    assert (again.issued, dict(again.reasons)) == (0, {Reason.DOSE_UNSIGNED: 1})


def test_an_integrity_error_rolls_back_only_that_persons_transaction(
    database: Database, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passport that cannot be stored (here: its UVCI collides) fails alone; the rest of its batch is stored."""
    people = [plan(i) for i in range(6)]
    populate(database, chain, people)
    issue(database, chain)
    with database.begin() as conn:
        taken = conn.execute(sa.select(passports.c.uvci).limit(1)).scalar_one()
        conn.execute(passports.update().values(status="revoked", revoked_at=NOW))
    uvcis = iter([taken])
    real = generate_uvci
    monkeypatch.setattr(issuance_select, "generate_uvci", lambda country: next(uvcis, None) or real(country))

    report = issue(database, chain, batch_size=50)

    assert (report.issued, report.failed) == (5, 1)
    assert dict(report.reasons) == {Reason.ISSUE_REFUSED: 1}
    assert len(active_passports(database)) == 5
    assert _scalar(database, sa.select(sa.func.count()).where(issuance_claims.c.state == "claimed")) == 0
    monkeypatch.undo()
    assert issue(database, chain).issued == 1  # the next run retries it


# --- claims -------------------------------------------------------------------------------------------------------


def _claim(db: Database, citizen_id: str, *, at: dt.datetime, state: str = "claimed") -> None:
    with db.begin() as conn:
        person_id = conn.execute(
            sa.select(persons.c.id).where(persons.c.citizen_id == citizen_id)
        ).scalar_one()
        conn.execute(
            sa.insert(issuance_claims).values(
                person_id=person_id, state=state, worker="elsewhere:1:ab", claimed_at=at
            )
        )


def test_a_live_claim_is_left_alone_and_an_expired_one_is_taken(database: Database, chain: Chain) -> None:
    """Another worker's claim younger than the lease keeps the person away; one older than the lease (a dead
    worker) is taken over."""
    people = [plan(i) for i in range(4)]
    populate(database, chain, people)
    wall = dt.datetime.now(dt.UTC)
    _claim(database, people[0].citizen_id, at=wall - dt.timedelta(minutes=1))
    _claim(database, people[1].citizen_id, at=wall - dt.timedelta(minutes=11))

    report = issue(database, chain, lease=dt.timedelta(minutes=10))

    assert report.issued == 3
    assert people[0].citizen_id not in active_passports(database)
    assert issue(database, chain, lease=NO_LEASE).issued == 1  # "I know that worker is gone"
    assert_exactly_one_each(database, people)


def test_the_claim_upsert_takes_only_free_rows_whatever_the_select_saw(
    database: Database, chain: Chain
) -> None:
    """The authority on claims: a row claimed by a live worker or done in this run is not taken; a row never
    claimed, claimed by a worker whose lease ran out, or done before this run started is."""
    people = [plan(i) for i in range(5)]
    populate(database, chain, people)
    wall = dt.datetime.now(dt.UTC)
    _claim(database, people[0].citizen_id, at=wall - dt.timedelta(minutes=1))  # live
    _claim(database, people[1].citizen_id, at=wall - dt.timedelta(minutes=11))  # lease ran out
    _claim(database, people[2].citizen_id, at=wall - dt.timedelta(hours=1), state="done")  # an earlier run
    _claim(database, people[3].citizen_id, at=wall, state="done")  # this run
    job = Job(
        now=NOW,
        site_ca_der=b"",
        batch_size=10,
        lease=dt.timedelta(minutes=10),
        run_started=wall - dt.timedelta(seconds=1),
        certificate_issuer="x",
        clock=lambda: wall,
    )
    with database.connect() as conn:
        ids = {cid: pid for pid, cid in conn.execute(sa.select(persons.c.id, persons.c.citizen_id))}
    wanted = [ids[p.citizen_id] for p in people]

    with database.begin() as conn:
        taken = take_claims(database, conn, wanted, job=job, worker="me:1:00", claimed_at=wall)

    assert taken == sorted(ids[p.citizen_id] for p in (people[1], people[2], people[4]))
    with database.connect() as conn:
        owners = dict(conn.execute(sa.select(issuance_claims.c.person_id, issuance_claims.c.worker)).all())
    assert owners[ids[people[0].citizen_id]] == "elsewhere:1:ab"
    assert owners[ids[people[3].citizen_id]] == "elsewhere:1:ab"
    assert all(owners[pid] == "me:1:00" for pid in taken)


def test_an_issuer_that_cannot_sign_stops_the_run_and_releases_its_claims(
    database: Database, chain: Chain
) -> None:
    """A DSC that may not sign at ``now`` raises instead of failing everyone, and leaves no claim behind."""
    people = [plan(i) for i in range(3)]
    populate(database, chain, people)
    late = NOW.replace(year=2030)

    with pytest.raises(IssuanceError) as caught:
        run_issuance(database, chain.issuer, now=late, site_ca=chain.site_ca.certificate)

    assert caught.value.code == "issue.dsc_not_valid"
    assert _scalar(database, sa.select(sa.func.count()).select_from(passports)) == 0
    assert _scalar(database, sa.select(sa.func.count()).where(issuance_claims.c.state == "claimed")) == 0
    assert issue(database, chain).issued == 3


# --- progress, privacy, arguments ----------------------------------------------------------------------------------


def test_progress_counts_persons_evaluated(database: Database, chain: Chain) -> None:
    """on_progress gets the running number of persons looked at, after each committed batch."""
    people = [plan(i) for i in range(15)]
    populate(database, chain, people)
    seen: list[int] = []

    report = issue(database, chain, batch_size=4, on_progress=seen.append)

    assert seen == [4, 8, 12, 15]
    assert report.evaluated == 15


def test_nothing_personal_is_logged(
    database: Database, chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    """Log lines carry counts and row ids, never citizen IDs or names."""
    people = [plan(i) for i in range(5)]
    populate(database, chain, people, mismatch=[plan(9)])
    with caplog.at_level(logging.DEBUG, logger="vaxcred"):
        issue(database, chain)
    text = caplog.text
    assert caplog.records
    for person in [*people, plan(9)]:
        assert person.citizen_id not in text
        assert person.full_name.split()[0] not in text


def test_caller_mistakes_are_refused(database: Database, chain: Chain) -> None:
    """A naive ``now``, no workers, a zero batch, a negative lease: TypeError / ValueError."""
    site_ca = chain.site_ca.certificate
    with pytest.raises(ValueError, match="timezone"):
        run_issuance(database, chain.issuer, now=NOW.replace(tzinfo=None), site_ca=site_ca)
    with pytest.raises(ValueError, match="workers"):
        run_issuance(database, chain.issuer, now=NOW, site_ca=site_ca, workers=0)
    with pytest.raises(ValueError, match="batch_size"):
        run_issuance(database, chain.issuer, now=NOW, site_ca=site_ca, batch_size=0)
    with pytest.raises(ValueError, match="lease"):
        run_issuance(database, chain.issuer, now=NOW, site_ca=site_ca, lease=dt.timedelta(seconds=-1))
    with pytest.raises(TypeError, match="site_ca"):
        run_issuance(database, chain.issuer, now=NOW, site_ca=b"pem")  # type: ignore[arg-type]


# --- processes -----------------------------------------------------------------------------------------------------


def _child(
    url: str, folder: Path, *, batch_size: int, lease: float, wait: bool = False, workers: int = 1
) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "tests.pipeline.issuance_child",
        url,
        str(folder),
        str(batch_size),
        str(lease),
    ]
    argv += ["wait"] if wait else []
    argv += [f"workers={workers}"] if workers > 1 else []
    return subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _count_passports(db: Database) -> int:
    return int(_scalar(db, sa.select(sa.func.count()).select_from(passports)))


def assert_never_two(db: Database) -> None:
    """At any moment, after any kill: every stored passport is ACTIVE (none was stored and then displaced), links
    exactly its person's doses through their current signatures, and its claim is done (committed together).
    (One ACTIVE passport per person is the unique index's job, which no kill can break: not asserted here.)"""
    with db.connect() as conn:
        rows = conn.execute(sa.select(passports.c.id, passports.c.person_id, passports.c.status)).all()
        for passport_id, person_id, status in rows:
            assert status == "active"
            linked = set(
                conn.execute(
                    sa.select(passport_doses.c.dose_id, passport_doses.c.site_signature_id).where(
                        passport_doses.c.passport_id == passport_id
                    )
                ).all()
            )
            current = set(
                conn.execute(
                    sa.select(doses.c.id, site_signatures.c.id)
                    .join(site_signatures, site_signatures.c.dose_id == doses.c.id)
                    .where(doses.c.person_id == person_id, site_signatures.c.superseded_at.is_(None))
                ).all()
            )
            assert linked == current
            claim = conn.execute(
                sa.select(issuance_claims.c.state).where(issuance_claims.c.person_id == person_id)
            ).scalar_one()
            assert claim == "done"


def test_kill_9_at_random_moments_then_a_rerun_leaves_exactly_one_passport_each(
    database: Database, database_url: str, chain: Chain, key_folder: Path, passphrase: None
) -> None:
    """Issuance children are killed with SIGKILL at random moments — once the stored passports reach a random
    count, plus a random few milliseconds (so: while claiming, signing or committing); after each kill nothing is
    half-stored, and a re-run finishes the job: every eligible person holds exactly one ACTIVE passport, no
    orphans, no claim left. At least one kill must have hit a batch between its claim and its commit."""
    people = [plan(i) for i in range(200)]
    populate(database, chain, people, mismatch=[plan(500)])
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    killed = mid_batch = 0
    claimed = sa.select(sa.func.count()).where(issuance_claims.c.state == "claimed")
    # up to 20 children: under load a kill can land between batches several times in a row (seen on a busy
    # 2-core machine with 8 tries); the loop stops as soon as both kinds of kill have happened. A batch of 4
    # takes a few milliseconds from claim to commit, so a kill at a random moment rarely lands inside one:
    # every other child (once three random kills happened without one) is killed as soon as a claim shows
    watch_claims = False
    for _attempt in range(20):
        if killed >= 3 and mid_batch:
            break
        stored = _count_passports(database)
        target = stored + rng.randrange(0, (len(people) - stored) // 3 + 1)
        watch_claims = killed >= 3 and not watch_claims
        with _child(database_url, key_folder, batch_size=4, lease=0) as child:
            assert child.stdout is not None
            try:
                assert child.stdout.readline().strip() == "ready"
                deadline = time.monotonic() + 60
                while _count_passports(database) < target and child.poll() is None:
                    assert time.monotonic() < deadline, f"seed {seed}: no progress"
                    time.sleep(0.001)
                if watch_claims:
                    while (
                        not _scalar(database, claimed.select_from(issuance_claims)) and child.poll() is None
                    ):
                        assert time.monotonic() < deadline, f"seed {seed}: no progress"
                else:
                    time.sleep(rng.uniform(0.0, 0.02))
                child.send_signal(signal.SIGKILL)
            finally:
                child.kill()  # never leave a child behind on a failed assertion
        assert child.returncode in (0, -signal.SIGKILL), f"seed {seed}"
        killed += child.returncode == -signal.SIGKILL
        assert_never_two(database)
        mid_batch += _scalar(database, claimed.select_from(issuance_claims)) > 0
    assert killed >= 3, f"seed {seed}: the children finished before they could be killed"
    assert mid_batch, f"seed {seed}: no kill landed between a claim and its commit"

    report = issue(database, chain, lease=NO_LEASE)

    assert report.failed == 0, f"seed {seed}: {report}"
    assert report.issued + report.already_issued == len(people), f"seed {seed}"
    assert_exactly_one_each(database, people)


def test_three_worker_processes_issue_exactly_once(
    database: Database, chain: Chain, key_folder: Path, passphrase: None
) -> None:
    """workers=3: three spawned processes, each with its own issuer from the picklable factory, share the queue;
    progress is aggregated in the caller."""
    people = [plan(i) for i in range(90)]
    populate(database, chain, people, not_found=[plan(700)])
    seen: list[int] = []

    report = run_issuance(
        database,
        issuer_factory(key_folder),
        now=NOW,
        site_ca=chain.site_ca.certificate,
        workers=3,
        batch_size=5,
        on_progress=seen.append,
    )

    assert (report.issued, report.failed) == (90, 0)
    assert dict(report.reasons) == {Reason.REGISTRY_NOT_FOUND: 1}
    assert seen == sorted(seen)
    assert seen[-1] == 90
    assert_exactly_one_each(database, people)


def test_a_failing_worker_process_fails_the_run(database: Database, chain: Chain, key_folder: Path) -> None:
    """A worker that cannot build its issuer (no passphrase in its environment) makes the run raise."""
    populate(database, chain, [plan(0)])
    with pytest.raises(PipelineError) as caught:
        run_issuance(
            database, issuer_factory(key_folder), now=NOW, site_ca=chain.site_ca.certificate, workers=2
        )
    assert caught.value.code == "pipeline.issuance_worker_failed"
    assert "keys.no_passphrase" in caught.value.message


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster) -> Iterator[tuple[Database, str]]:
    """A migrated database on the throwaway PostgreSQL server only (and its URL)."""
    url = pg_cluster.create_database()
    db = open_database(url)
    try:
        db.migrate()
        yield db, url
    finally:
        db.dispose()
        pg_cluster.drop_database(url)


def test_three_worker_processes_on_postgresql_issue_each_passport_exactly_once(
    pg_database: tuple[Database, str], chain: Chain, key_folder: Path, passphrase: None
) -> None:
    """Three separate worker processes (as on three machines) started together against the real PostgreSQL
    server claim with FOR NO KEY UPDATE SKIP LOCKED: every eligible person gets exactly one passport, and no
    worker signed a passport that another had already stored (the issued counts add up exactly)."""
    db, url = pg_database
    people = [plan(i) for i in range(240)]
    populate(db, chain, people, mismatch=[plan(900)])
    children = [_child(url, key_folder, batch_size=3, lease=600, wait=True) for _ in range(3)]
    outputs = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # release all three at once
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            child.kill()

    assert sum(o["issued"] for o in outputs) == len(people)
    assert all(o["failed"] == 0 for o in outputs)
    assert all(Reason.ALREADY_ACTIVE not in o["reasons"] for o in outputs)
    assert sum(1 for o in outputs if o["issued"]) >= 2, outputs
    assert_exactly_one_each(db, people)
    # (two ACTIVE passports for one person is the unique index's to refuse; what can fail is extra rows)
    assert _count_passports(db) == len(people)
    assert_never_two(db)
    with db.connect() as conn:
        workers = conn.execute(sa.select(sa.func.count(sa.distinct(issuance_claims.c.worker)))).scalar_one()
    assert workers >= 2


# --- issue 9: leases, workers dying with their parent, claims held by another run ------------------------------


def test_lease_zero_on_a_fresh_run_never_makes_its_own_workers_steal_claims(
    database: Database, chain: Chain, key_folder: Path, passphrase: None
) -> None:
    """workers=2 with lease 0: the run's workers keep each other's claims (no claim.lost, nothing signed twice)."""
    people = [plan(i) for i in range(40)]
    populate(database, chain, people)
    report = run_issuance(
        database,
        issuer_factory(key_folder),
        now=NOW,
        site_ca=chain.site_ca.certificate,
        workers=2,
        batch_size=2,
        lease=NO_LEASE,
    )
    assert (report.issued, report.failed) == (40, 0), dict(report.reasons)
    assert Reason.CLAIM_LOST not in report.reasons
    assert_exactly_one_each(database, people)


def test_a_rerun_reports_the_persons_another_run_holds(database: Database, chain: Chain) -> None:
    """Persons under another run's live claim are left alone and counted in held_elsewhere."""
    people = [plan(i) for i in range(6)]
    populate(database, chain, people)
    with database.begin() as conn:
        held = list(conn.execute(sa.select(persons.c.id).order_by(persons.c.id).limit(2)).scalars())
        conn.execute(
            sa.insert(issuance_claims),
            [
                {
                    "person_id": pid,
                    "state": "claimed",
                    "worker": "other-run",
                    "claimed_at": dt.datetime.now(dt.UTC),
                }
                for pid in held
            ],
        )
    report = issue(database, chain)
    assert (report.issued, report.held_elsewhere) == (4, 2)


def _children_of(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    parents = {pid}
    while True:
        new = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) in parents:
                new.add(int(entry.name))
        if not new:
            return found
        found |= new
        parents = new


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_a_run_with_two_workers_kills_its_workers_and_a_rerun_finishes(
    database: Database, database_url: str, chain: Chain, key_folder: Path, passphrase: None
) -> None:
    """A parent with two worker processes is killed with SIGKILL at random moments (seeded): its workers die
    with it (none keeps signing), nothing is half-stored, and a lease-0 re-run finishes the job exactly once."""
    people = [plan(i) for i in range(120)]
    populate(database, chain, people)
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    for _attempt in range(3):
        stored = _count_passports(database)
        if stored == len(people):
            break
        target = stored + rng.randrange(0, (len(people) - stored) // 3 + 1)
        with _child(database_url, key_folder, batch_size=3, lease=0, workers=2) as child:
            assert child.stdout is not None
            try:
                assert child.stdout.readline().strip() == "ready"
                deadline = time.monotonic() + 60
                while _count_passports(database) < target and child.poll() is None:
                    assert time.monotonic() < deadline, f"seed {seed}: no progress"
                    time.sleep(0.002)
                workers = _children_of(child.pid)
                time.sleep(rng.uniform(0.0, 0.02))
                child.send_signal(signal.SIGKILL)
                child.wait(10)
                deadline = time.monotonic() + 10
                while any(_alive(w) for w in workers):
                    assert time.monotonic() < deadline, f"seed {seed}: workers outlived their parent"
                    time.sleep(0.05)
            finally:
                child.kill()
        assert_never_two(database)
    report = issue(database, chain, lease=NO_LEASE)
    assert report.failed == 0, f"seed {seed}: {report}"
    assert report.issued + report.already_issued == len(people), f"seed {seed}"
    assert_exactly_one_each(database, people)
    assert_never_two(database)


def test_a_worker_process_dies_when_its_parent_is_killed() -> None:
    """A process that called _die_with_parent is killed by the kernel when its parent gets SIGKILL (it would
    otherwise sleep on for a minute)."""
    worker = (
        "import os, sys, time\n"
        "from vaxcred.pipeline.issuance.workers import _die_with_parent\n"
        "_die_with_parent(os.getppid())\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {worker!r}])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent], cwd=REPO, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            assert proc.stdout.readline().strip() == "ready"  # the worker inherited the pipe
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            deadline = time.monotonic() + 5
            while _alive(child):
                assert time.monotonic() < deadline, "the worker outlived its parent"
                time.sleep(0.05)
        finally:
            proc.kill()


# --- the batched store: what it logs and stores does not depend on how the persons were batched ----------------


def _stored_by_person(db: Database) -> dict[str, tuple[Any, ...]]:
    """citizen ID -> (status, dn/sd/dt of the DCC, the passport's dose links, the check it relied on, supersedes)."""
    out: dict[str, tuple[Any, ...]] = {}
    with db.connect() as conn:
        links: dict[int, list[int]] = {}
        for passport_id, dose_id in conn.execute(
            sa.select(passport_doses.c.passport_id, passport_doses.c.dose_id)
        ):
            links.setdefault(passport_id, []).append(dose_id)
        for row in conn.execute(
            sa.select(passports, persons.c.citizen_id).join(persons, persons.c.id == passports.c.person_id)
        ):
            out[row.citizen_id] = (
                row.status,
                sorted(links.get(row.id, [])),
                row.registry_check_id,
                row.supersedes,
            )
    return out


def test_the_log_entry_issuance_builds_is_the_one_read_back_from_the_stored_rows(
    database: Database, chain: Chain
) -> None:
    """Issuance logs entries built from the values it inserts (no re-read): each must equal build_entries() of the
    stored rows (what the log audit recomputes), re-issues after a revocation (supersedes) included."""
    people = [plan(i) for i in range(9)]
    populate(database, chain, people)
    issue(database, chain, batch_size=4)
    with database.begin() as conn:
        conn.execute(passports.update().where(passports.c.id <= 3).values(status="revoked", revoked_at=NOW))
    assert issue(database, chain, batch_size=1000).issued == 3

    with database.connect() as conn:
        logged = dict(
            conn.execute(
                sa.select(issuance_log.c.object_id, issuance_log.c.entry).where(
                    issuance_log.c.kind == "passport"
                )
            ).all()
        )
        ids = list(conn.execute(sa.select(passports.c.id)).scalars())
        rebuilt = log.build_entries(conn, log.Kind.PASSPORT, ids)
    assert len(logged) == 12
    assert {k: bytes(v) for k, v in logged.items()} == rebuilt  # what the audit recomputes


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_batch_size_changes_nothing_that_is_stored(database: Database, chain: Chain, batch_size: int) -> None:
    """One person per batch and the whole population in one batch store the same passports as the simple model
    (every eligible person: one ACTIVE passport linking all their doses, the newest check, no predecessor)."""
    people = [plan(i) for i in range(10)]
    populate(database, chain, people, mismatch=[plan(10)], not_found=[plan(11)])

    report = issue(database, chain, batch_size=batch_size)

    assert (report.issued, report.skipped_ineligible, report.failed) == (10, 2, 0)
    with database.connect() as conn:
        newest = dict(
            conn.execute(
                sa.select(persons.c.citizen_id, sa.func.max(registry_checks.c.id))
                .join(persons, persons.c.id == registry_checks.c.person_id)
                .group_by(persons.c.citizen_id)
            ).all()
        )
    model = {p.citizen_id: ("active", dose_ids(database, p), newest[p.citizen_id], None) for p in people}
    assert _stored_by_person(database) == model
    assert_exactly_one_each(database, people)


def test_sqlite_reads_a_claimed_batch_without_the_write_lock(
    database: Database, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the claim's write transaction holds the write lock for the claim only (the ids and the upsert);
    the batch's rows are read after it commits, so another writer can start while a worker reads (the two
    workers' write transactions no longer wait on each other's reads). Every batch still issues as before."""
    if database.backend != "sqlite":
        pytest.skip("SQLite's single write lock (PostgreSQL claims and reads in one call)")
    import sqlite3

    from vaxcred.pipeline.issuance import claims

    people = [plan(i) for i in range(9)]
    populate(database, chain, people)
    path = database.engine.url.database
    assert path
    real = claims.load_candidates
    reads: list[int] = []

    def load_candidates_while_another_writer_begins(conn: Any, person_ids: Sequence[int]) -> Any:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" while the claim's transaction is open
            other.execute("ROLLBACK")
        finally:
            other.close()
        reads.append(len(person_ids))
        return real(conn, person_ids)

    monkeypatch.setattr(claims, "load_candidates", load_candidates_while_another_writer_begins)
    report = issue(database, chain, batch_size=4)
    assert report.issued == len(people)
    assert reads == [4, 4, 1]
    assert_exactly_one_each(database, people)


def test_a_failed_read_of_a_claimed_batch_leaves_nothing_claimed(
    database: Database, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is read after its claims commit: a read that fails gives the claims back at once (as a read
    inside the claim's transaction rolled them back), so a re-run does not wait for the lease."""
    if database.backend != "sqlite":
        pytest.skip("SQLite's claim and read (PostgreSQL claims and reads in one call)")
    from vaxcred.pipeline.issuance import claims

    people = [plan(i) for i in range(3)]
    populate(database, chain, people)

    def failing_read(conn: Any, person_ids: Sequence[int]) -> Any:
        raise RuntimeError("the read failed")

    monkeypatch.setattr(claims, "load_candidates", failing_read)
    with pytest.raises(RuntimeError, match="the read failed"):
        issue(database, chain)
    claimed = sa.select(sa.func.count()).select_from(issuance_claims)
    assert _scalar(database, claimed.where(issuance_claims.c.state == "claimed")) == 0
    monkeypatch.undo()
    assert issue(database, chain).issued == len(people)  # at once, not after the lease
    assert_exactly_one_each(database, people)
