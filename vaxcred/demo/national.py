"""Demo part 2: the national pipeline on synthetic people in a SQLite file (counts and codes to the terminal)."""

from __future__ import annotations

import csv
import functools
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509

from vaxcred.crypto import Signer
from vaxcred.issue import Issuer
from vaxcred.keys import KeyChainDir
from vaxcred.pipeline.corrections import (
    CorrectionField,
    file_correction,
    get_correction,
    overdue_report,
    resolve_correction,
)
from vaxcred.pipeline.issuance.stage import KeyChainIssuerFactory, run_issuance
from vaxcred.pipeline.records.cccd import PROVINCES
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.records.model import OPTIONAL_FIELDS, ROW_FIELDS
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry, write_registry_csv
from vaxcred.pipeline.reports.certificate_pdf import CertificateDose, render_certificate_pdf
from vaxcred.pipeline.reports.chart import render_chart_png
from vaxcred.pipeline.reports.quality import build_quality_report, format_text
from vaxcred.pipeline.reports.revocation_export import check_hc1, export_revocations, revocation_list
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.pipeline.synthetic import default_sites, generate_people
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import PassportStatus, doses, passport_doses, passports, persons

#: demo only: real deployments take the passphrase from $VAXCRED_PASSPHRASE or a prompt
DEMO_PROVINCES = ("001", "079", "048", "031", "092")
SITES_PER_PROVINCE = 2
#: rows a site clerk got wrong on paper: they land in rejects.csv, the rest is imported
BAD_ROWS = (
    {"dob": "1890-01-01", "dose_number": "1"},  # a year the CCCD's century digit contradicts
    {"vaccine": "Vắc xin lạ", "dose_number": "2"},  # not a product used in Viet Nam
    {"date": "2031-01-01", "dose_number": "3"},  # in the future
)
#: the environment variable the demo's issuance workers read the demo passphrase from
_WORKER_PASSPHRASE_ENV = "VAXCRED_DEMO_PASSPHRASE"  # noqa: S105 - a variable name


class _Clock:
    """Stage timings for the summary."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Seconds since the previous lap, recorded under ``stage``."""
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.stages.append((stage, seconds))
        return seconds


def _write_people(
    out: Path, people: int, seed: int, sites: tuple[str, ...]
) -> tuple[Path, list[RegistryEntry]]:
    """doses.csv (as the sites recorded them, with BAD_ROWS mixed in) and the registry's entries."""
    entries: list[RegistryEntry] = []
    path = out / "doses.csv"
    # after which people the bad rows (copies of that person's first row, one field spoiled) go
    spoil = {people * (i + 1) // (len(BAD_ROWS) + 1): bad for i, bad in enumerate(BAD_ROWS)}
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=(*ROW_FIELDS, *OPTIONAL_FIELDS), restval="")
        writer.writeheader()
        people_rows = generate_people(people, seed=seed, sites=sites, provinces=DEMO_PROVINCES)
        for k, person in enumerate(people_rows):
            writer.writerows(row.to_fields() for row in person.rows)
            if k in spoil and person.rows:
                writer.writerow({**person.rows[0].to_fields(), **spoil[k]})
            if person.entry is not None:
                entries.append(person.entry)
    os.chmod(path, 0o600)  # personal data (synthetic, but handled like the real thing)
    return path, entries


def _site_keys(chain: KeyChainDir, sites: tuple[str, ...], now: datetime) -> dict[str, Signer]:
    signers: dict[str, Signer] = {}
    for site_id in sites:
        if (chain.folder / "sites" / f"{site_id}.pem").exists():
            signers[site_id] = chain.load(f"sites/{site_id}").signer()
            continue
        province = PROVINCES[site_id[2:5]]
        name = f"Cơ sở tiêm chủng số {int(site_id[-2:])}, {province}"
        signers[site_id] = chain.new_site(site_id=site_id, site_name=name, now=now).signer()
    return signers


def _first_passport_holder(db: Database) -> tuple[int, str, int]:
    """(person id, citizen ID, newest dose id) of the first person holding a passport, for the correction."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(persons.c.id, persons.c.citizen_id, sa.func.max(doses.c.id))
            .join(passports, passports.c.person_id == persons.c.id)
            .join(doses, doses.c.person_id == persons.c.id)
            .where(passports.c.status == PassportStatus.ACTIVE.value)
            .group_by(persons.c.id, persons.c.citizen_id)
            .order_by(persons.c.id)
            .limit(1)
        ).one()
    return int(row[0]), str(row[1]), int(row[2])


def _active_hc1(db: Database, person_id: int, status: PassportStatus) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                sa.select(passports.c.hc1)
                .where(passports.c.person_id == person_id, passports.c.status == status.value)
                .order_by(passports.c.id.desc())
                .limit(1)
            ).scalar_one()
        )


def run_pipeline(
    out: Path, now: datetime, chain: KeyChainDir, *, people: int, workers: int, seed: int = 2022
) -> int:
    """Part 2 (see the module docstring); returns 0 when every stage did what it should."""
    clock = _Clock()
    sites = default_sites(DEMO_PROVINCES, per_province=SITES_PER_PROVINCE)
    print(
        f"\n== National pipeline: {people:,} synthetic people, {len(sites)} sites in {len(DEMO_PROVINCES)} provinces"
    )
    doses_csv, entries = _write_people(out, people, seed, sites)
    write_registry_csv(out / "registry.csv", entries)
    os.chmod(out / "registry.csv", 0o600)
    print(
        f"5. generated {doses_csv} and the population registry {out / 'registry.csv'} ({clock.lap('generate'):.1f} s)"
    )

    db_path = out / "pipeline.db"
    for leftover in (db_path, db_path.with_name("pipeline.db-wal"), db_path.with_name("pipeline.db-shm")):
        leftover.unlink(missing_ok=True)
    db = open_database(f"sqlite:///{db_path}")
    db.migrate()
    imported = import_file(db, doses_csv, rejects_path=out / "rejects.csv", today=now.date())
    print(
        f"6. import: {imported.rows:,} rows -> {imported.imported:,} doses stored, {imported.rejected} rejected "
        f"(line, field, reason in {out / 'rejects.csv'}) ({clock.lap('import'):.1f} s)"
    )

    checked = run_registry_check(db, TableRegistry(entries), now=now)
    print(
        f"7. registry check: {checked.checked:,} persons -> {checked.verified:,} verified, "
        f"{checked.mismatch:,} mismatch, {checked.not_found:,} not found, {checked.invalid_id:,} invalid ID "
        f"({clock.lap('registry check'):.1f} s)"
    )

    signers = _site_keys(chain, sites, now)
    clock.lap("site keys")
    signed = run_site_signing(db, signers, now=now)
    print(
        f"8. site signing: {len(signers)} site certificates in {chain.folder / 'sites'}; {signed.signed:,} doses "
        f"signed, {signed.skipped_unverified:,} wait for a verified identity ({clock.lap('site signing'):.1f} s)"
    )

    site_ca = chain.load("site-ca").certificate
    factory: Callable[[], Issuer]
    if workers > 1:
        os.environ[_WORKER_PASSPHRASE_ENV] = chain.passphrase.decode("utf-8")
        factory = KeyChainIssuerFactory(
            folder=chain.folder.resolve(), at=now, passphrase_env=_WORKER_PASSPHRASE_ENV
        )
    else:
        factory = functools.partial(Issuer, chain.load_dsc_signer(now=now))
    issued = run_issuance(db, factory, now=now, site_ca=site_ca, workers=workers)
    print(
        f"9. central issuance ({workers} worker{'s' if workers > 1 else ''}): {issued.issued:,} passports, "
        f"{issued.skipped_ineligible:,} not eligible, {issued.failed} failed ({clock.lap('issuance'):.1f} s)"
    )

    quality = build_quality_report(db, now=now)
    (out / "report.csv").write_text(quality.to_csv(), encoding="utf-8", newline="")
    (out / "report.json").write_text(quality.to_json(), encoding="utf-8")
    (out / "report.png").write_bytes(render_chart_png(quality, by="province"))
    (out / "report-sites.png").write_bytes(render_chart_png(quality, by="site"))
    clock.lap("report")
    print("10. data-quality report:\n")
    print("    " + format_text(quality).rstrip("\n").replace("\n", "\n    ") + "\n")

    ok = _correction(out, now, db, chain, signers, factory, site_ca, clock)
    db.dispose()

    total = sum(seconds for _, seconds in clock.stages)
    print("\nTimings: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in clock.stages))
    print(f"Pipeline total: {total:.1f} s")
    print("\nOutput:")
    for name in (
        "keys/",
        "passport.png",
        "passport.svg",
        "passport.hc1.txt",
        "trustlist.cbor",
        "doses.csv",
        "registry.csv",
        "rejects.csv",
        "pipeline.db",
        "report.csv",
        "report.json",
        "report.png",
        "report-sites.png",
        "revocations.json",
        "certificate.pdf",
    ):
        print(f"   {out / name}")
    return 0 if ok and issued.failed == 0 and signed.failed == 0 else 1


def _correction(
    out: Path,
    now: datetime,
    db: Database,
    chain: KeyChainDir,
    signers: dict[str, Signer],
    factory: Callable[[], Issuer],
    site_ca: x509.Certificate,
    clock: _Clock,
) -> bool:
    """A citizen reports a wrong lot number on a passport holder's newest dose; the site resolves it 2 h later:
    the dose is re-signed, the old passport revoked and a new one issued. A second request stays open and
    shows up as overdue."""
    person_id, citizen_id, dose_id = _first_passport_holder(db)
    old_hc1 = _active_hc1(db, person_id, PassportStatus.ACTIVE)
    correction_id = file_correction(
        db,
        citizen_id=citizen_id,
        field=CorrectionField.LOT,
        proposed_value="FK-CORRECTED-1",
        now=now,
        dose_id=dose_id,
    )
    filed = get_correction(db, correction_id)
    print(
        f"11. correction {correction_id} filed: the lot of dose {dose_id} (person {person_id}), routed to site "
        f"{filed.site_id}, due {filed.due_at:%Y-%m-%d %H:%M} UTC"
    )
    later = now + timedelta(hours=2)
    reissued: list[int] = []

    def reissue(_person: int) -> None:
        run_site_signing(db, signers, now=later)
        reissued.append(run_issuance(db, factory, now=later, site_ca=site_ca).issued)

    done = resolve_correction(
        db, correction_id, now=later, registry=TableRegistry.from_csv(out / "registry.csv"), reissue=reissue
    )
    print(
        f"    resolved 2 h later: signature superseded {done.superseded_signature}, passport "
        f"{done.revoked_passport_id} revoked, registry {done.registry_status}, {sum(reissued)} passport re-issued"
    )

    batches = export_revocations(db, now=later)
    (out / "revocations.json").write_bytes(b"[" + b",\n".join(b.to_json() for b in batches) + b"]\n")
    revoked = revocation_list(db, now=later)
    new_hc1 = _active_hc1(db, person_id, PassportStatus.ACTIVE)
    print(
        f"12. revocation export: {len(batches)} batches, {sum(len(b.entries) for b in batches)} hashes -> "
        f"{out / 'revocations.json'}; a verifier finds the old passport listed by "
        f"{check_hc1(revoked, old_hc1)}, the new one {check_hc1(revoked, new_hc1) or 'not listed'}"
    )

    other_person, other_id, other_dose = _second_holder(db, person_id)
    file_correction(
        db,
        citizen_id=other_id,
        field=CorrectionField.LOT,
        proposed_value="ABV-LATE-9",
        now=now,
        dose_id=other_dose,
    )
    late = overdue_report(db, now=now + timedelta(days=3))
    print(
        "13. overdue report 3 days later: "
        + ", ".join(
            f"site {s.site_id}: {s.open_overdue} open past {s.oldest_due_at:%Y-%m-%d %H:%M}" for s in late
        )
        + f" (a request for person {other_person}, never answered)"
    )

    write_certificate(db, person_id, out / "certificate.pdf", later)
    print(
        f"14. printable certificate of the re-issued passport: {out / 'certificate.pdf'} ({clock.lap('correction'):.1f} s)"
    )
    return done.revoked_passport_id is not None and sum(reissued) == 1 and bool(late)


def _second_holder(db: Database, skip: int) -> tuple[int, str, int]:
    with db.connect() as conn:
        row = conn.execute(
            sa.select(persons.c.id, persons.c.citizen_id, sa.func.max(doses.c.id))
            .join(doses, doses.c.person_id == persons.c.id)
            .where(persons.c.id != skip)
            .group_by(persons.c.id, persons.c.citizen_id)
            .order_by(persons.c.id)
            .limit(1)
        ).one()
    return int(row[0]), str(row[1]), int(row[2])


def write_certificate(db: Database, person_id: int, path: Path, at: datetime) -> None:
    """The person's active passport as the printable PDF (personal data: mode 0600)."""
    with db.connect() as conn:
        person = conn.execute(
            sa.select(persons.c.full_name, persons.c.dob).where(persons.c.id == person_id)
        ).one()
        passport = conn.execute(
            sa.select(passports.c.id, passports.c.uvci, passports.c.hc1, passports.c.issued_at).where(
                passports.c.person_id == person_id, passports.c.status == PassportStatus.ACTIVE.value
            )
        ).one()
        rows = conn.execute(
            sa.select(doses.c.dose_number, doses.c.date, doses.c.vaccine, doses.c.lot, doses.c.site_id)
            .join(passport_doses, passport_doses.c.dose_id == doses.c.id)
            .where(passport_doses.c.passport_id == passport.id)
        ).all()
    pdf = render_certificate_pdf(
        full_name=person.full_name,
        dob=person.dob,
        doses=[
            CertificateDose(
                dose_number=r.dose_number,
                date=r.date.isoformat(),
                vaccine=r.vaccine,
                lot=r.lot,
                site=r.site_id,
            )
            for r in rows
        ],
        uvci=passport.uvci,
        hc1=passport.hc1,
        issued_at=passport.issued_at,
        creation_date=at,
    )
    path.write_bytes(pdf)
    os.chmod(path, 0o600)
