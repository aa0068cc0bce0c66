"""``vaxcred issue``: DCC JSON or a person/dose record in, HC1 text (and QR PNG/SVG) out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import click

from vaxcred import errors, qr
from vaxcred.cli._common import fail, open_chain, parse_at, safe, write_private
from vaxcred.issue import IssuancePolicy, Issuer, vaccination_dcc
from vaxcred.model import DCC
from vaxcred.text import clip

#: a DCC or dose record is a few hundred bytes
_MAX_INPUT = 64 * 1024

_RECORD_HELP = """\
INPUT is a JSON file ('-' for stdin) holding either a DCC payload (with "ver", "nam", "dob", "v") or a
person/dose record:

\b
  {"name": "Nguyễn Văn Đức", "dob": "1990-05-17", "vaccine": "Comirnaty",
   "dose": 2, "doses_total": 2, "date": "2021-09-12"}

optional record fields: "country" (VN), "issuer" (Ministry of Health of Viet Nam), "uvci" (random).
"""


def _load_dcc(document: Any) -> DCC:
    if not isinstance(document, dict):
        raise click.UsageError("INPUT must be a JSON object")
    if "nam" in document:
        return DCC.from_json(document)
    try:
        return vaccination_dcc(
            name=document["name"],
            dob=str(document["dob"]),
            vaccine=str(document["vaccine"]),
            dose=int(document["dose"]),
            doses_total=int(document["doses_total"]),
            date=str(document["date"]),
            country=str(document.get("country", "VN")),
            certificate_issuer=str(document.get("issuer", "Ministry of Health of Viet Nam")),
            uvci=document.get("uvci"),
        )
    except KeyError as e:
        raise click.UsageError(f"the record lacks the field {safe(clip(e.args[0]))}") from e
    except (TypeError, ValueError, OverflowError) as e:
        raise click.UsageError(f"bad record field: {safe(clip(str(e), 120))}") from e


@click.command(epilog=_RECORD_HELP)
@click.argument("input_file", metavar="INPUT", type=click.File("rb"))
@click.option(
    "--keys",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Key-chain folder (from `vaxcred keys init`).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HC1 text here (mode 0600: the passport is a bearer credential).",
)
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code as PNG (0600)."
)
@click.option(
    "--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code as SVG (0600)."
)
@click.option(
    "--ecc",
    type=click.Choice(["L", "M", "Q", "H"]),
    default="Q",
    show_default=True,
    help="QR error-correction level.",
)
@click.option(
    "--validity-months",
    type=click.IntRange(1, 120),
    default=12,
    show_default=True,
    help="Passport validity (Decision 5772/QĐ-BYT: 12 months); never past the DSC's notAfter.",
)
@click.option(
    "--clamp-to-dsc", is_flag=True, help="Shorten validity to the DSC's notAfter instead of refusing."
)
@click.option("--at", "at", metavar="ISO-8601", help="Signing time (default: now).")
def issue(
    input_file: Any,
    folder: Path,
    out: Path | None,
    png: Path | None,
    svg: Path | None,
    ecc: str,
    validity_months: int,
    clamp_to_dsc: bool,
    at: str | None,
) -> None:
    """Sign a vaccination certificate with the newest usable DSC and print its HC1 text."""
    raw = input_file.read(_MAX_INPUT + 1)
    if len(raw) > _MAX_INPUT:
        raise click.UsageError(f"INPUT is larger than {_MAX_INPUT // 1024} KiB")
    try:
        document = json.loads(raw)
    except (
        ValueError,
        RecursionError,
    ) as e:  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        raise click.UsageError(f"INPUT is not JSON: {safe(clip(str(e), 120))}") from e
    now = parse_at(at)
    try:
        dcc = _load_dcc(document)
        signer = open_chain(folder).load_dsc_signer(now=now)
        policy = IssuancePolicy(validity_months=validity_months, clamp_to_dsc=clamp_to_dsc)
        passport = Issuer(signer, policy=policy).issue(dcc, now=now)
    except errors.VaxcredError as e:
        raise fail(e) from e
    # the passport is a bearer credential, as text and as a QR code: files readable by their owner only
    if out:
        write_private(out, (passport.hc1 + "\n").encode("ascii"), option="--out")
    if png:
        write_private(png, qr.render_png(passport.hc1, ecc=cast(qr.EccLevel, ecc)), option="--png")
    if svg:
        write_private(svg, qr.render_svg(passport.hc1, ecc=cast(qr.EccLevel, ecc)), option="--svg")
    click.echo(passport.hc1)
    click.echo(
        f"kid {passport.kid.hex()}  iat {passport.iat:%Y-%m-%dT%H:%M:%SZ}  exp {passport.exp:%Y-%m-%dT%H:%M:%SZ}",
        err=True,
    )
