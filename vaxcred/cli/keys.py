"""``vaxcred keys``: the ministry key chain (CSCA, DSCs, trust-list key, site CA and site certificates), in
encrypted key files or on a PKCS#11 token, its lifecycle (rotate, retire, withdraw, revoke, CRL) and its
key-operations log."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
from collections.abc import Iterator
from pathlib import Path

import click

from vaxcred import errors
from vaxcred.cli._common import fail, open_chain, parse_at, passphrase, safe, token_pin
from vaxcred.keys import KeyChainDir, KeyType, TokenConfig
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
_OPERATOR = click.option(
    "--operator",
    metavar="NAME",
    help="Who runs the operation, for the key-operations log (default: the login name).",
)
_REASON = click.option("--reason", metavar="TEXT", help="Why, for the key-operations log.")


def _operator(given: str | None) -> str | None:
    """``--operator``, else the login name (``None`` where the system has none, e.g. a bare container)."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _chain(folder: Path, operator: str | None) -> KeyChainDir:
    return dataclasses.replace(open_chain(folder), operator=_operator(operator))


def _key_type(key: str) -> KeyType:
    return "rsa" if key == "rsa" else "ec"


def _kid(value: str) -> bytes:
    try:
        kid = bytes.fromhex(value)
    except ValueError:
        kid = b""
    if len(kid) != 8:
        raise click.BadParameter("a kid is 16 hex digits (see `vaxcred keys list`)", param_hint="KID")
    return kid


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A typed library error is a refusal with its code (exit 1); a bad value or a date past the year 9999
    (ValueError, OverflowError from the builders) is a usage error (exit 3), never a traceback."""
    try:
        yield
    except errors.VaxcredError as e:
        raise fail(e) from e
    except (ValueError, OverflowError) as e:
        raise click.UsageError(safe(clip(str(e), 200))) from e


@click.group()
def keys() -> None:
    """Create and run the signing key chain: keys in encrypted PKCS#8 files (mode 0600) or on a PKCS#11 token.

    Secrets never come from an argument: the key passphrase from $VAXCRED_PASSPHRASE or a hidden prompt, the
    token PIN from $VAXCRED_PKCS11_PIN or a hidden prompt. Every operation is appended to the chain's
    hash-chained key-operations log (`vaxcred keys audit`).
    """


@keys.command("init")
@_FOLDER
@click.option("--country", default="VN", show_default=True, help="ISO 3166-1 alpha-2 country code.")
@_KEY
@click.option(
    "--pkcs11",
    "module",
    metavar="MODULE",
    type=click.Path(dir_okay=False, exists=True),
    help="PKCS#11 module (shared library) of the HSM: generate every key inside the token, write no key file.",
)
@click.option("--token", "token_label", metavar="LABEL", help="Label of the token (with --pkcs11).")
@_OPERATOR
@_AT
def init(
    folder: Path,
    country: str,
    key: str,
    module: str | None,
    token_label: str | None,
    operator: str | None,
    at: str | None,
) -> None:
    """Create a key chain in FOLDER: CSCA (4 y), first DSC (2 y), trust-list key, site CA.

    With key files the passphrase protects the CSCA key, so it must be strong: at least 12 characters, and
    either 16 or more or three of lower case / upper case / digits / other.
    """
    if (module is None) != (token_label is None):
        raise click.UsageError("--pkcs11 and --token go together")
    now = parse_at(at)
    operator = _operator(operator)
    with _refusals():
        if module is not None and token_label is not None:
            token = TokenConfig(module=module, token_label=token_label)
            chain = KeyChainDir.init(
                folder,
                b"",
                now,
                country=country,
                key=_key_type(key),
                token=token,
                pin=token_pin(),
                operator=operator,
            )
        else:
            chain = KeyChainDir.init(
                folder, passphrase(confirm=True), now, country=country, key=_key_type(key), operator=operator
            )
        with chain:
            certificates = chain.dsc_certificates()
    for cert in certificates:
        click.echo(
            f"DSC {safe(cert.subject.rfc4514_string())} valid until {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    where = f"token {safe(token_label)!r}" if token_label else "encrypted key files"
    click.echo(f"key chain created in {safe(folder)} (private keys: {where})")


@keys.command("dsc")
@_FOLDER
@click.option(
    "--type",
    "payload_type",
    type=click.Choice(["v", "t", "r"]),
    default="v",
    show_default=True,
    help="The one payload type the DSC may sign (extended key usage): one purpose per key.",
)
@_KEY
@_OPERATOR
@_AT
def dsc(folder: Path, payload_type: str, key: str, operator: str | None, at: str | None) -> None:
    """Issue a new DSC under the CSCA. Older DSCs stay, so their passports keep verifying."""
    with _refusals(), _chain(folder, operator) as chain:
        pair = chain.new_dsc(now=parse_at(at), types=(payload_type,), key=_key_type(key))
    click.echo(f"new DSC kid {pair.kid.hex()} valid until {pair.certificate.not_valid_after_utc:%Y-%m-%d}")


@keys.command("site")
@_FOLDER
@click.option("--site-id", required=True, help="Vaccination site code (A-Z, 0-9, '-', '_').")
@click.option("--site-name", required=True, help="Vaccination site name, as on the site's licence.")
@_OPERATOR
@_AT
def site(folder: Path, site_id: str, site_name: str, operator: str | None, at: str | None) -> None:
    """Issue a vaccination-site certificate: signs dose records only, never a passport."""
    with _refusals(), _chain(folder, operator) as chain:
        pair = chain.new_site(site_id=site_id, site_name=site_name, now=parse_at(at))
    click.echo(f"site certificate {safe(site_id)} kid {pair.kid.hex()}")


@keys.command("document-signer")
@_FOLDER
@_OPERATOR
@_AT
def document_signer(folder: Path, operator: str | None, at: str | None) -> None:
    """Issue the document signer under the CSCA (EKU id-kp-documentSigning only): it signs the printable
    certificate PDFs (`vaxcred certificate-pdf --keys`), never a passport. On the chain's token if it has one."""
    with _refusals(), _chain(folder, operator) as chain:
        pair = chain.new_document_signer(now=parse_at(at))
    click.echo(
        f"document signer kid {pair.kid.hex()} valid until {pair.certificate.not_valid_after_utc:%Y-%m-%d}"
    )


@keys.command("rotate")
@_FOLDER
@click.option(
    "--margin-days",
    type=click.IntRange(0, 180),
    default=30,
    show_default=True,
    help="Make a new DSC when no DSC may still sign this many days from now.",
)
@_KEY
@_OPERATOR
@_AT
def rotate(folder: Path, margin_days: int, key: str, operator: str | None, at: str | None) -> None:
    """Rotate the vaccination DSC before its private-key usage period ends (run it daily)."""
    from datetime import timedelta

    with _refusals(), _chain(folder, operator) as chain:
        pair = chain.rotate(now=parse_at(at), margin=timedelta(days=margin_days), key=_key_type(key))
    if pair is None:
        click.echo(f"no rotation needed: a DSC may still sign in {margin_days} days")
    else:
        click.echo(f"rotated: new DSC kid {pair.kid.hex()}")


@keys.command("list")
@_FOLDER
def list_(folder: Path) -> None:
    """List the DSCs with their state (active, retired, withdrawn) and validity."""
    with _refusals(), _chain(folder, None) as chain:
        states = chain.dsc_states()
        certificates = chain.dsc_certificates()
    from vaxcred.keys.lifecycle import kid_of

    for cert in certificates:
        kid = kid_of(cert).hex()
        click.echo(
            f"DSC {kid} {states[kid]:<9} {cert.not_valid_before_utc:%Y-%m-%d} .. "
            f"{cert.not_valid_after_utc:%Y-%m-%d} {safe(cert.subject.rfc4514_string())}"
        )


@keys.command("retire")
@_FOLDER
@click.argument("kid")
@_REASON
@_OPERATOR
@_AT
def retire(folder: Path, kid: str, reason: str | None, operator: str | None, at: str | None) -> None:
    """Stop signing with DSC KID; it stays in trust lists while its passports are valid."""
    with _refusals(), _chain(folder, operator) as chain:
        chain.retire_dsc(_kid(kid), now=parse_at(at), reason=reason)
    click.echo(f"DSC {kid} retired")


@keys.command("withdraw")
@_FOLDER
@click.argument("kid")
@_REASON
@_OPERATOR
@_AT
def withdraw(folder: Path, kid: str, reason: str | None, operator: str | None, at: str | None) -> None:
    """Withdraw DSC KID (compromise): it leaves the next trust list; re-issue its passports."""
    with _refusals(), _chain(folder, operator) as chain:
        chain.withdraw_dsc(_kid(kid), now=parse_at(at), reason=reason)
    click.echo(f"DSC {kid} withdrawn: export and publish a new trust list now")


@keys.command("revoke-site")
@_FOLDER
@click.option("--site-id", required=True, help="The site whose certificate is revoked.")
@click.option(
    "--reason",
    type=click.Choice(["key_compromise", "affiliation_changed", "superseded", "cessation_of_operation"]),
    default="key_compromise",
    show_default=True,
    help="RFC 5280 reason, written into the CRL.",
)
@_OPERATOR
@_AT
def revoke_site(folder: Path, site_id: str, reason: str, operator: str | None, at: str | None) -> None:
    """Revoke a site certificate and publish the site CA's CRL (FOLDER/site-ca.crl).

    Issuance refuses dose records the certificate signed from the revocation time on.
    """
    with _refusals(), _chain(folder, operator) as chain:
        crl = chain.revoke_site(site_id, now=parse_at(at), reason=reason)
    click.echo(f"site {safe(site_id)} revoked; CRL with {len(list(crl))} entries in {folder / 'site-ca.crl'}")


@keys.command("crl")
@_FOLDER
@_OPERATOR
@_AT
def crl(folder: Path, operator: str | None, at: str | None) -> None:
    """Re-sign and publish the site CA's CRL (before its 7-day nextUpdate passes)."""
    with _refusals(), _chain(folder, operator) as chain:
        published = chain.publish_site_crl(now=parse_at(at))
    click.echo(f"CRL with {len(list(published))} entries, next update {published.next_update_utc:%Y-%m-%d}")


@keys.command("audit")
@_FOLDER
@click.option("--expect-head", metavar="HEX", help="The head recorded earlier (e.g. in ceremony minutes).")
def audit(folder: Path, expect_head: str | None) -> None:
    """Check the key-operations log's hash chain and print every operation and the head."""
    chain = KeyChainDir(folder=folder)
    with _refusals():
        operations = chain.operations()
        head = chain.log.head()
    for op in operations:
        click.echo(
            f"{op.time:%Y-%m-%dT%H:%M:%SZ} {op.operation:<8} {op.purpose:<10} kid {op.kid or '-'} "
            f"serial {op.serial or '-'} by {safe(op.operator or '-')}"
            + (f" ({safe(op.reason)})" if op.reason else "")
        )
    with _refusals():
        missing = chain.unlogged_certificates()
    if missing:
        raise fail(
            errors.KeyStoreError(
                f"certificates whose generation the log does not record (lines cut or the log replaced): "
                f"{safe(', '.join(missing))}",
                code="keys.audit_broken",
            )
        )
    click.echo(f"{len(operations)} operations, chain intact; head {head}")
    if expect_head is not None and expect_head.lower() != head:
        raise fail(
            errors.KeyStoreError(
                "the head differs from the recorded one: lines were cut off or changed",
                code="keys.audit_broken",
            )
        )
