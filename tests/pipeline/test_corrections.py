"""Corrections (phản ánh) and revocation export on both backends: filing, the 48-hour clock, resolution with
registry re-check, signature supersession, revocation and re-issue, rejection, the overdue report, and the
EU batch export of what was revoked."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import unicodedata
from typing import Any

import pytest
import sqlalchemy as sa

from vaxcred import keys
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.issue import Issuer
from vaxcred.pipeline import corrections as corr
from vaxcred.pipeline.corrections import (
    BAD_CORRECTION,
    CORRECTION_CLOSED,
    CORRECTION_CONFLICT,
    RESPONSE_TIME,
    UNKNOWN_RECORD,
    CorrectionField,
    DoseKey,
    OverdueSite,
    file_correction,
    get_correction,
    open_corrections,
    overdue_report,
    reject_correction,
    resolve_correction,
)
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.cccd import Gender
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, RegistryStatus, TableRegistry
from vaxcred.pipeline.reports.revocation_export import (
    BAD_PASSPORT,
    check_hc1,
    decode_passport,
    export_revocation_json,
    export_revocations,
    revocation_list,
)
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.revocation import HashType, RevocationBatch, RevocationList, revocation_hashes
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    CorrectionState,
    PassportStatus,
    corrections,
    doses,
    passport_doses,
    passports,
    persons,
    revocations,
    site_signatures,
)

CA_TIME = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
ISSUED = dt.datetime(2022, 4, 15, 9, 0, tzinfo=dt.UTC)  # central signing began 2022-04-15 (seed 001)
FILED = dt.datetime(2022, 4, 20, 8, 0, tzinfo=dt.UTC)
RESOLVED = FILED + dt.timedelta(hours=5)

DUC = "001090012345"  # recorded with a tone-mark typo: "Đúc" for "Đức"
NGOC = "079185001234"
BAO = "048203000111"  # seed 004: came for dose 2 without the paper for dose 1
TYPO, FIXED = "Nguyễn Văn Đúc", "Nguyễn Văn Đức"

CSV = (
    "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
    f"{DUC},{TYPO},1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n"
    f"{DUC},{TYPO},1990-05-17,M,Comirnaty,FK5678,2021-09-01,2,HN-001\n"
    f"{NGOC},Trần Thị Bích Ngọc,1985,F,AstraZeneca,AZ-01,2021-07-15,1,HCM-017\n"
    f"{BAO},Đặng Quốc Bảo,2003-06-02,M,Comirnaty,FL-2,2021-12-10,2,DN-003\n"
)
#: the population registry before and after the Ministry of Public Security fixed Đức's name
REGISTRY_TYPO = TableRegistry(
    [
        RegistryEntry(citizen_id=DUC, full_name=TYPO, dob="1990-05-17", gender=Gender.MALE),
        RegistryEntry(
            citizen_id=NGOC, full_name="Trần Thị Bích Ngọc", dob="1985-02-03", gender=Gender.FEMALE
        ),
        RegistryEntry(citizen_id=BAO, full_name="Đặng Quốc Bảo", dob="2003-06-02", gender=Gender.MALE),
    ]
)
REGISTRY = TableRegistry(
    [
        RegistryEntry(citizen_id=DUC, full_name=FIXED, dob="1990-05-17", gender=Gender.MALE),
        RegistryEntry(
            citizen_id=NGOC, full_name="Trần Thị Bích Ngọc", dob="1985-02-03", gender=Gender.FEMALE
        ),
        RegistryEntry(citizen_id=BAO, full_name="Đặng Quốc Bảo", dob="2003-06-02", gender=Gender.MALE),
    ]
)
SITES = ("HN-001", "HCM-017", "DN-003")


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=CA_TIME)


@pytest.fixture(scope="module")
def site_keys(site_ca: keys.KeyPair) -> dict[str, keys.KeyPair]:
    return {
        site: keys.make_site_certificate(site_ca, site_id=site, site_name=f"Trạm Y tế {site}", now=CA_TIME)
        for site in SITES
    }


@pytest.fixture(scope="module")
def dsc() -> keys.KeyPair:
    return keys.make_dsc(keys.make_csca(now=CA_TIME), now=CA_TIME)


@pytest.fixture
def pipeline(
    database: Database, site_ca: keys.KeyPair, site_keys: dict[str, keys.KeyPair], dsc: keys.KeyPair
) -> Pipeline:
    pipe = Pipeline(database, site_ca, site_keys, dsc)
    report = import_lines(database, CSV.splitlines(keepends=True), format="csv")
    assert report.imported == 4
    return pipe


class Pipeline:
    """The stages around corrections, run on one test database."""

    def __init__(
        self, db: Database, site_ca: keys.KeyPair, site_keys: dict[str, keys.KeyPair], dsc: keys.KeyPair
    ) -> None:
        self.db, self.site_ca, self.site_keys, self.dsc = db, site_ca, site_keys, dsc

    def check(self, registry: TableRegistry, now: dt.datetime, **options: Any) -> None:
        run_registry_check(self.db, registry, now=now, **options)

    def sign(self, now: dt.datetime) -> int:
        signers = {site: pair.signer() for site, pair in self.site_keys.items()}
        return run_site_signing(self.db, signers, now=now).signed

    def issue(self, now: dt.datetime) -> list[int]:
        """The issuance stage (:func:`run_issuance`), then :func:`link_successors` — a no-op once the stage stores
        ``supersedes`` itself with :func:`predecessors_of`; returns the ids of the passports issued."""
        with self.db.connect() as conn:
            before = conn.execute(sa.select(sa.func.coalesce(sa.func.max(passports.c.id), 0))).scalar_one()
        run_issuance(self.db, lambda: Issuer(self.dsc.signer()), now=now, site_ca=self.site_ca.certificate)
        corr.link_successors(self.db)
        with self.db.connect() as conn:
            query = sa.select(passports.c.id).where(passports.c.id > before).order_by(passports.c.id)
            return list(conn.execute(query).scalars())

    def run_all(self, registry: TableRegistry, now: dt.datetime) -> list[int]:
        self.check(registry, now)
        self.sign(now)
        return self.issue(now)

    def person(self, citizen_id: str) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.select(persons).where(persons.c.citizen_id == citizen_id)).one()

    def doses_of(self, citizen_id: str) -> list[Any]:
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    sa.select(doses)
                    .join(persons)
                    .where(persons.c.citizen_id == citizen_id)
                    .order_by(doses.c.dose_number, doses.c.date)
                )
            )

    def passports_of(self, citizen_id: str) -> list[Any]:
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    sa.select(passports)
                    .join(persons)
                    .where(persons.c.citizen_id == citizen_id)
                    .order_by(passports.c.id)
                )
            )

    def count(self, table: sa.Table) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def current_signature(self, dose_id: int) -> Any:
        with self.db.connect() as conn:
            return conn.execute(
                sa.select(site_signatures).where(
                    site_signatures.c.dose_id == dose_id, site_signatures.c.superseded_at.is_(None)
                )
            ).first()


def _hc1_name(hc1: str) -> dict[str, Any]:
    message = cose.decode_sign1(compress.decompress(base45.b45decode(prefix.strip_prefix(hc1))))
    return dict(cwt.decode_claims(message.payload).dcc["nam"])


def _issued_with_typo(pipe: Pipeline) -> Any:
    """Đức verified against the registry as it was (with the typo), his doses site-signed, his passport issued;
    then the registry is fixed and a re-check finds the name mismatch."""
    assert pipe.run_all(REGISTRY_TYPO, ISSUED)
    pipe.check(REGISTRY, FILED - dt.timedelta(hours=1), recheck=True)
    assert pipe.person(DUC).registry_status == RegistryStatus.MISMATCH.value
    (passport,) = pipe.passports_of(DUC)
    assert passport.status == PassportStatus.ACTIVE.value
    return passport


# --- filing -----------------------------------------------------------------------------------------------------


def test_file_opens_a_correction_due_in_48_hours(pipeline: Pipeline) -> None:
    """A filed correction is OPEN, due 48 h after filing, routed to the recording site, value in NFC."""
    nfd = unicodedata.normalize("NFD", FIXED)
    cid = file_correction(
        pipeline.db,
        citizen_id=DUC,
        dose_key=DoseKey(1, "2021-08-01", "HN-001"),
        field="full_name",
        proposed_value=f"  {nfd} ",
        now=FILED,
    )
    correction = get_correction(pipeline.db, cid)
    assert correction.state is CorrectionState.OPEN
    assert correction.field is CorrectionField.FULL_NAME
    assert correction.filed_at == FILED
    assert correction.due_at == FILED + dt.timedelta(hours=48) == FILED + RESPONSE_TIME
    assert correction.site_id == "HN-001"
    assert correction.proposed_value == FIXED
    assert correction.resolved_at is None
    assert correction.resolution is None
    assert FIXED not in repr(correction)
    assert [c.id for c in open_corrections(pipeline.db, "HN-001")] == [cid]
    assert open_corrections(pipeline.db, "HCM-017") == []


def test_filing_by_dose_id_routes_to_that_dose_site_and_is_idempotent(pipeline: Pipeline) -> None:
    """A dose named by id routes to its site; the same open correction filed again returns the same id."""
    (dose,) = pipeline.doses_of(NGOC)
    first = file_correction(
        pipeline.db,
        citizen_id=NGOC,
        dose_id=dose.id,
        field=CorrectionField.LOT,
        proposed_value="AZ-02",
        now=FILED,
    )
    again = file_correction(
        pipeline.db,
        citizen_id=NGOC,
        dose_id=dose.id,
        field="lot",
        proposed_value=" AZ-02",
        now=FILED + dt.timedelta(hours=1),
    )
    assert again == first
    correction = get_correction(pipeline.db, first)
    assert (correction.site_id, correction.dose_id, correction.filed_at) == ("HCM-017", dose.id, FILED)
    assert pipeline.count(corrections) == 1


@pytest.mark.parametrize(
    ("field", "value", "code", "named"),
    [
        ("dob", "1991-05-17", BAD_CORRECTION, "dob"),  # the CCCD says born in 1990
        ("dob", "1990-13-01", BAD_CORRECTION, "dob"),
        ("gender", "Nữ", BAD_CORRECTION, "gender"),  # the CCCD says male
        ("gender", "X", BAD_CORRECTION, "gender"),
        ("full_name", "Nguyễn\tVăn Đức", BAD_CORRECTION, "full_name"),
        ("full_name", "   ", BAD_CORRECTION, "full_name"),
        ("full_name", TYPO, BAD_CORRECTION, "full_name"),  # what the record holds already
        ("vaccine", "Sputnk", BAD_CORRECTION, "vaccine"),
        ("lot", "A" * 65, BAD_CORRECTION, "lot"),
        ("date", "2021-02-30", BAD_CORRECTION, "date"),
        ("date", "2022-05-01", BAD_CORRECTION, "date"),  # after the filing day
        ("date", "1989-01-01", BAD_CORRECTION, "date"),
        ("dose_number", "0", BAD_CORRECTION, "dose_number"),
        ("dose_number", 10, BAD_CORRECTION, "dose_number"),
        ("dose_number", "one", BAD_CORRECTION, "dose_number"),
        ("citizen_id", "001090012346", BAD_CORRECTION, None),  # not a correctable field
        ("site_id", "HN-002", BAD_CORRECTION, None),
    ],
)
def test_invalid_proposed_values_are_refused(
    pipeline: Pipeline, field: str, value: str | int, code: str, named: str | None
) -> None:
    """A proposed value the import parser would refuse is refused with a typed error; nothing is stored."""
    with pytest.raises(PipelineError) as info:
        file_correction(
            pipeline.db,
            citizen_id=DUC,
            dose_key=(1, dt.date(2021, 8, 1), "HN-001"),
            field=field,
            proposed_value=value,
            now=FILED,
        )
    assert info.value.code == code
    assert info.value.field == named
    if field in ("full_name", "dob") and isinstance(value, str) and value.strip():
        assert value not in info.value.message  # no personal value echoed
    assert pipeline.count(corrections) == 0


def test_unknown_citizen_dose_or_other_persons_dose_is_refused(pipeline: Pipeline) -> None:
    """The dose must exist and belong to the citizen filing; each miss is pipeline.unknown_record."""
    (ngoc_dose,) = pipeline.doses_of(NGOC)
    attempts: list[dict[str, Any]] = [
        {"citizen_id": "001090099999", "dose_key": (1, "2021-08-01", "HN-001")},
        {"citizen_id": DUC, "dose_key": (3, "2021-08-01", "HN-001")},
        {"citizen_id": DUC, "dose_id": ngoc_dose.id},
    ]
    for attempt in attempts:
        with pytest.raises(PipelineError) as info:
            file_correction(pipeline.db, field="lot", proposed_value="X-1", now=FILED, **attempt)
        assert info.value.code == UNKNOWN_RECORD
    with pytest.raises(TypeError):  # a field correction names its dose
        file_correction(pipeline.db, citizen_id=DUC, field="lot", proposed_value="X-1", now=FILED)
    with pytest.raises(ValueError, match="timezone"):
        file_correction(
            pipeline.db,
            citizen_id=DUC,
            dose_id=1,
            field="lot",
            proposed_value="X",
            now=dt.datetime(2022, 4, 20),
        )
    assert pipeline.count(corrections) == 0


# --- resolving ------------------------------------------------------------------------------------------------


def test_resolving_a_name_correction_rechecks_revokes_and_reissues(pipeline: Pipeline) -> None:
    """Name fixed → person updated, registry MISMATCH → VERIFIED, old passport revoked by UCI and SIGNATURE,
    the dose's signature superseded; after the site-signing and issuance stages run again a new active passport
    supersedes the old and carries the corrected name."""
    db = pipeline.db
    old = _issued_with_typo(pipeline)
    first_dose = pipeline.doses_of(DUC)[0]
    old_signature = pipeline.current_signature(first_dose.id)
    assert old_signature is not None
    cid = file_correction(
        db, citizen_id=DUC, dose_id=first_dose.id, field="full_name", proposed_value=FIXED, now=FILED
    )
    calls: list[int] = []
    resolution = resolve_correction(
        db, cid, now=RESOLVED, registry=REGISTRY, reissue=calls.append, note="đã sửa"
    )

    person = pipeline.person(DUC)
    assert person.full_name == FIXED
    assert person.registry_status == RegistryStatus.VERIFIED.value
    assert resolution.registry_status is RegistryStatus.VERIFIED
    assert resolution.person_id == person.id == calls[0]
    assert resolution.dose_id == first_dose.id
    assert resolution.superseded_signature is True
    assert resolution.revoked_passport_id == old.id

    correction = get_correction(db, cid)
    assert (correction.state, correction.resolved_at, correction.resolution) == (
        CorrectionState.RESOLVED,
        RESOLVED,
        "đã sửa",
    )
    assert open_corrections(db, "HN-001") == []

    (revoked,) = pipeline.passports_of(DUC)
    assert (revoked.status, revoked.revoked_at) == (PassportStatus.REVOKED.value, RESOLVED)
    decoded = decode_passport(old.hc1)
    hashes = revocation_hashes(uvci=old.uvci, country="VN", signature=decoded.signature, alg=decoded.alg)
    with db.connect() as conn:
        rows = conn.execute(sa.select(revocations).order_by(revocations.c.hash_type)).all()
    assert [(r.hash_type, bytes(r.hash)) for r in rows] == [
        ("SIGNATURE", hashes[HashType.SIGNATURE]),
        ("UCI", hashes[HashType.UCI]),
    ]
    assert {(r.passport_id, bytes(r.kid), r.expires, r.revoked_at, r.reason) for r in rows} == {
        (old.id, pipeline.dsc.kid, old.exp, RESOLVED, f"correction {cid}")
    }
    assert corr.pending_reissues(db) == [person.id]

    # the corrected record must be signed again before issuance takes it
    assert pipeline.current_signature(first_dose.id) is None
    assert pipeline.issue(RESOLVED) == []
    assert pipeline.sign(RESOLVED + dt.timedelta(minutes=1)) == 1
    (new_id,) = pipeline.issue(RESOLVED + dt.timedelta(minutes=2))
    _old_row, new = pipeline.passports_of(DUC)
    assert new.id == new_id
    assert (new.status, new.supersedes) == (PassportStatus.ACTIVE.value, old.id)
    assert new.uvci != old.uvci
    assert _hc1_name(new.hc1)["gn"] == "Văn Đức"
    assert _hc1_name(old.hc1)["gn"] == "Văn Đúc"
    assert corr.pending_reissues(db) == []
    assert corr.link_successors(db) == 0
    with db.connect() as conn:
        assert corr.predecessors_of(conn, [person.id]) == {}  # linked: no successor is owed any more


def test_link_successors_repairs_a_passport_stored_without_its_predecessor(pipeline: Pipeline) -> None:
    """An issuance run that did not set ``supersedes`` is repaired once; a second repair changes nothing."""
    db = pipeline.db
    old = _issued_with_typo(pipeline)
    cid = file_correction(
        db,
        citizen_id=DUC,
        dose_key=(1, "2021-08-01", "HN-001"),
        field="full_name",
        proposed_value=FIXED,
        now=FILED,
    )
    resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    pipeline.sign(RESOLVED)
    (new_id,) = pipeline.issue(RESOLVED)
    with db.begin() as conn:
        conn.execute(passports.update().where(passports.c.id == new_id).values(supersedes=None))
    assert corr.pending_reissues(db) == []  # an active passport: nothing to wait for
    assert corr.link_successors(db) == 1
    assert corr.link_successors(db) == 0
    assert pipeline.passports_of(DUC)[1].supersedes == old.id


def _must_not_reissue(person_id: int) -> None:
    raise AssertionError(f"reissue called for person {person_id} without a revoked passport")


def test_predecessor_is_the_newest_revoked_passport_not_yet_superseded(pipeline: Pipeline) -> None:
    """Revoked twice in a row (A → B → revoked again): the next passport supersedes B, never A."""
    db = pipeline.db
    first = _issued_with_typo(pipeline)
    person_id = pipeline.person(DUC).id
    with db.connect() as conn:
        assert corr.predecessor_of(conn, person_id) is None  # active: a first passport owes nothing
    cid = file_correction(
        db,
        citizen_id=DUC,
        dose_key=(1, "2021-08-01", "HN-001"),
        field="full_name",
        proposed_value=FIXED,
        now=FILED,
    )
    resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    with db.connect() as conn:
        assert corr.predecessors_of(conn, [person_id, person_id + 1000]) == {person_id: first.id}
    pipeline.sign(RESOLVED)
    (second,) = pipeline.issue(RESOLVED)
    cid = file_correction(
        db,
        citizen_id=DUC,
        dose_key=(2, "2021-09-01", "HN-001"),
        field="lot",
        proposed_value="FK5679",
        now=RESOLVED,
    )
    later = RESOLVED + dt.timedelta(hours=1)
    assert resolve_correction(db, cid, now=later, registry=REGISTRY).revoked_passport_id == second
    with db.connect() as conn:
        assert corr.predecessor_of(conn, person_id) == second
    pipeline.sign(later)
    (third,) = pipeline.issue(later)
    chain = [(p.id, p.status, p.supersedes) for p in pipeline.passports_of(DUC)]
    assert chain == [
        (first.id, PassportStatus.REVOKED.value, None),
        (second, PassportStatus.REVOKED.value, first.id),
        (third, PassportStatus.ACTIVE.value, second),
    ]
    assert pipeline.count(revocations) == 4


def test_resolving_without_a_passport_revokes_nothing(pipeline: Pipeline) -> None:
    """A person never issued a passport is re-checked; no revocation appears."""
    db = pipeline.db
    pipeline.check(REGISTRY, ISSUED)
    assert pipeline.person(DUC).registry_status == RegistryStatus.MISMATCH.value
    cid = file_correction(
        db,
        citizen_id=DUC,
        dose_key=(2, "2021-09-01", "HN-001"),
        field="full_name",
        proposed_value=FIXED,
        now=FILED,
    )
    resolution = resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY, reissue=_must_not_reissue)
    assert resolution.revoked_passport_id is None
    assert resolution.superseded_signature is False  # never signed: the person was not verified
    assert resolution.registry_status is RegistryStatus.VERIFIED
    assert pipeline.count(revocations) == 0
    assert pipeline.sign(RESOLVED) == 4  # verified now: Đức's two doses; Ngọc's and Bảo's were never signed
    assert len(pipeline.issue(RESOLVED)) == 3


def test_a_dose_correction_supersedes_the_signature_and_is_signed_again(pipeline: Pipeline) -> None:
    """Lot fixed → the dose row changes, its signature is superseded, and the next signing run signs the new lot."""
    db = pipeline.db
    assert pipeline.run_all(REGISTRY, ISSUED)
    (dose,) = pipeline.doses_of(NGOC)
    before = pipeline.current_signature(dose.id)
    cid = file_correction(
        db, citizen_id=NGOC, dose_id=dose.id, field="lot", proposed_value="AZ-02", now=FILED
    )
    resolution = resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    assert resolution.superseded_signature
    assert resolution.revoked_passport_id is not None
    (changed,) = pipeline.doses_of(NGOC)
    assert changed.lot == "AZ-02"
    with db.connect() as conn:
        superseded_at = conn.execute(
            sa.select(site_signatures.c.superseded_at).where(site_signatures.c.id == before.id)
        ).scalar_one()
    assert superseded_at == RESOLVED
    assert pipeline.sign(RESOLVED) == 1
    after = pipeline.current_signature(dose.id)
    assert after.id != before.id
    (_new_id,) = pipeline.issue(RESOLVED)
    assert pipeline.passports_of(NGOC)[-1].supersedes == resolution.revoked_passport_id


@pytest.mark.parametrize(
    ("field", "value", "column", "expected"),
    [
        ("vaccine", "Pfizer", "vaccine", "Comirnaty"),
        ("date", "2021-07-16", "date", dt.date(2021, 7, 16)),
        ("dose_number", 2, "dose_number", 2),
    ],
)
def test_dose_fields_are_stored_canonically(
    pipeline: Pipeline, field: str, value: str | int, column: str, expected: object
) -> None:
    """Each dose field lands in the dose row in its canonical form."""
    (dose,) = pipeline.doses_of(NGOC)
    cid = file_correction(
        pipeline.db,
        citizen_id=NGOC,
        dose_id=dose.id,
        field=field,
        proposed_value=value,
        now=FILED,
    )
    resolve_correction(pipeline.db, cid, now=RESOLVED, registry=REGISTRY)
    (changed,) = pipeline.doses_of(NGOC)
    assert getattr(changed, column) == expected


def test_person_fields_must_fit_every_dose(pipeline: Pipeline) -> None:
    """A date of birth after one of the person's doses is refused, though it fits the dose named."""
    yen = "123456789"  # a CMND: no birth year in the number
    rows = (
        "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
        f"{yen},Lê Hoàng Yến,1972-11,F,Vero Cell,VC-9,2021-07-01,1,HCM-017\n"
        f"{yen},Lê Hoàng Yến,1972-11,F,Vero Cell,VC-10,2021-10-02,2,DN-003\n"
    )
    import_lines(pipeline.db, rows.splitlines(keepends=True), format="csv")
    with pytest.raises(PipelineError) as info:
        file_correction(
            pipeline.db,
            citizen_id=yen,
            dose_key=(2, "2021-10-02", "DN-003"),
            field="dob",
            proposed_value="2021-08",  # after dose 1 (2021-07-01), before dose 2
            now=FILED,
        )
    assert (info.value.code, info.value.field) == (BAD_CORRECTION, "dob")
    assert "date: is before the date of birth" in info.value.message
    cid = file_correction(
        pipeline.db,
        citizen_id=yen,
        dose_key=(2, "2021-10-02", "DN-003"),
        field="dob",
        proposed_value="1972-11-05",
        now=FILED,
    )
    resolve_correction(pipeline.db, cid, now=RESOLVED, registry=REGISTRY)
    assert pipeline.person(yen).dob == "1972-11-05"
    assert pipeline.person(yen).registry_status == RegistryStatus.NOT_FOUND.value


def test_reject_changes_nothing(pipeline: Pipeline) -> None:
    """Rejected with a note: the correction is closed, the record, signature and passport untouched."""
    db = pipeline.db
    old = _issued_with_typo(pipeline)
    dose = pipeline.doses_of(DUC)[0]
    signature = pipeline.current_signature(dose.id)
    cid = file_correction(
        db, citizen_id=DUC, dose_id=dose.id, field="full_name", proposed_value=FIXED, now=FILED
    )
    with pytest.raises(PipelineError, match="note") as blank:
        reject_correction(db, cid, now=RESOLVED, note="  ")
    assert (blank.value.code, blank.value.field) == (BAD_CORRECTION, "note")
    rejected = reject_correction(db, cid, now=RESOLVED, note="giấy tờ không khớp")
    assert (rejected.state, rejected.resolved_at, rejected.resolution) == (
        CorrectionState.REJECTED,
        RESOLVED,
        "giấy tờ không khớp",
    )
    assert pipeline.person(DUC).full_name == TYPO
    assert pipeline.person(DUC).registry_status == RegistryStatus.MISMATCH.value
    assert pipeline.current_signature(dose.id).id == signature.id
    assert [(p.id, p.status) for p in pipeline.passports_of(DUC)] == [(old.id, PassportStatus.ACTIVE.value)]
    assert pipeline.count(revocations) == 0
    with pytest.raises(PipelineError) as info:
        resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    assert info.value.code == CORRECTION_CLOSED
    assert pipeline.person(DUC).full_name == TYPO


def test_a_correction_cannot_be_closed_twice(pipeline: Pipeline) -> None:
    """Resolved once: resolving or rejecting again is pipeline.correction_closed and changes nothing."""
    db = pipeline.db
    cid = file_correction(
        db,
        citizen_id=NGOC,
        dose_key=(1, "2021-07-15", "HCM-017"),
        field="lot",
        proposed_value="AZ-02",
        now=FILED,
    )
    resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    for close in (
        lambda: resolve_correction(db, cid, now=RESOLVED + dt.timedelta(hours=1), registry=REGISTRY),
        lambda: reject_correction(db, cid, now=RESOLVED + dt.timedelta(hours=1), note="late"),
    ):
        with pytest.raises(PipelineError) as info:
            close()
        assert info.value.code == CORRECTION_CLOSED
    correction = get_correction(db, cid)
    assert (correction.state, correction.resolved_at) == (CorrectionState.RESOLVED, RESOLVED)
    with pytest.raises(PipelineError) as missing:
        resolve_correction(db, cid + 100, now=RESOLVED, registry=REGISTRY)
    assert missing.value.code == UNKNOWN_RECORD
    other = file_correction(
        db,
        citizen_id=NGOC,
        dose_key=(1, "2021-07-15", "HCM-017"),
        field="lot",
        proposed_value="AZ-03",
        now=FILED,
    )
    with pytest.raises(PipelineError, match="filed later") as early:
        reject_correction(db, other, now=FILED - dt.timedelta(seconds=1), note="x")
    assert early.value.code == BAD_CORRECTION
    assert get_correction(db, other).state is CorrectionState.OPEN


def test_concurrent_resolutions_apply_once(pipeline: Pipeline) -> None:
    """Two sites' operators resolving the same correction at once: one wins, the other is told it is closed."""
    db = pipeline.db
    pipeline.run_all(REGISTRY, ISSUED)
    cid = file_correction(
        db,
        citizen_id=NGOC,
        dose_key=(1, "2021-07-15", "HCM-017"),
        field="lot",
        proposed_value="AZ-02",
        now=FILED,
    )
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def resolve() -> None:
        barrier.wait()
        try:
            outcomes.append(resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY))
        except PipelineError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2
    assert sum(isinstance(o, corr.Resolution) for o in outcomes) == 1
    assert outcomes.count(CORRECTION_CLOSED) == 1
    assert pipeline.count(revocations) == 2  # one passport, two hash types


def test_a_conflicting_change_is_refused_at_resolution_and_stays_open(pipeline: Pipeline) -> None:
    """A change that would collide with a dose recorded after filing is refused; the correction stays open."""
    db = pipeline.db
    cid = file_correction(
        db,
        citizen_id=NGOC,
        dose_key=(1, "2021-07-15", "HCM-017"),
        field="dose_number",
        proposed_value="2",
        now=FILED,
    )
    later = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n" + (
        f"{NGOC},Trần Thị Bích Ngọc,1985,F,AstraZeneca,AZ-09,2021-07-15,2,HCM-017\n"
    )
    import_lines(db, later.splitlines(keepends=True), format="csv")
    with pytest.raises(PipelineError) as info:
        resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    assert info.value.code == CORRECTION_CONFLICT
    assert get_correction(db, cid).state is CorrectionState.OPEN
    reject_correction(db, cid, now=RESOLVED, note="recorded meanwhile")


# --- missing dose (seed 004) --------------------------------------------------------------------------------------


MISSING_DOSE_1 = {
    "vaccine": "Pfizer",
    "lot": "FL-1",
    "date": "2021-11-12",
    "dose_number": "1",
    "site_id": "DN-003",
}


def test_missing_dose_correction_creates_the_dose(pipeline: Pipeline) -> None:
    """Bảo gives dose 1's details: the correction is routed to the site named, and resolving records the dose,
    which then needs its site signature like any other."""
    db = pipeline.db
    pipeline.run_all(REGISTRY, ISSUED)
    (bao_passport,) = pipeline.passports_of(BAO)
    cid = file_correction(db, citizen_id=BAO, field="missing_dose", proposed_value=MISSING_DOSE_1, now=FILED)
    correction = get_correction(db, cid)
    assert (correction.site_id, correction.field) == ("DN-003", CorrectionField.MISSING_DOSE)
    assert json.loads(correction.proposed_value) == {
        "vaccine": "Comirnaty",
        "lot": "FL-1",
        "date": "2021-11-12",
        "dose_number": 1,
    }
    assert len(pipeline.doses_of(BAO)) == 1  # nothing recorded before resolution
    resolution = resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    first, second = pipeline.doses_of(BAO)
    assert resolution.dose_id == first.id
    assert (first.dose_number, first.date, first.site_id, first.vaccine, first.lot) == (
        1,
        dt.date(2021, 11, 12),
        "DN-003",
        "Comirnaty",
        "FL-1",
    )
    assert resolution.superseded_signature is False
    assert resolution.revoked_passport_id == bao_passport.id
    assert pipeline.issue(RESOLVED) == []  # dose 1 is not site-signed yet
    assert pipeline.sign(RESOLVED) == 1
    (new_id,) = pipeline.issue(RESOLVED)
    assert pipeline.passports_of(BAO)[-1].supersedes == bao_passport.id
    with db.connect() as conn:
        linked = set(
            conn.execute(
                sa.select(passport_doses.c.dose_id).where(passport_doses.c.passport_id == new_id)
            ).scalars()
        )
    assert linked == {first.id, second.id}


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"site_id": "HP-999"}, UNKNOWN_RECORD, "site_id"),  # no such site
        ({"date": "2021-12-10", "dose_number": "2"}, CORRECTION_CONFLICT, "dose"),  # recorded already
        ({"vaccine": "Sputnk"}, BAD_CORRECTION, "vaccine"),
        ({"date": "2003-06-01"}, BAD_CORRECTION, "date"),  # before the birth
        ({"extra": "x"}, BAD_CORRECTION, "missing_dose"),
    ],
)
def test_invalid_missing_doses_are_refused(
    pipeline: Pipeline, change: dict[str, str], code: str, named: str
) -> None:
    """A missing dose must be a valid new dose at a known site, not one recorded already."""
    proposed = {**MISSING_DOSE_1, **change}
    with pytest.raises(PipelineError) as info:
        file_correction(pipeline.db, citizen_id=BAO, field="missing_dose", proposed_value=proposed, now=FILED)
    assert (info.value.code, info.value.field) == (code, named)
    without_site = {k: v for k, v in MISSING_DOSE_1.items() if k != "site_id"}
    with pytest.raises(PipelineError) as incomplete:
        file_correction(
            pipeline.db, citizen_id=BAO, field="missing_dose", proposed_value=without_site, now=FILED
        )
    assert incomplete.value.code == BAD_CORRECTION
    with pytest.raises(TypeError):
        file_correction(pipeline.db, citizen_id=BAO, field="missing_dose", proposed_value="dose 1", now=FILED)
    assert pipeline.count(corrections) == 0


# --- the 48-hour clock --------------------------------------------------------------------------------------------


def test_overdue_report_lists_late_sites_worst_first(pipeline: Pipeline) -> None:
    """At a given now: only open corrections past due count; the site with most overdue comes first, ties by the
    oldest deadline; resolved and not-yet-due ones are left out."""
    db = pipeline.db
    t0 = dt.datetime(2022, 4, 18, 7, 0, tzinfo=dt.UTC)

    def file(citizen: str, key: tuple[int, str, str], lot: str, at: dt.datetime) -> int:
        return file_correction(db, citizen_id=citizen, dose_key=key, field="lot", proposed_value=lot, now=at)

    duc1, duc2 = (1, "2021-08-01", "HN-001"), (2, "2021-09-01", "HN-001")
    ngoc, bao = (1, "2021-07-15", "HCM-017"), (2, "2021-12-10", "DN-003")
    hn_a = file(DUC, duc1, "L-1", t0)
    file(DUC, duc2, "L-2", t0 + dt.timedelta(hours=3))
    file(NGOC, ngoc, "L-3", t0 - dt.timedelta(hours=1))  # HCM: one, the oldest
    file(NGOC, ngoc, "L-4", t0 + dt.timedelta(hours=30))  # HCM: not due yet at `now`
    done = file(BAO, bao, "L-5", t0)
    resolve_correction(db, done, now=t0 + dt.timedelta(hours=1), registry=REGISTRY)  # DN: closed in time

    now = t0 + dt.timedelta(hours=60)
    assert overdue_report(db, now=now) == [
        OverdueSite("HN-001", 2, t0 + RESPONSE_TIME),
        OverdueSite("HCM-017", 1, t0 - dt.timedelta(hours=1) + RESPONSE_TIME),
    ]
    assert overdue_report(db, now=t0 + RESPONSE_TIME) == [
        OverdueSite("HCM-017", 1, t0 + dt.timedelta(hours=47))
    ]
    assert overdue_report(db, now=t0 + dt.timedelta(hours=46)) == []
    assert get_correction(db, hn_a).is_overdue(now)
    reject_correction(db, hn_a, now=now, note="late, and wrong")
    assert overdue_report(db, now=now) == [  # a tie: the one waiting longer first
        OverdueSite("HCM-017", 1, t0 + dt.timedelta(hours=47)),
        OverdueSite("HN-001", 1, t0 + dt.timedelta(hours=51)),
    ]
    assert [c.proposed_value for c in open_corrections(db, "HCM-017")] == ["L-3", "L-4"]


# --- revocation export ------------------------------------------------------------------------------------------


def _revoke_duc(pipeline: Pipeline) -> tuple[Any, Any]:
    old = _issued_with_typo(pipeline)
    cid = file_correction(
        pipeline.db,
        citizen_id=DUC,
        dose_key=(1, "2021-08-01", "HN-001"),
        field="full_name",
        proposed_value=FIXED,
        now=FILED,
    )
    resolve_correction(pipeline.db, cid, now=RESOLVED, registry=REGISTRY)
    pipeline.sign(RESOLVED)
    pipeline.issue(RESOLVED)
    new = pipeline.passports_of(DUC)[-1]
    assert new.supersedes == old.id
    return old, new


def test_revocation_export_lists_the_revoked_passport_and_not_its_successor(pipeline: Pipeline) -> None:
    """The export holds one UCI and one SIGNATURE batch under the DSC kid, expiring with the revoked passport;
    a list built from the JSON flags the old HC1 and not the new one."""
    old, new = _revoke_duc(pipeline)
    now = RESOLVED + dt.timedelta(days=1)
    batches = export_revocations(pipeline.db, now=now)
    assert [(b.hash_type, b.kid, b.expires, b.country) for b in batches] == [
        (HashType.SIGNATURE, pipeline.dsc.kid, old.exp, "VN"),
        (HashType.UCI, pipeline.dsc.kid, old.exp, "VN"),
    ]
    decoded = decode_passport(old.hc1)
    hashes = revocation_hashes(uvci=old.uvci, country="VN", signature=decoded.signature, alg=decoded.alg)
    documents = export_revocation_json(pipeline.db, now=now)
    for batch, document in zip(batches, documents, strict=True):
        parsed = json.loads(document)
        assert parsed["kid"] == base64.b64encode(pipeline.dsc.kid).decode()
        assert parsed["entries"] == [{"hash": base64.b64encode(hashes[batch.hash_type]).decode()}]
        assert RevocationBatch.from_json(document) == batch

    listed = revocation_list(pipeline.db, now=now)
    assert check_hc1(listed, old.hc1) is HashType.UCI
    assert check_hc1(listed, new.hc1) is None
    from_json = RevocationList.from_batches([RevocationBatch.from_json(d) for d in documents], now=now)
    assert check_hc1(from_json, old.hc1) is HashType.UCI
    assert check_hc1(from_json, new.hc1) is None
    # ES256: the SIGNATURE hash alone still flags the old passport (r only)
    signature_only = RevocationList.from_batches(
        [b for b in batches if b.hash_type is HashType.SIGNATURE], now=now
    )
    assert check_hc1(signature_only, old.hc1) is HashType.SIGNATURE


def test_revocation_export_drops_expired_and_filters_by_since(pipeline: Pipeline) -> None:
    """After the revoked passport's exp nothing is exported; ``since`` after the revocation exports nothing."""
    old, _ = _revoke_duc(pipeline)
    assert len(export_revocations(pipeline.db, now=RESOLVED, since=RESOLVED)) == 2
    assert export_revocations(pipeline.db, now=RESOLVED, since=RESOLVED + dt.timedelta(seconds=1)) == []
    assert export_revocations(pipeline.db, now=old.exp) == []
    assert export_revocations(pipeline.db, now=RESOLVED, country="DE")[0].country == "DE"
    batches = export_revocations(pipeline.db, now=RESOLVED, max_per_batch=1)
    assert len(batches) == 2


def test_an_empty_table_exports_no_batch(database: Database) -> None:
    """No revocations: no batch (a gateway batch holds at least one entry)."""
    assert export_revocations(database, now=FILED) == []
    assert len(revocation_list(database, now=FILED)) == 0


def test_decode_passport_refuses_what_is_not_an_hc1() -> None:
    """Text that is not an HC1 is pipeline.bad_passport with the codec error chained."""
    for text in ("HC1:%%%", "not a passport", "HC1:" + base45.b45encode(compress.compress(b"\xa0"))):
        with pytest.raises(PipelineError) as info:
            decode_passport(text)
        assert info.value.code == BAD_PASSPORT


def test_revocation_needs_a_decodable_stored_hc1(pipeline: Pipeline) -> None:
    """A damaged stored HC1 makes the resolution fail as a whole: nothing is applied, the correction stays open."""
    db = pipeline.db
    old = _issued_with_typo(pipeline)
    with db.begin() as conn:
        conn.execute(passports.update().where(passports.c.id == old.id).values(hc1="HC1:damaged"))
    cid = file_correction(
        db,
        citizen_id=DUC,
        dose_key=(1, "2021-08-01", "HN-001"),
        field="full_name",
        proposed_value=FIXED,
        now=FILED,
    )
    with pytest.raises(PipelineError) as info:
        resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    assert info.value.code == BAD_PASSPORT
    assert get_correction(db, cid).state is CorrectionState.OPEN
    assert pipeline.person(DUC).full_name == TYPO
    assert pipeline.passports_of(DUC)[0].status == PassportStatus.ACTIVE.value


# --- contradictory histories (issue 9) ---------------------------------------------------------------------------


def test_a_contradictory_history_is_held_until_a_correction_fixes_it(pipeline: Pipeline) -> None:
    """Dose 3 dated before dose 1 gets no passport (not '1 of 2'); a date correction lifts the hold."""
    extra = (
        "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
        f"{DUC},{TYPO},1990-05-17,M,Comirnaty,FK9999,2021-07-01,3,HN-001\n"
    )
    assert import_lines(pipeline.db, extra.splitlines(keepends=True), format="csv").imported == 1
    pipeline.check(REGISTRY_TYPO, ISSUED)
    pipeline.sign(ISSUED)
    report = run_issuance(
        pipeline.db, lambda: Issuer(pipeline.dsc.signer()), now=ISSUED, site_ca=pipeline.site_ca.certificate
    )
    assert report.reasons.get("history.contradictory") == 1
    assert pipeline.passports_of(DUC) == []
    (dose_3,) = [d for d in pipeline.doses_of(DUC) if d.dose_number == 3]
    correction = file_correction(
        pipeline.db, citizen_id=DUC, field="date", proposed_value="2022-01-10", dose_id=dose_3.id, now=FILED
    )
    resolve_correction(pipeline.db, correction, now=RESOLVED, registry=REGISTRY_TYPO)
    pipeline.sign(RESOLVED)
    assert len(pipeline.issue(RESOLVED)) == 1
    (passport,) = pipeline.passports_of(DUC)
    message = cose.decode_sign1(compress.decompress(base45.b45decode(prefix.strip_prefix(passport.hc1))))
    (entry,) = cwt.decode_claims(message.payload).dcc["v"]
    assert (entry["dn"], entry["dt"]) == (3, "2022-01-10")
