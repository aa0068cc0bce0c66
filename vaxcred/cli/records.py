"""``vaxcred records``: standalone site-signed dose records — export them from the database, verify one offline.

The record format and its text form are :mod:`vaxcred.pipeline.reports.record_text` (``VXSR1:`` + Base45 of the
record's bytes); the checks are :func:`vaxcred.pipeline.site_signing.record.verify_dose`'s.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click

from vaxcred import errors
from vaxcred.cli._common import (
    EXIT_INVALID,
    EXIT_NEEDS_CHECK,
    RefusedError,
    parse_at,
    safe,
    write_private,
)
from vaxcred.cli._files import load_certificate_option, read_bounded
from vaxcred.cli._pipeline import db_option, number, open_db, storage_errors
from vaxcred.codec.image import sniff_image
from vaxcred.pipeline.reports.record_text import encode_record_text, read_record
from vaxcred.pipeline.reports.site_records import NO_SITE_RECORD, standalone_records
from vaxcred.pipeline.site_signing.batch_codec import BATCH_RECORD_START
from vaxcred.pipeline.site_signing.claims import DoseClaims
from vaxcred.pipeline.site_signing.record import verify_dose
from vaxcred.text import clip

#: the largest FILE read: a QR image (PNG or JPEG, the decoder's own caps apply); a record is far smaller
_MAX_INPUT: Final = 16 * 1024 * 1024
#: seconds the isolated child may spend decoding a QR image
_IMAGE_DEADLINE: Final = 2.0

_EXPORT_EPILOG = """\
\b
Output: one line per dose (dose number, then date order), the record's text form
  VXSR1:<Base45 of the record>
which is also what each per-dose QR code of the printed certificate holds. With --out DIR, one file per dose
instead, DIR/dose-<dose id>.txt (the same line) or, with --binary, DIR/dose-<dose id>.cbor (the record's bytes:
a batch member's [2, head, index, audit path, payload] or a v1 COSE_Sign1); files are mode 0600.

\b
Each record is the dose's current site signature, verifiable with the site certificate alone
(`vaxcred records verify`). Withdrawn doses are left out; doses without a current signature are counted on
stderr. A record holds the salted hash of the citizen ID, not the ID, and no name: it is pipeline data, not
public data. Exit code: 0 exported; 1 no such person or dose, a withdrawn dose, or nothing signed to export;
3 usage error.
"""

_VERIFY_EPILOG = """\
FILE is a record in any of its forms: the text form (VXSR1:…, from `records export` or a scanned certificate
QR code), the binary record (`records export --binary`), or a PNG/JPEG image of one QR code (decoded in an
isolated child process); `-` reads standard input.

\b
Steps: the envelope and payload are strict; the certificate is a site certificate (site-record EKU) whose kid
the record names; the signature holds with its key (a batch member: its audit path leads to the signed batch
root); the payload's site is the certificate's; the certificate was valid when the record was signed, and the
signing time is not after --at; with --site-ca, the certificate chains to it (valid at the signing time); with
--citizen-id, the record was signed for that ID.

\b
Output: the dose (number, vaccine, lot, date), the site and the signing time; never the citizen ID or its hash.
Exit code: 0 VALID; 2 NEEDS_CHECK (the signature holds, but without --site-ca the certificate itself was not
checked); 1 INVALID (a malformed record or a failed step, with its stable code); 3 usage error.
"""


@click.group("records")
def records() -> None:
    """Standalone site-signed dose records: export them from the database, verify one offline.

    \b
    vaxcred records export --citizen-id ID [--out DIR] [--binary]    a person's records
    vaxcred records export --dose-id N                              one dose's record
    vaxcred records verify FILE --site-cert SITE.pem [--site-ca CA.pem] [--citizen-id ID] [--at T]
    """


@records.command("export", epilog=_EXPORT_EPILOG)
@db_option
@click.option("--citizen-id", help="Export the records of this person's doses in force.")
@click.option("--dose-id", type=click.IntRange(min=1, max=2**63 - 1), help="Export this dose's record.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per dose into this folder (created if missing) instead of standard output.",
)
@click.option("--binary", is_flag=True, help="With --out: the records' bytes (.cbor) instead of text (.txt).")
def export(db_url: str, citizen_id: str | None, dose_id: int | None, out: Path | None, binary: bool) -> None:
    """Export standalone site-signed records of a person's doses, or of one dose."""
    if (citizen_id is None) == (dose_id is None):
        raise click.UsageError("give exactly one of --citizen-id and --dose-id")
    if binary and out is None:
        raise click.UsageError("--binary needs --out (binary records are written to files, not the terminal)")
    db = open_db(db_url)
    try:
        with storage_errors():
            found = standalone_records(db, citizen_id=citizen_id, dose_id=dose_id)
    finally:
        db.dispose()
    if not found.records:
        raise RefusedError(
            f"[{NO_SITE_RECORD}] no dose in force has a current site signature ({found.unsigned} unsigned)"
        )
    if out is not None:
        try:
            out.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (OSError, ValueError) as e:
            raise click.BadParameter(f"cannot create {safe(clip(str(out)))}: {e}", param_hint="--out") from e
    for item in found.records:
        text = encode_record_text(item.record)
        if out is None:
            click.echo(text)
        elif binary:
            write_private(out / f"dose-{item.dose_id}.cbor", item.record, option="--out")
        else:
            write_private(out / f"dose-{item.dose_id}.txt", f"{text}\n".encode("ascii"), option="--out")
    where = "" if out is None else f" to {safe(clip(str(out)))}"
    click.echo(f"exported {number(len(found.records))} site records{where}", err=True)
    if found.unsigned:
        click.echo(f"note: {number(found.unsigned)} doses in force have no current site signature", err=True)


def _read_input(file: Path) -> bytes:
    if str(file) == "-":
        return sys.stdin.buffer.read(_MAX_INPUT + 1)
    return read_bounded(file, _MAX_INPUT, "FILE", refuse_larger=False)


def _record_of(data: bytes) -> bytes:
    """The record's bytes from FILE's content (an image decoded in a child process); DecodeError if none."""
    if len(data) > _MAX_INPUT:
        raise errors.DecodeError(f"more than {_MAX_INPUT} bytes", code="sitesign.too_large")
    if sniff_image(data) is not None:
        from vaxcred.qr.isolated import IsolatedImageDecoder  # local import: Pillow and zxing-cpp

        with IsolatedImageDecoder(deadline=_IMAGE_DEADLINE) as decoder:
            data = decoder.decode(data).encode("ascii", "replace")
    return read_record(data)


def _describe(claims: DoseClaims, record: bytes) -> dict[str, Any]:
    return {
        "format": "batch" if record.startswith(BATCH_RECORD_START) else "v1",
        "site": claims.site_id,
        "kid": claims.kid.hex(),
        "dose_number": claims.dose_number,
        "date": claims.date,
        "vaccine": claims.mp,
        "lot": claims.lot,
        "signed_at": claims.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@records.command("verify", epilog=_VERIFY_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--site-cert",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The site's certificate (PEM or DER) the record claims.",
)
@click.option(
    "--site-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The site CA: the site certificate must chain to it (without it: NEEDS_CHECK).",
)
@click.option("--citizen-id", help="The ID the record must have been signed for (checked, never printed).")
@click.option(
    "--at",
    "at",
    metavar="ISO-8601",
    help="The time of the check: the signing time may not be after it (default: now).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def verify(
    ctx: click.Context,
    file: Path,
    site_cert: Path,
    site_ca: Path | None,
    citizen_id: str | None,
    at: str | None,
    as_json: bool,
) -> None:
    """Verify one standalone site-signed dose record offline, with the site's certificate."""
    now: datetime = parse_at(at)
    certificate = load_certificate_option(site_cert, "--site-cert")
    ca = load_certificate_option(site_ca, "--site-ca") if site_ca is not None else None
    data = _read_input(file)
    record = b""
    try:
        record = _record_of(data)
        claims = verify_dose(record, site_certificate=certificate, site_ca=ca, citizen_id=citizen_id, now=now)
    except errors.VaxcredError as e:
        kind = "malformed" if isinstance(e, errors.DecodeError) else "failed"
        if as_json:
            click.echo(
                json.dumps({"status": "INVALID", "code": e.code, "problem": kind, "message": e.message})
            )
        else:
            click.echo(f"INVALID site record: [{e.code}] {safe(e.message)}")
        ctx.exit(EXIT_INVALID)
    status = "VALID" if ca is not None else "NEEDS_CHECK"
    described = _describe(claims, record)
    checks = {"chain": ca is not None, "citizen": citizen_id is not None}
    if as_json:
        click.echo(json.dumps({"status": status, "record": described, "checked": checks}))
    else:
        click.echo(f"{status} site-signed dose record ({described['format']})")
        click.echo(f"  site:     {safe(claims.site_id)} (certificate kid {described['kid']})")
        click.echo(
            f"  dose:     {claims.dose_number}, {safe(claims.mp)}, lot {safe(claims.lot)}, {safe(claims.date)}"
        )
        click.echo(f"  signed:   {described['signed_at']}")
        click.echo("  chain:    " + ("issued by the site CA" if ca else "NOT checked (give --site-ca)"))
        click.echo("  citizen:  " + ("the record is for the given ID" if citizen_id else "not checked"))
    if ca is None:
        ctx.exit(EXIT_NEEDS_CHECK)
