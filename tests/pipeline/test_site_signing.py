"""The site-signing stage on both backends: what gets signed, idempotency, refusals, independent verification."""

from __future__ import annotations

import collections
import datetime as dt
import itertools

import pytest
import sqlalchemy as sa

from tests.pipeline.test_registry_check import (
    NOW as CHECK_TIME,
)
from tests.pipeline.test_registry_check import (
    PEOPLE,
    SITES,
    expected_outcome,
    load_people,
    registry_for,
)
from vaxcred import keys
from vaxcred.crypto import Signer
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.site_signing import workers as signing_workers
from vaxcred.pipeline.site_signing.stage import (
    NO_CERTIFICATE,
    RECORD_MISMATCH,
    SignatureCheck,
    SigningReport,
    run_site_signing,
    supersede_signature,
    verify_stored_signatures,
)
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_certificates, site_signature_batches, site_signatures

KEY_TIME = dt.datetime(2022, 12, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2023, 1, 2, 10, 30, 5, 123_000, tzinfo=dt.UTC)
#: the first two sites hold keys; the third does not (yet)
KEYED = SITES[:2]


@pytest.fixture(scope="session")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=KEY_TIME)


@pytest.fixture(scope="session")
def site_keys(site_ca: keys.KeyPair) -> dict[str, keys.KeyPair]:
    return {
        site: keys.make_site_certificate(site_ca, site_id=site, site_name=f"Trạm Y tế {site}", now=KEY_TIME)
        for site in KEYED
    }


@pytest.fixture
def signers(site_keys: dict[str, keys.KeyPair]) -> dict[str, Signer]:
    return {site: pair.signer() for site, pair in site_keys.items()}


@pytest.fixture
def checked(database: Database) -> Database:
    """The synthetic people imported and checked against the registry."""
    load_people(database, invalid=False)
    run_registry_check(database, registry_for(), now=CHECK_TIME)
    return database


def expected_counts() -> SigningReport:
    """From the generator: verified people's doses at keyed sites are signed; the rest skipped."""
    counts: collections.Counter[str] = collections.Counter()
    for p in PEOPLE:
        verified = expected_outcome(p)[0] == "VERIFIED"
        for row in p.rows:
            if not verified:
                counts["unverified"] += 1
            elif row.dose.site_id in KEYED:
                counts["signed"] += 1
            else:
                counts["no_key"] += 1
    return SigningReport(
        signed=counts["signed"], skipped_no_key=counts["no_key"], skipped_unverified=counts["unverified"]
    )


def signatures(
    db: Database,
) -> list[sa.Row[int, int, str, str, bytes, dt.datetime, dt.datetime | None]]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(
                    site_signatures.c.id,
                    site_signatures.c.dose_id,
                    # a batch member's site is its batch's (0012)
                    sa.func.coalesce(site_signature_batches.c.site_id, site_signatures.c.site_id),
                    doses.c.site_id,
                    site_signatures.c.cose,
                    site_signatures.c.signed_at,
                    site_signatures.c.superseded_at,
                )
                .join(doses, doses.c.id == site_signatures.c.dose_id)
                .outerjoin(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
                .order_by(site_signatures.c.id)
            )
        )


def test_signs_verified_doses_at_sites_with_keys(checked: Database, signers: dict[str, Signer]) -> None:
    """Signed = the verified people's doses at keyed sites; every other dose is counted as skipped."""
    progress: list[int] = []
    report = run_site_signing(checked, signers, now=NOW, batch_size=97, on_progress=progress.append)
    expected = expected_counts()
    assert report == expected
    assert expected.signed > 100
    assert progress[-1] == expected.signed
    assert progress == sorted(progress)
    rows = signatures(checked)
    assert len(rows) == expected.signed
    assert all(own == recorded and own in KEYED for _, _, own, recorded, _, _, _ in rows)
    assert {signed_at for *_, signed_at, _ in rows} == {NOW.replace(microsecond=0)}
    with checked.connect() as conn:
        certs = conn.execute(sa.select(site_certificates.c.site_id, site_certificates.c.kid)).all()
    assert sorted(certs) == sorted((site, signers[site].kid) for site in KEYED)


def test_a_rerun_signs_nothing(checked: Database, signers: dict[str, Signer]) -> None:
    """Idempotent: the second run finds every verified dose signed."""
    first = run_site_signing(checked, signers, now=NOW)
    second = run_site_signing(checked, signers, now=NOW + dt.timedelta(hours=1))
    assert second == SigningReport(
        signed=0, skipped_no_key=first.skipped_no_key, skipped_unverified=first.skipped_unverified
    )
    assert len(signatures(checked)) == first.signed


def test_a_site_given_a_key_later_signs_its_records(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """The keyless site's verified doses wait; once its key arrives they are signed, nothing else."""
    first = run_site_signing(checked, signers, now=NOW)
    third = keys.make_site_certificate(site_ca, site_id=SITES[2], site_name="Trạm Y tế", now=KEY_TIME)
    later = run_site_signing(checked, {**signers, SITES[2]: third.signer()}, now=NOW)
    assert later == SigningReport(signed=first.skipped_no_key, skipped_unverified=first.skipped_unverified)


def test_stored_signatures_verify_independently(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """Each stored signature verifies from its stored bytes and stored certificate, chained to the site CA."""
    report = run_site_signing(checked, signers, now=NOW)
    results = verify_stored_signatures(checked, site_ca=site_ca.certificate, now=NOW)
    assert len(results) == report.signed
    assert all(ok and code is None for _, ok, code in results)
    some = [dose_id for dose_id, _, _ in results[:5]]
    assert [
        r.dose_id for r in verify_stored_signatures(checked, site_ca=site_ca.certificate, dose_ids=some)
    ] == some


def test_a_tampered_signature_is_reported(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """One flipped byte in one stored signature (a batch member's payload): that dose fails verification (its
    audit path no longer leads to the signed root), the others pass."""
    run_site_signing(checked, signers, now=NOW)
    signature_id, dose_id, *_, cose, _, _ = signatures(checked)[3]
    tampered = cose[:-1] + bytes([cose[-1] ^ 0x01])
    with checked.begin() as conn:
        conn.execute(
            site_signatures.update().where(site_signatures.c.id == signature_id).values(cose=tampered)
        )
    results = verify_stored_signatures(checked, site_ca=site_ca.certificate)
    bad = [r for r in results if not r.ok]
    assert len(bad) == 1
    assert bad[0].dose_id == dose_id
    assert bad[0].code == "sitesign.not_in_batch"


def test_another_sites_ca_is_refused(checked: Database, signers: dict[str, Signer]) -> None:
    """Verified against a different site root, every signature fails the chain step."""
    run_site_signing(checked, signers, now=NOW)
    other_root = keys.make_site_ca(now=KEY_TIME).certificate
    codes = {code for _, ok, code in verify_stored_signatures(checked, site_ca=other_root) if not ok}
    assert codes
    assert all(code is not None and code.startswith("chain.") for code in codes)


def test_a_dose_changed_without_superseding_is_a_record_mismatch(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """A lot changed behind the signature's back, or the person's ID: the stored signature no longer fits."""
    run_site_signing(checked, signers, now=NOW)
    rows = signatures(checked)
    lot_dose, id_dose = rows[0][1], rows[-1][1]
    with checked.begin() as conn:
        conn.execute(doses.update().where(doses.c.id == lot_dose).values(lot="CHANGED-1"))
        person_id = conn.execute(sa.select(doses.c.person_id).where(doses.c.id == id_dose)).scalar_one()
        conn.execute(persons.update().where(persons.c.id == person_id).values(citizen_id="ZZ99999"))
    results = {r.dose_id: r for r in verify_stored_signatures(checked, site_ca=site_ca.certificate)}
    assert results[lot_dose] == SignatureCheck(lot_dose, False, RECORD_MISMATCH)
    assert results[id_dose] == SignatureCheck(id_dose, False, "sitesign.citizen_mismatch")
    with checked.connect() as conn:
        persons_doses = set(
            conn.execute(sa.select(doses.c.id).where(doses.c.person_id == person_id)).scalars()
        )
    assert {r.dose_id for r in results.values() if not r.ok} == {lot_dose} | (persons_doses & set(results))


def test_a_signature_without_its_certificate_is_reported(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """A signature whose certificate link is missing cannot be verified independently (a v1 row: a batch
    member's certificate is its batch's, always stored, since 0012)."""
    run_site_signing(checked, signers, now=NOW)
    signature_id, dose_id, site_id, *_ = signatures(checked)[0]
    with checked.begin() as conn:
        conn.execute(
            site_signatures.update()
            .where(site_signatures.c.id == signature_id)
            .values(batch_id=None, site_id=site_id, kid=signers[site_id].kid, certificate=None)
        )
    results = verify_stored_signatures(checked, site_ca=site_ca.certificate, dose_ids=[dose_id])
    assert results == [SignatureCheck(dose_id, False, NO_CERTIFICATE)]


def test_a_superseded_signature_is_signed_again(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """A correction supersedes the current signature; the next run signs that dose (and only it) again."""
    run_site_signing(checked, signers, now=NOW)
    _, dose_id, *_ = signatures(checked)[0]
    later = NOW + dt.timedelta(days=1)
    with checked.begin() as conn:
        conn.execute(doses.update().where(doses.c.id == dose_id).values(lot="FIXED-2"))
        assert supersede_signature(conn, dose_id, now=later) is True
        assert supersede_signature(conn, dose_id, now=later) is False
    assert verify_stored_signatures(checked, site_ca=site_ca.certificate, dose_ids=[dose_id]) == []
    assert run_site_signing(checked, signers, now=later).signed == 1
    history = [row for row in signatures(checked) if row[1] == dose_id]
    assert [row[-1] for row in history] == [later, None]
    assert verify_stored_signatures(checked, site_ca=site_ca.certificate, dose_ids=[dose_id]) == [
        SignatureCheck(dose_id, True, None)
    ]


def test_a_signer_under_another_sites_id_is_refused(checked: Database, signers: dict[str, Signer]) -> None:
    """Site A's key registered as site B's: refused before anything is signed."""
    swapped = {KEYED[1]: signers[KEYED[0]]}
    with pytest.raises(PipelineError) as excinfo:
        run_site_signing(checked, swapped, now=NOW)
    assert excinfo.value.code == "sitesign.not_own_record"
    assert signatures(checked) == []


def test_a_passport_signer_is_not_a_site_signer(checked: Database) -> None:
    """A DSC (passport signing certificate) cannot sign dose records."""
    dsc = keys.make_dsc(keys.make_csca(now=KEY_TIME), now=KEY_TIME)
    with pytest.raises(PipelineError) as excinfo:
        run_site_signing(checked, {KEYED[0]: dsc.signer()}, now=NOW)
    assert excinfo.value.code == "sitesign.wrong_purpose"


def test_an_expired_site_certificate_is_refused(checked: Database, signers: dict[str, Signer]) -> None:
    """Past its validity the site certificate signs nothing."""
    with pytest.raises(PipelineError) as excinfo:
        run_site_signing(checked, signers, now=KEY_TIME + dt.timedelta(days=400))
    assert excinfo.value.code == "sitesign.cert_not_valid"
    assert signatures(checked) == []


def test_a_record_that_cannot_be_signed_is_counted_and_the_rest_signed(
    checked: Database, signers: dict[str, Signer]
) -> None:
    """A stored dose dated after the signing time fails alone; the run signs everything else."""
    with checked.connect() as conn:
        person_id = conn.execute(
            sa.select(sa.func.min(persons.c.id)).where(persons.c.registry_status == "VERIFIED")
        ).scalar_one()
    with checked.begin() as conn:
        conn.execute(
            doses.insert().values(
                person_id=person_id,
                dose_number=9,
                date=dt.date(2023, 6, 1),
                site_id=KEYED[0],
                vaccine="Comirnaty",
                lot="FUTURE-1",
            )
        )
    report = run_site_signing(checked, signers, now=NOW)
    assert report == SigningReport(
        signed=expected_counts().signed,
        skipped_no_key=expected_counts().skipped_no_key,
        skipped_unverified=expected_counts().skipped_unverified,
        failed=1,
    )


def test_naive_time_is_refused(checked: Database, signers: dict[str, Signer]) -> None:
    """Time is an aware parameter."""
    with pytest.raises(ValueError):
        run_site_signing(checked, signers, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        run_site_signing(checked, signers, now=NOW, batch_size=0)


def test_parallel_workers_sign_exactly_what_one_process_signs(
    checked: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """workers=2 (forked processes taking id ranges of the two keyed sites) stores the same signatures as one
    process would: the same count, each dose once, every one verifying; a re-run signs nothing."""
    report = run_site_signing(checked, signers, now=NOW, batch_size=53, workers=2)
    assert report == expected_counts()
    rows = signatures(checked)
    assert len(rows) == report.signed
    assert len({row[1] for row in rows}) == len(rows)  # one current signature per dose
    results = verify_stored_signatures(checked, site_ca=site_ca.certificate, now=NOW)
    assert all(ok for _, ok, _ in results)
    assert run_site_signing(checked, signers, now=NOW, workers=2).signed == 0


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_work_units_split_the_sites_doses_into_ranges_that_meet_once(checked: Database, workers: int) -> None:
    """With fewer than UNITS_PER_WORKER sites a worker, each site's dose ids are split into ranges that hold
    every dose of the site exactly once (the last range unbounded), in site then id order."""
    units = signing_workers._units(checked, KEYED, workers)
    per_site = -(-workers * signing_workers.UNITS_PER_WORKER // len(KEYED))
    assert len(units) == per_site * len(KEYED)
    assert [site for site, _, _ in units] == sorted(site for site, _, _ in units)
    with checked.connect() as conn:
        ids = {
            site: [i for (i,) in conn.execute(sa.select(doses.c.id).where(doses.c.site_id == site))]
            for site in KEYED
        }
    for site in KEYED:
        ranges = [(after, up_to) for unit_site, after, up_to in units if unit_site == site]
        assert ranges[0][0] == 0
        assert ranges[-1][1] is None
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        held = collections.Counter(
            i for i in ids[site] for after, up_to in ranges if i > after and (up_to is None or i <= up_to)
        )
        assert set(held.values()) == {1}
        assert sorted(held) == sorted(ids[site])
        used = [r for r in ranges if any(r[0] < i and (r[1] is None or i <= r[1]) for i in ids[site])]
        assert len(used) > 1  # really split


def test_work_units_are_whole_sites_when_there_are_enough_sites(
    checked: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With UNITS_PER_WORKER sites a worker or more, each site is one unit, unbounded (no id range read)."""
    monkeypatch.setattr(signing_workers, "UNITS_PER_WORKER", 1)
    assert signing_workers._units(checked, KEYED, 2) == [(site, 0, None) for site in KEYED]
    monkeypatch.setattr(signing_workers, "UNITS_PER_WORKER", 4)
    assert signing_workers._units(checked, ["nowhere", *KEYED], 1)[0] == ("nowhere", 0, None)
