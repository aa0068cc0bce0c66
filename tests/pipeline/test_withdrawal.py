"""Contradictory histories and the ``duplicate`` correction (issue 9 §1), on both backends: each contradiction kind
is flagged and held, a correction resolves it, and the next issuance issues the right "n of m"; a withdrawn
record is kept but ignored by every reader; what may not be withdrawn is refused."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.test_corrections import Pipeline, dsc, site_ca, site_keys  # noqa: F401 (fixtures)
from vaxcred import keys
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.issue import Issuer
from vaxcred.pipeline import corrections as corr
from vaxcred.pipeline.corrections import (
    BAD_CORRECTION,
    CORRECTION_CLOSED,
    CORRECTION_CONFLICT,
    DOSE_WITHDRAWN,
    UNKNOWN_RECORD,
    WITHDRAW,
    CorrectionField,
    file_correction,
    get_correction,
    open_corrections,
    recorded_doses,
    reject_correction,
    resolve_correction,
)
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.cccd import Gender
from vaxcred.pipeline.records.history import HistoryProblem
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry
from vaxcred.pipeline.reports.certificate_data import certificate_data
from vaxcred.pipeline.reports.quality import build_quality_report
from vaxcred.pipeline.site_signing.stage import supersede_signature, unsigned_count
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    CorrectionState,
    PassportStatus,
    doses,
    passport_doses,
    persons,
    revocations,
    sites,
)

CA_TIME = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
ISSUED = dt.datetime(2022, 4, 15, 9, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2022, 4, 20, 8, 0, tzinfo=dt.UTC)
RESOLVED = FILED + dt.timedelta(hours=5)
LATER = RESOLVED + dt.timedelta(hours=1)
D = dt.date.fromisoformat

ORDER = "001090000011"  # dose 3 dated before dose 1
DAYS = "001090000022"  # dose 1 recorded on two days
SITES2 = "001090000033"  # dose 2 recorded at two sites (the same dose)
CLEAN = "001090000044"  # a consistent history
NAMES = {ORDER: "Nguyễn Văn An", DAYS: "Trần Thị Bình", SITES2: "Lê Văn Cường", CLEAN: "Phạm Thị Dung"}
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
ROWS = {
    ORDER: [
        ("A1", "2021-08-01", 1, "HN-001"),
        ("A2", "2021-09-01", 2, "HN-001"),
        ("A3", "2021-07-01", 3, "HN-001"),
    ],
    DAYS: [
        ("B1", "2021-08-01", 1, "HN-001"),
        ("B1", "2021-08-09", 1, "HN-001"),
        ("B2", "2021-09-01", 2, "HN-001"),
    ],
    SITES2: [
        ("C1", "2021-08-01", 1, "HN-001"),
        ("C2", "2021-09-01", 2, "HN-001"),
        ("C2", "2021-09-01", 2, "HCM-017"),
    ],
    CLEAN: [("D1", "2021-08-01", 1, "HN-001"), ("D2", "2021-09-01", 2, "HN-001")],
}
REGISTRY = TableRegistry(
    [
        RegistryEntry(citizen_id=c, full_name=name, dob="1990-05-17", gender=Gender.MALE)
        for c, name in NAMES.items()
    ]
)
SITES = ("HN-001", "HCM-017")  # those of the records (site_keys holds a third, unused)


def _lines(people: dict[str, list[tuple[str, str, int, str]]]) -> list[str]:
    return [HEADER] + [
        f"{c},{NAMES[c]},1990-05-17,M,Comirnaty,{lot},{date},{n},{site}\n"
        for c, rows in people.items()
        for lot, date, n, site in rows
    ]


@pytest.fixture
def pipe(
    database: Database,
    site_ca: keys.KeyPair,  # noqa: F811 (the fixture imported above)
    site_keys: dict[str, keys.KeyPair],  # noqa: F811
    dsc: keys.KeyPair,  # noqa: F811
) -> Pipeline:
    """Four persons imported, checked, signed; one issuance run (the contradictory three are held)."""
    pipeline = Pipeline(database, site_ca, site_keys, dsc)
    assert import_lines(database, _lines(ROWS), format="csv").imported == 11
    pipeline.check(REGISTRY, ISSUED)
    assert pipeline.sign(ISSUED) == 11
    report = run_issuance(database, lambda: Issuer(dsc.signer()), now=ISSUED, site_ca=site_ca.certificate)
    assert report.issued == 1  # CLEAN only
    assert report.reasons.get("history.contradictory") == 3
    return pipeline


def _dose(pipe: Pipeline, citizen_id: str, number: int, date: str, site: str = "HN-001") -> Any:
    (dose,) = [
        d for d in pipe.doses_of(citizen_id) if (d.dose_number, d.date, d.site_id) == (number, D(date), site)
    ]
    return dose


def _vaccination(hc1: str) -> dict[str, Any]:
    message = cose.decode_sign1(compress.decompress(base45.b45decode(prefix.strip_prefix(hc1))))
    (entry,) = cwt.decode_claims(message.payload).dcc["v"]
    return dict(entry)


def _linked(pipe: Pipeline, passport_id: int) -> set[int]:
    with pipe.db.connect() as conn:
        return set(
            conn.execute(
                sa.select(passport_doses.c.dose_id).where(passport_doses.c.passport_id == passport_id)
            ).scalars()
        )


# --- each contradiction kind: flagged, held, corrected, issued ---------------------------------------------------


@pytest.mark.parametrize(
    ("citizen_id", "target", "field", "value", "expected_vaccination"),
    [
        # dose 3 before dose 1: the date of dose 3 was wrong -> 3 of 3
        (ORDER, (3, "2021-07-01", "HN-001"), CorrectionField.DATE, "2022-01-10", (3, 3, "2022-01-10")),
        # dose 3 before dose 1: dose 3 was recorded by mistake -> withdrawn, 2 of 2
        (ORDER, (3, "2021-07-01", "HN-001"), CorrectionField.DUPLICATE, None, (2, 2, "2021-09-01")),
        # dose 1 on two days: the second entry is a duplicate -> 2 of 2
        (DAYS, (1, "2021-08-09", "HN-001"), CorrectionField.DUPLICATE, None, (2, 2, "2021-09-01")),
        # dose 2 at two sites: withdrawn at the site that recorded it wrongly -> 2 of 2
        (SITES2, (2, "2021-09-01", "HCM-017"), CorrectionField.DUPLICATE, None, (2, 2, "2021-09-01")),
    ],
    ids=["order-date", "order-withdraw", "two-days-withdraw", "two-sites-withdraw"],
)
def test_each_contradiction_is_held_then_resolved_by_a_correction_and_issued(
    pipe: Pipeline,
    citizen_id: str,
    target: tuple[int, str, str],
    field: CorrectionField,
    value: str | None,
    expected_vaccination: tuple[int, int, str],
) -> None:
    """Import -> flagged in the quality report and held -> correction filed at the recording site -> resolved ->
    the next signing and issuance runs issue a passport certifying the right dose, "n of m"."""
    db = pipe.db
    _recorded, problems = recorded_doses(db, citizen_id)
    assert problems
    quality = build_quality_report(db, now=ISSUED)
    assert quality.national.contradictory == 9  # the three held persons' doses
    assert pipe.passports_of(citizen_id) == []
    dose = _dose(pipe, citizen_id, *target)
    cid = file_correction(
        db, citizen_id=citizen_id, field=field, proposed_value=value, dose_id=dose.id, now=FILED
    )
    correction = get_correction(db, cid)
    assert correction.site_id == target[2]  # routed to the site that recorded the record
    assert correction in open_corrections(db, target[2])
    resolution = resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    assert resolution.withdrawn is (field is CorrectionField.DUPLICATE)
    assert resolution.superseded_signature is True
    assert resolution.revoked_passport_id is None  # held: no passport to revoke

    recorded, problems = recorded_doses(db, citizen_id)
    assert problems == ()
    quality = build_quality_report(db, now=RESOLVED)
    assert quality.national.contradictory == 6
    pipe.sign(LATER)
    (passport_id,) = pipe.issue(LATER)
    (passport,) = pipe.passports_of(citizen_id)
    assert passport.id == passport_id
    entry = _vaccination(passport.hc1)
    assert (entry["dn"], entry["sd"], entry["dt"]) == expected_vaccination
    in_force = {d.id for d in recorded if d.withdrawn_at is None}
    assert _linked(pipe, passport_id) == in_force
    assert len(certificate_data(db, citizen_id).doses) == len(in_force) == 3 - resolution.withdrawn


def test_a_withdrawn_record_is_kept_but_ignored_by_every_reader(pipe: Pipeline) -> None:
    """The withdrawn row stays (withdrawn_at, its correction resolved at its site, its signature superseded);
    recorded_doses marks it; site signing never signs it again; the quality report does not count it; a
    re-import of the same record does not bring it back."""
    db = pipe.db
    twin = _dose(pipe, SITES2, 2, "2021-09-01", "HCM-017")
    dose_count = build_quality_report(db, now=ISSUED).national.doses
    cid = file_correction(db, citizen_id=SITES2, field="duplicate", dose_id=twin.id, now=FILED)
    assert get_correction(db, cid).proposed_value == WITHDRAW
    resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY, note="nhập trùng")

    (stored,) = [d for d in pipe.doses_of(SITES2) if d.id == twin.id]
    assert stored.withdrawn_at == RESOLVED
    closed = get_correction(db, cid)
    assert (closed.state, closed.site_id, closed.resolution, closed.dose_withdrawn) == (
        CorrectionState.RESOLVED,
        "HCM-017",
        "nhập trùng",
        True,
    )
    recorded, _ = recorded_doses(db, SITES2)
    marked = {d.id: d.withdrawn_at for d in recorded}
    assert marked[twin.id] == RESOLVED
    assert sum(1 for at in marked.values() if at is None) == 2
    assert pipe.current_signature(twin.id) is None
    assert unsigned_count(db, list(SITES)) == 0  # nothing to sign: the withdrawn record is not in the queue
    assert pipe.sign(LATER) == 0
    assert pipe.current_signature(twin.id) is None
    assert build_quality_report(db, now=LATER).national.doses == dose_count - 1

    again = import_lines(db, _lines({SITES2: ROWS[SITES2]}), format="csv")
    assert again.imported == 0
    (stored,) = [d for d in pipe.doses_of(SITES2) if d.id == twin.id]
    assert stored.withdrawn_at == RESOLVED
    assert recorded_doses(db, SITES2)[1] == ()


# --- what may not be withdrawn -----------------------------------------------------------------------------------


def test_withdrawing_a_record_that_contradicts_nothing_is_refused(pipe: Pipeline) -> None:
    """The only record of a dose in a consistent history, or a record of a contradictory history that is not
    part of the contradiction: bad_correction (it would resolve nothing and lose a dose)."""
    for citizen_id, key in [
        (CLEAN, (2, "2021-09-01")),
        (DAYS, (2, "2021-09-01")),
        (SITES2, (1, "2021-08-01")),
    ]:
        dose = _dose(pipe, citizen_id, *key)
        with pytest.raises(PipelineError) as info:
            file_correction(
                db := pipe.db, citizen_id=citizen_id, field="duplicate", dose_id=dose.id, now=FILED
            )
        assert (info.value.code, info.value.field) == (BAD_CORRECTION, "duplicate")
        assert citizen_id not in str(info.value)
    assert open_corrections(db) == []


def test_hostile_duplicate_filings_are_refused(pipe: Pipeline) -> None:
    """An unknown dose id, another person's dose, a proposed value, no dose named, a natural key that is nobody's:
    typed refusals, nothing stored; filing the same correction twice returns its id."""
    db = pipe.db
    other = _dose(pipe, DAYS, 1, "2021-08-09")
    for kwargs in (
        {"citizen_id": SITES2, "dose_id": 10**12},
        {"citizen_id": SITES2, "dose_id": other.id},
        {"citizen_id": "001099999999", "dose_id": other.id},
        {"citizen_id": SITES2, "dose_key": (2, "2021-09-01", "XX-000")},
    ):
        with pytest.raises(PipelineError) as info:
            file_correction(db, field="duplicate", now=FILED, **kwargs)  # type: ignore[arg-type]
        assert info.value.code == UNKNOWN_RECORD
    with pytest.raises(ValueError, match="no proposed value"):
        file_correction(
            db, citizen_id=DAYS, field="duplicate", proposed_value="x", dose_id=other.id, now=FILED
        )
    with pytest.raises(TypeError, match="name the dose"):
        file_correction(db, citizen_id=DAYS, field="duplicate", now=FILED)
    assert open_corrections(db) == []
    first = file_correction(db, citizen_id=DAYS, field="duplicate", dose_id=other.id, now=FILED)
    by_key = file_correction(
        db,
        citizen_id=DAYS,
        field="duplicate",
        dose_key=(1, "2021-08-09", "HN-001"),
        now=FILED + dt.timedelta(1),
    )
    assert by_key == first
    assert get_correction(db, first).due_at == FILED + corr.RESPONSE_TIME


def test_a_withdrawn_record_takes_no_correction_and_a_resolution_twice_is_refused(pipe: Pipeline) -> None:
    """Once withdrawn: resolving again is correction_closed; filing another duplicate or a lot correction on it
    is dose_withdrawn; a lot correction filed before the withdrawal is refused at resolution and stays open;
    the withdrawn record keeps its natural key (another record cannot be moved onto it)."""
    db = pipe.db
    dose = _dose(pipe, DAYS, 1, "2021-08-09")
    lot_fix = file_correction(
        db, citizen_id=DAYS, field="lot", proposed_value="B9", dose_id=dose.id, now=FILED
    )
    cid = file_correction(db, citizen_id=DAYS, field="duplicate", dose_id=dose.id, now=FILED)
    resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY)
    with pytest.raises(PipelineError) as closed:
        resolve_correction(db, cid, now=LATER, registry=REGISTRY)
    assert closed.value.code == CORRECTION_CLOSED
    for field, value in (("duplicate", None), ("lot", "B8"), ("date", "2021-08-02")):
        with pytest.raises(PipelineError) as info:
            file_correction(
                db, citizen_id=DAYS, field=field, proposed_value=value, dose_id=dose.id, now=LATER
            )
        assert info.value.code == DOSE_WITHDRAWN
    assert get_correction(db, lot_fix).dose_withdrawn is True
    with pytest.raises(PipelineError) as info:
        resolve_correction(db, lot_fix, now=LATER, registry=REGISTRY)
    assert info.value.code == DOSE_WITHDRAWN
    assert get_correction(db, lot_fix).state is CorrectionState.OPEN
    assert [d.lot for d in pipe.doses_of(DAYS) if d.id == dose.id] == ["B1"]
    assert reject_correction(db, lot_fix, now=LATER, note="bản ghi đã rút").state is CorrectionState.REJECTED
    kept = _dose(pipe, DAYS, 1, "2021-08-01")
    with pytest.raises(PipelineError, match="withdrawn record keeps its key") as taken:
        file_correction(
            db, citizen_id=DAYS, field="date", proposed_value="2021-08-09", dose_id=kept.id, now=LATER
        )
    assert taken.value.code == CORRECTION_CONFLICT


def test_the_second_record_of_a_pair_cannot_be_withdrawn_after_the_first(pipe: Pipeline) -> None:
    """Both records of the same dose filed as duplicates (two sites each say theirs is wrong): the first
    resolution withdraws one; the second is refused (correction_conflict) and stays open; a record remains."""
    db = pipe.db
    ours = _dose(pipe, SITES2, 2, "2021-09-01", "HN-001")
    theirs = _dose(pipe, SITES2, 2, "2021-09-01", "HCM-017")
    first = file_correction(db, citizen_id=SITES2, field="duplicate", dose_id=ours.id, now=FILED)
    second = file_correction(db, citizen_id=SITES2, field="duplicate", dose_id=theirs.id, now=FILED)
    resolve_correction(db, first, now=RESOLVED, registry=REGISTRY)
    with pytest.raises(PipelineError) as info:
        resolve_correction(db, second, now=RESOLVED, registry=REGISTRY)
    assert (info.value.code, info.value.field) == (CORRECTION_CONFLICT, "duplicate")
    assert get_correction(db, second).state is CorrectionState.OPEN
    assert [d.withdrawn_at for d in pipe.doses_of(SITES2) if d.dose_number == 2] in (
        [RESOLVED, None],
        [None, RESOLVED],
    )
    assert pipe.current_signature(theirs.id) is not None


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_concurrent_withdrawals_of_both_records_of_a_pair_withdraw_one(pipe: Pipeline, signed: bool) -> None:
    """Both sites resolve at the same moment: the records in force are locked (also when no site signature is
    there to lock), so one withdrawal wins and the other is refused on the current records (never both: the
    person keeps a record of dose 2)."""
    db = pipe.db
    if not signed:
        with db.begin() as conn:
            for d in pipe.doses_of(SITES2):
                assert supersede_signature(conn, d.id, now=ISSUED)
    filed = [
        file_correction(db, citizen_id=SITES2, field="duplicate", dose_id=d.id, now=FILED)
        for d in pipe.doses_of(SITES2)
        if d.dose_number == 2
    ]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def resolve(cid: int) -> None:
        barrier.wait()
        try:
            outcomes.append(resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY))
        except PipelineError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=resolve, args=(cid,)) for cid in filed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, corr.Resolution) for o in outcomes) == 1
    assert outcomes.count(CORRECTION_CONFLICT) == 1
    assert sum(1 for d in pipe.doses_of(SITES2) if d.dose_number == 2 and d.withdrawn_at is None) == 1


# --- a passport issued before the duplicate arrived ----------------------------------------------------------------


def test_withdrawing_revokes_only_a_passport_that_relied_on_the_record(pipe: Pipeline) -> None:
    """CLEAN holds a passport on doses D1, D2; a later import adds D2 again at another site (held). Withdrawing
    the newcomer leaves the passport alone; withdrawing the original instead revokes it (UCI and signature
    hashes) and the next issuance re-issues on the record in force, superseding it."""
    db = pipe.db
    (passport,) = pipe.passports_of(CLEAN)
    late = {CLEAN: [("D2", "2021-09-01", 2, "HCM-017")]}
    assert import_lines(db, _lines(late), format="csv").imported == 1
    assert recorded_doses(db, CLEAN)[1] == (HistoryProblem.DOSE_REPEATED,)
    newcomer = _dose(pipe, CLEAN, 2, "2021-09-01", "HCM-017")
    assert newcomer.id not in _linked(pipe, passport.id)

    keep = file_correction(db, citizen_id=CLEAN, field="duplicate", dose_id=newcomer.id, now=FILED)
    done = resolve_correction(db, keep, now=RESOLVED, registry=REGISTRY)
    assert (done.withdrawn, done.revoked_passport_id, done.superseded_signature) == (True, None, False)
    assert [(p.id, p.status) for p in pipe.passports_of(CLEAN)] == [
        (passport.id, PassportStatus.ACTIVE.value)
    ]
    assert pipe.count(revocations) == 0
    assert recorded_doses(db, CLEAN)[1] == ()


def test_withdrawing_the_record_a_passport_relied_on_revokes_and_reissues(pipe: Pipeline) -> None:
    """The original D2 withdrawn instead: the passport is revoked; signing and issuance re-issue on the other
    record of dose 2 (2 of 2), the successor supersedes the revoked passport."""
    db = pipe.db
    (old,) = pipe.passports_of(CLEAN)
    assert import_lines(db, _lines({CLEAN: [("D2", "2021-09-01", 2, "HCM-017")]}), format="csv").imported == 1
    original = _dose(pipe, CLEAN, 2, "2021-09-01", "HN-001")
    newcomer = _dose(pipe, CLEAN, 2, "2021-09-01", "HCM-017")
    assert original.id in _linked(pipe, old.id)
    cid = file_correction(db, citizen_id=CLEAN, field="duplicate", dose_id=original.id, now=FILED)
    reissued: list[int] = []
    done = resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY, reissue=reissued.append)
    assert done.revoked_passport_id == old.id
    assert reissued == [done.person_id]
    with db.connect() as conn:
        reasons = set(conn.execute(sa.select(revocations.c.reason, revocations.c.hash_type)).all())
    assert reasons == {(f"correction {cid}", "UCI"), (f"correction {cid}", "SIGNATURE")}
    assert pipe.sign(LATER) == 1  # the newcomer (imported after the last signing run)
    (new_id,) = pipe.issue(LATER + dt.timedelta(minutes=1))
    revoked, new = pipe.passports_of(CLEAN)
    assert (revoked.status, new.id, new.supersedes) == (PassportStatus.REVOKED.value, new_id, old.id)
    assert _linked(pipe, new_id) == {_dose(pipe, CLEAN, 1, "2021-08-01").id, newcomer.id}
    entry = _vaccination(new.hc1)
    assert (entry["dn"], entry["sd"]) == (2, 2)
    assert [(d.dose_number, d.lot) for d in certificate_data(db, CLEAN).doses] == [(1, "D1"), (2, "D2")]


def test_migration_0005_keeps_every_stored_dose_in_force(empty_database: Database) -> None:
    """A database from before withdrawals (revision 0003) upgraded to head: its doses are in force."""
    db = empty_database
    db.migrate("0003")
    with db.begin() as conn:
        conn.execute(sites.insert().values(site_id="HN-001"))
        person_id = conn.execute(
            persons.insert()
            .values(citizen_id=CLEAN, id_type="CCCD", full_name=NAMES[CLEAN], dob="1990", gender="M")
            .returning(persons.c.id)
        ).scalar_one()
        conn.execute(
            doses.insert().values(
                person_id=person_id,
                dose_number=1,
                date=D("2021-08-01"),
                site_id="HN-001",
                vaccine="EU/1/20/1528",
                lot="D1",
            )
        )
    db.migrate()
    assert db.current_revision() == db.head_revision()
    with db.connect() as conn:
        assert conn.execute(sa.select(doses.c.withdrawn_at)).scalars().all() == [None]
    assert recorded_doses(db, CLEAN)[0][0].withdrawn_at is None
