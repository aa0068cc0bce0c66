"""``vaxcred corrections …`` (phản ánh: citizens' correction requests, 48-hour deadline) and
``vaxcred revocations export`` (EU gateway revocation batches)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import click

from vaxcred.cli._common import open_chain, parse_at, safe
from vaxcred.cli._pipeline import (
    at_option,
    db_option,
    load_registry,
    number,
    open_db,
    registry_option,
    registry_timeout_option,
    site_ca_certificate,
    storage_errors,
)
from vaxcred.cli.signing import site_signers
from vaxcred.issue import Issuer
from vaxcred.pipeline.corrections import (
    PERSON_FIELDS,
    Correction,
    CorrectionField,
    DoseKey,
    file_correction,
    get_correction,
    open_corrections,
    overdue_report,
    recorded_doses,
    reject_correction,
    resolve_correction,
)
from vaxcred.pipeline.issuance.stage import run_issuance
from vaxcred.pipeline.records.calendar import local_text
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.pipeline.reports.revocation_export import export_revocations
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.privacy import mask_dob, mask_name
from vaxcred.storage import Database
from vaxcred.storage.schema import CorrectionState
from vaxcred.text import clip

#: row ids are SQL BIGINTs: a larger number is no row (and no driver can bind it)
_MAX_ID = 2**63 - 1
_FIELDS = [f.value for f in CorrectionField]
_FILE_EPILOG = """\
Name the dose with --dose-id, or with its natural key --dose-number/--dose-date/--dose-site. For
--field missing_dose (a dose given but never recorded, seed 004) --value is JSON:

\b
  {"vaccine": "Vaxzevria", "lot": "ABV5678", "date": "2021-08-02", "dose_number": 1, "site_id": "VN001-S01"}

--field duplicate (no --value) withdraws the named record: a duplicate entry or one recorded by mistake. It
is kept, never deleted, and ignored from then on. Only a record that contradicts another of the person's
(the same dose number again, on another day or at another site, or a dose out of order with its date) can
be withdrawn: `corrections doses` shows which. A contradictory history (held from issuance) is resolved by
--field date or dose_number (a wrong record) or duplicate (a record that should not exist).

\b
  vaxcred corrections file --citizen-id 001090012345 --dose-id 43 --field duplicate

The correction goes to the site that recorded the dose (the missing dose's site), due in 48 hours. Filing
the same open correction again prints its id. Exit code: 0 filed; 1 refused (unknown record, a value import
would refuse, a withdrawn dose, a record that contradicts nothing); 3 usage error.
"""


@click.group("corrections")
def corrections() -> None:
    """Citizens' correction requests (phản ánh): file, list, resolve or reject; sites answer in 48 hours."""


def _describe(correction: Correction) -> str:
    if correction.field is CorrectionField.DUPLICATE:
        what = f"withdraw dose {correction.dose_id} (duplicate)"
    else:
        what = f"{correction.field.value} of dose {correction.dose_id}"
    late = ""
    if correction.dose_withdrawn and correction.field is not CorrectionField.DUPLICATE:
        late = " [dose withdrawn]"
        if correction.state is CorrectionState.OPEN and correction.field not in PERSON_FIELDS:
            late = " [dose withdrawn: reject it]"
    return (
        f"correction {correction.id}: {what}{late}, site {safe(correction.site_id)}, {correction.state.value}, "
        f"due {local_text(correction.due_at)}"
    )


def _shown_value(correction: Correction, reveal: bool) -> str:
    """The proposed value; a person field's (name, date of birth, gender) is masked unless revealed."""
    value = correction.proposed_value
    if correction.field is CorrectionField.DUPLICATE:
        return "withdraw the record (kept, never deleted)"
    if reveal or correction.field not in PERSON_FIELDS:
        return safe(value)
    if correction.field is CorrectionField.FULL_NAME:
        return mask_name(value)
    if correction.field is CorrectionField.DOB:
        return mask_dob(value) + "-**-**"
    return "*"


@corrections.command("file", epilog=_FILE_EPILOG)
@click.option(
    "--citizen-id", required=True, metavar="ID", help="The citizen's CCCD / CMND / other ID number."
)
@click.option(
    "--field",
    "field_name",
    required=True,
    type=click.Choice(_FIELDS),
    help="What to correct; duplicate: withdraw the record (a duplicate entry, or recorded by mistake).",
)
@click.option("--value", help="The proposed value (JSON for missing_dose; none for duplicate).")
@click.option(
    "--dose-id", type=click.IntRange(1, _MAX_ID), help="The dose the correction is about (its row id)."
)
@click.option("--dose-number", type=click.IntRange(1, 9), help="Natural key: the dose number …")
@click.option("--dose-date", metavar="YYYY-MM-DD", help="… its date …")
@click.option("--dose-site", metavar="SITE_ID", help="… and the site that recorded it.")
@db_option
@at_option("Filing time; the 48-hour clock starts here")
def file_(
    citizen_id: str,
    field_name: str,
    value: str | None,
    dose_id: int | None,
    dose_number: int | None,
    dose_date: str | None,
    dose_site: str | None,
    db_url: str,
    at: str | None,
) -> None:
    """File a correction of one dose record (or of its person's name, date of birth or gender), or withdraw a
    record (--field duplicate)."""
    key_parts = (dose_number, dose_date, dose_site)
    if any(p is not None for p in key_parts) and not all(p is not None for p in key_parts):
        raise click.UsageError("a natural key needs all of --dose-number, --dose-date and --dose-site")
    key = DoseKey(dose_number, dose_date, dose_site) if dose_number is not None else None  # type: ignore[arg-type]
    proposed: Any = value
    if field_name == CorrectionField.DUPLICATE.value:
        if value is not None:
            raise click.UsageError("--field duplicate takes no --value: it withdraws the named record")
    elif value is None:
        raise click.UsageError(f"--field {field_name} needs --value")
    if field_name == CorrectionField.MISSING_DOSE.value and value is not None:
        try:
            proposed = json.loads(value)
        except ValueError as e:
            raise click.BadParameter("missing_dose needs a JSON object", param_hint="--value") from e
        if not isinstance(proposed, dict):
            raise click.BadParameter("missing_dose needs a JSON object", param_hint="--value")
    elif dose_id is None and key is None:
        raise click.UsageError("name the dose: --dose-id, or --dose-number/--dose-date/--dose-site")
    db = open_db(db_url)
    try:
        with storage_errors():
            correction_id = file_correction(
                db,
                citizen_id=citizen_id.strip(),
                field=field_name,
                proposed_value=proposed,
                now=parse_at(at),
                dose_id=dose_id,
                dose_key=key,
            )
            click.echo("filed " + _describe(get_correction(db, correction_id)))
    finally:
        db.dispose()


@corrections.command("list")
@click.option(
    "--site",
    "site_id",
    metavar="SITE_ID",
    help="The site whose queue to show (default: every site, nationally).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Show at most this many (most urgent).",
)
@click.option("--reveal", is_flag=True, help="Show proposed names / dates of birth / genders unmasked.")
@db_option
@at_option("Mark corrections overdue as of this time")
def list_(site_id: str | None, limit: int, reveal: bool, db_url: str, at: str | None) -> None:
    """Open corrections, the most urgent first — of one site (--site) or of the whole country — with the dose
    id each names (proposed personal values masked by default). Deadlines in Viet Nam time (ICT, UTC+7)."""
    now = parse_at(at)
    db = open_db(db_url)
    try:
        with storage_errors():
            queue = open_corrections(db, site_id, limit=limit)
    finally:
        db.dispose()
    scope = f"site {safe(site_id)}" if site_id is not None else "nationally"
    if not queue:
        click.echo(f"{scope}: no open corrections")
    for c in queue:
        late = "  OVERDUE" if c.is_overdue(now) else ""
        click.echo(f"{_describe(c)}{late}\n    proposed: {_shown_value(c, reveal)}")
    if len(queue) == limit:
        click.echo(f"(the {number(limit)} most urgent shown; --limit for more)")


@corrections.command("doses")
@click.option(
    "--citizen-id", required=True, metavar="ID", help="The citizen's CCCD / CMND / other ID number."
)
@db_option
def doses_(citizen_id: str, db_url: str) -> None:
    """A person's dose records with the dose ids `corrections file --dose-id` names, whether each is
    site-signed, its open corrections, when it was withdrawn (withdrawn records are kept and ignored), and
    whether the records in force contradict each other (held from issuance)."""
    db = open_db(db_url)
    try:
        with storage_errors():
            recorded, problems = recorded_doses(db, citizen_id)
    finally:
        db.dispose()
    click.echo(
        f"{'dose id':>8}  {'no.':>3}  {'date':<10}  {'site':<16}  {'vaccine':<14}  {'lot':<14}  signed  open"
        "  withdrawn"
    )
    for d in recorded:
        withdrawn = f"  {local_text(d.withdrawn_at)}" if d.withdrawn_at is not None else ""
        click.echo(
            f"{d.id:>8}  {d.dose_number:>3}  {d.date.isoformat():<10}  {safe(d.site_id):<16}  "
            f"{safe(d.vaccine):<14}  {safe(d.lot):<14}  {'yes' if d.signed else 'no':<6}  "
            f"{d.open_corrections:<4}{withdrawn}".rstrip()
        )
    if problems:
        click.echo(
            f"contradictory history ({', '.join(p.value for p in problems)}): held from issuance until a "
            "correction fixes the date or dose number of a wrong record, or withdraws a record that should not "
            "exist (--field duplicate)"
        )


def _reissuer(db: Database, folder: Path, now: dt.datetime) -> Any:
    """``reissue(person_id)`` for :func:`resolve_correction`: the sites sign again, the ministry issues."""
    chain = open_chain(folder)
    signer = chain.load_dsc_signer(now=now)
    site_ca = site_ca_certificate(folder)
    issued: list[int] = []

    def reissue(_person_id: int) -> None:
        run_site_signing(db, site_signers(chain), now=now)
        report = run_issuance(
            db, functools.partial(Issuer, signer), now=now, site_ca=site_ca, site_crl=chain.site_crl()
        )
        issued.append(report.issued)

    return reissue, issued


@corrections.command("resolve")
@click.argument("correction_id", type=click.IntRange(1, _MAX_ID))
@registry_option
@registry_timeout_option
@click.option(
    "--keys",
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Key chain: re-sign the corrected dose and re-issue the passport now (else the next sign-sites "
    "and issue-batch runs do it).",
)
@click.option("--note", help="What the site did (stored with the correction).")
@db_option
@at_option("Resolution time")
def resolve(
    correction_id: int,
    registry_source: str,
    registry_timeout: float,
    folder: Path | None,
    note: str | None,
    db_url: str,
    at: str | None,
) -> None:
    """Apply correction CORRECTION_ID: update the record (a duplicate: withdraw it), re-check the person
    against the registry, revoke the passport built on the old record (by UCI and signature hash; a withdrawal
    only if the passport was issued on that record) and, with --keys, re-issue it.

    Exit code: 0 resolved; 1 refused (closed already, conflicting record, registry failure); 3 usage error.
    """
    now = parse_at(at)
    registry = load_registry(registry_source, timeout=registry_timeout)
    db = open_db(db_url)
    try:
        with storage_errors():
            reissue, issued = _reissuer(db, folder, now) if folder is not None else (None, [])
            done = resolve_correction(
                db, correction_id, now=now, registry=registry, reissue=reissue, note=note
            )
            if (
                reissue is not None
                and done.revoked_passport_id is None
                and done.registry_status is RegistryStatus.VERIFIED
            ):
                reissue(done.person_id)  # no passport yet: sign and issue the first one now
    finally:
        db.dispose()
    withdrawn = " withdrawn (kept, ignored from now on)" if done.withdrawn else ""
    click.echo(
        f"correction {done.correction_id} resolved: dose {done.dose_id} of person {done.person_id}{withdrawn}"
    )
    status = done.registry_status.value if done.registry_status is not None else "not checked"
    click.echo(f"  registry check again: {status}")
    if done.superseded_signature:
        click.echo(
            "  the site's signature of the record is superseded (a withdrawn record is never signed again)"
            if done.withdrawn
            else "  the site's signature of the old record is superseded: the site signs again"
        )
    if done.revoked_passport_id is None:
        click.echo(
            "  no active passport was issued on this record: none revoked"
            if done.withdrawn
            else "  no active passport to revoke"
        )
        if issued:
            click.echo(f"  signed and issued: {number(sum(issued))} new passport")
        elif done.registry_status is RegistryStatus.VERIFIED:
            click.echo(
                "  next: `vaxcred sign-sites --keys KEYS` then `vaxcred issue-batch --keys KEYS` issue the "
                "person's passport if they hold none (or resolve with --keys to do it now)"
            )
        else:
            click.echo(f"  next: no passport while the registry says {status}: correct the person's record")
        return
    click.echo(
        f"  passport {done.revoked_passport_id} revoked (UCI and signature hash; `vaxcred revocations export`)"
    )
    if issued:
        click.echo(f"  re-signed and re-issued: {number(sum(issued))} new passport")
    else:
        click.echo("  re-issue: run `vaxcred sign-sites` and `vaxcred issue-batch`")


@corrections.command("reject")
@click.argument("correction_id", type=click.IntRange(1, _MAX_ID))
@click.option("--note", required=True, help="Why the request is rejected (stored; shown to the citizen).")
@db_option
@at_option("Rejection time")
def reject(correction_id: int, note: str, db_url: str, at: str | None) -> None:
    """Reject correction CORRECTION_ID with a note; no record changes. Exit 1 if it is closed already."""
    db = open_db(db_url)
    try:
        with storage_errors():
            closed = reject_correction(db, correction_id, now=parse_at(at), note=note)
    except ValueError as e:  # an empty or overlong note, a time before the request
        raise click.UsageError(safe(str(e))) from e
    finally:
        db.dispose()
    click.echo(f"correction {closed.id} rejected")


@corrections.command("overdue")
@db_option
@at_option("Deadline reference time")
def overdue(db_url: str, at: str | None) -> None:
    """Sites with open corrections past their 48-hour deadline, the most overdue first (exit 0 either way)."""
    db = open_db(db_url)
    try:
        with storage_errors():
            late = overdue_report(db, now=parse_at(at))
    finally:
        db.dispose()
    if not late:
        click.echo("no overdue corrections")
        return
    click.echo(f"{'site':<24} {'overdue':>8}  oldest deadline")
    for row in late:
        click.echo(f"{safe(row.site_id):<24} {number(row.open_overdue):>8}  {local_text(row.oldest_due_at)}")


@click.group("revocations")
def revocations() -> None:
    """Revoked passports (corrected records): the EU gateway revocation batches."""


@revocations.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The JSON file.")
@click.option(
    "--since", metavar="ISO-8601", help="Only revocations made at or after this time (incremental)."
)
@click.option("--country", default="VN", show_default=True, help="ISO 3166-1 alpha-2 country of the batches.")
@db_option
@at_option("Leave out passports expired by then")
def export(out: Path, since: str | None, country: str, db_url: str, at: str | None) -> None:
    """Write the revocations still worth publishing as a JSON array of gateway batches
    ({"country", "expires", "kid", "hashType", "entries": [{"hash"}]}, ≤ 1000 entries each)."""
    now = parse_at(at)
    since_at = parse_at(since) if since is not None else None
    db = open_db(db_url)
    try:
        with storage_errors():
            batches = export_revocations(db, country=country.upper(), now=now, since=since_at)
    except ValueError as e:  # --country not a two-letter code
        raise click.UsageError(safe(clip(str(e), 120))) from e
    finally:
        db.dispose()
    out.write_bytes(b"[" + b",\n".join(b.to_json() for b in batches) + b"]\n")
    entries = sum(len(b.entries) for b in batches)
    click.echo(f"{number(len(batches))} batches, {number(entries)} hashes written to {safe(out)}")
