"""``vaxcred trustlist``: export the ministry's CSCA and DSCs; import and check a trust list."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred import errors
from vaxcred.cli._common import fail, open_chain, parse_at, safe
from vaxcred.keys import KeyChainDir
from vaxcred.trust import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    export_gateway_trust_list,
    load_gateway_trust_list,
    load_signed_trust_list,
    sign_trust_list,
)
from vaxcred.x509util import load_certificate_bytes, parse_dsc

_ENV = click.option(
    "--environment",
    "env",
    type=click.Choice(["PROD", "ACC", "TST"]),
    default="PROD",
    show_default=True,
    help="Trust environment of the list.",
)


def chain_store(chain: KeyChainDir, environment: Environment, mode: TrustMode) -> TrustStore:
    """The folder's CSCA and every DSC as a trust store."""
    csca = chain.load("csca").certificate
    country = parse_dsc(csca.public_bytes(Encoding.DER)).country or "VN"
    dscs = [
        TrustedDsc(info=parse_dsc(c.public_bytes(Encoding.DER)), country=country, source="keychain")
        for c in chain.published_dsc_certificates()  # withdrawn DSCs leave the list (vaxcred keys withdraw)
    ]
    return TrustStore.build(environment=environment, mode=mode, dscs=dscs, cscas=[(country, csca)])


@click.group()
def trustlist() -> None:
    """Trust lists: the EU gateway JSON shape, or a national list signed by the trust-list key."""


@trustlist.command("export")
@click.option(
    "--keys",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Key-chain folder.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gateway", "signed"]),
    default="signed",
    show_default=True,
    help="gateway = EU gateway JSON (unsigned); signed = COSE_Sign1 by the trust-list key.",
)
@click.option(
    "--sequence",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Signed lists: monotonic sequence number (verifiers refuse rollbacks).",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output file.")
@_ENV
@click.option("--at", "at", metavar="ISO-8601", help="Issue time (default: now).")
def export(folder: Path, fmt: str, sequence: int, out: Path, env: str, at: str | None) -> None:
    """Export the CSCA and all DSCs of a key chain."""
    now = parse_at(at)
    try:
        chain = open_chain(folder)
        if fmt == "gateway":
            store = chain_store(chain, Environment[env], TrustMode.GATEWAY)
            withdrawn = [
                (parse_dsc(der).country or "VN", der)
                for der in (c.public_bytes(Encoding.DER) for c in chain.withdrawn_dsc_certificates())
            ]
            out.write_bytes(export_gateway_trust_list(store, now=now, withdrawn=withdrawn))
        else:
            store = chain_store(chain, Environment[env], TrustMode.SIGNED_LIST)
            signer = chain.load("trustlist").signer()
            out.write_bytes(sign_trust_list(store, signer=signer, issued_at=now, sequence=sequence))
    except errors.VaxcredError as e:
        raise fail(e) from e
    click.echo(
        f"wrote {fmt} trust list ({len(store.all_dscs())} DSC, {len(store.all_cscas())} CSCA) to {out}"
    )


@trustlist.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Signed lists: the pinned CSCA (or trust-list) certificate.",
)
@_ENV
@click.option("--at", "at", metavar="ISO-8601", help="Check as of this time (default: now).")
def import_(file: Path, anchor: Path | None, env: str, at: str | None) -> None:
    """Load and check a trust list; report what it holds and every rejected entry."""
    data = file.read_bytes()
    environment = Environment[env]
    try:
        if data.lstrip()[:1] == b"[":
            loaded = load_gateway_trust_list(data, environment=environment)
            store = loaded.store
            for rejected in loaded.rejected:
                click.echo(f"rejected entry {rejected.index}: {safe(rejected.reason)}")
        else:
            if anchor is None:
                raise click.UsageError("a signed trust list needs --anchor")
            cert = x509.load_der_x509_certificate(load_certificate_bytes(anchor.read_bytes()))
            store = load_signed_trust_list(data, anchor=cert, environment=environment, now=parse_at(at))
    except errors.VaxcredError as e:
        raise fail(e) from e
    countries = sorted({d.country for d in store.all_dscs()})
    click.echo(
        f"{environment.value} trust list: {len(store.all_dscs())} DSC, {len(store.all_cscas())} CSCA, "
        f"countries {', '.join(countries) or '-'}"
    )
