"""``vaxcred keys``: the ministry key chain (CSCA, DSCs, trust-list key, site CA and site certificates)."""

from __future__ import annotations

from pathlib import Path

import click

from vaxcred import errors
from vaxcred.cli._common import fail, open_chain, parse_at, passphrase, safe
from vaxcred.keys import KeyChainDir
from vaxcred.text import clip

_FOLDER = click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
_AT = click.option("--at", "at", metavar="ISO-8601", help="Pretend the current time is this (default: now).")
_KEY = click.option(
    "--key",
    type=click.Choice(["ec", "rsa"]),
    default="ec",
    show_default=True,
    help="ec = P-256 (ES256, primary); rsa = RSA-2048 (PS256, secondary).",
)


@click.group()
def keys() -> None:
    """Create and rotate the signing key chain (private keys: encrypted PKCS#8, mode 0600).

    The passphrase comes from $VAXCRED_PASSPHRASE or a hidden prompt, never from an argument.
    """


@keys.command("init")
@_FOLDER
@click.option("--country", default="VN", show_default=True, help="ISO 3166-1 alpha-2 country code.")
@_KEY
@_AT
def init(folder: Path, country: str, key: str, at: str | None) -> None:
    """Create a key chain in FOLDER: CSCA (4 y), first DSC (2 y), trust-list key, site CA."""
    now = parse_at(at)
    try:
        chain = KeyChainDir.init(folder, passphrase(confirm=True), now, country=country, key=key)  # type: ignore[arg-type]
    except errors.VaxcredError as e:
        raise fail(e) from e
    except (ValueError, OverflowError) as e:  # a bad --country / --site-id, or dates past the year 9999
        raise click.UsageError(safe(clip(str(e), 200))) from e
    for cert in chain.dsc_certificates():
        click.echo(
            f"DSC {safe(cert.subject.rfc4514_string())} valid until {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    click.echo(f"key chain created in {safe(folder)}")


@keys.command("dsc")
@_FOLDER
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["v", "t", "r"]),
    default=("v",),
    show_default=True,
    help="Payload types the DSC may sign (extended key usage); repeatable.",
)
@_KEY
@_AT
def dsc(folder: Path, types: tuple[str, ...], key: str, at: str | None) -> None:
    """Rotate: issue a new DSC under the CSCA. Older DSCs stay, so their passports keep verifying."""
    try:
        pair = open_chain(folder).new_dsc(now=parse_at(at), types=types, key=key)  # type: ignore[arg-type]
    except errors.VaxcredError as e:
        raise fail(e) from e
    except (ValueError, OverflowError) as e:  # a bad --country / --site-id, or dates past the year 9999
        raise click.UsageError(safe(clip(str(e), 200))) from e
    click.echo(f"new DSC kid {pair.kid.hex()} valid until {pair.certificate.not_valid_after_utc:%Y-%m-%d}")


@keys.command("site")
@_FOLDER
@click.option("--site-id", required=True, help="Vaccination site code (A-Z, 0-9, '-', '_').")
@click.option("--site-name", required=True, help="Vaccination site name, as on the site's licence.")
@_AT
def site(folder: Path, site_id: str, site_name: str, at: str | None) -> None:
    """Issue a vaccination-site certificate: signs dose records only, never a passport."""
    try:
        pair = open_chain(folder).new_site(site_id=site_id, site_name=site_name, now=parse_at(at))
    except errors.VaxcredError as e:
        raise fail(e) from e
    except (ValueError, OverflowError) as e:  # a bad --country / --site-id, or dates past the year 9999
        raise click.UsageError(safe(clip(str(e), 200))) from e
    click.echo(f"site certificate {safe(site_id)} kid {pair.kid.hex()}")
