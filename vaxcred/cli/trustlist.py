"""``vaxcred trustlist``: export the ministry's CSCA and DSCs; import and check a trust list."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred import errors
from vaxcred.cli._common import fail, open_chain, parse_at, safe
from vaxcred.cli._trust import UNSAFE_FLAG, load_trust_list
from vaxcred.keys import KeyChainDir
from vaxcred.trust import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    export_gateway_trust_list,
    format_age,
    sign_trust_list,
)
from vaxcred.x509util import parse_dsc

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
    help="Pinned anchor: the CSCA (or trust-list certificate) of a signed list; for gateway JSON the "
    "gateway trust anchor that signed the entries.",
)
@click.option(
    UNSAFE_FLAG,
    "unsafe_unauthenticated",
    is_flag=True,
    help="UNSAFE: read gateway JSON without --anchor, its signatures NOT checked.",
)
@click.option(
    "--trust-state",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Signed lists: check against and update this rollback state (default: leave state alone).",
)
@_ENV
@click.option("--at", "at", metavar="ISO-8601", help="Check as of this time (default: now).")
def import_(
    file: Path,
    anchor: Path | None,
    unsafe_unauthenticated: bool,
    trust_state: Path | None,
    env: str,
    at: str | None,
) -> None:
    """Load and check a trust list; report what it holds, how it is authenticated, every rejected entry."""
    environment = Environment[env]
    now = parse_at(at)
    loaded = load_trust_list(
        file,
        anchor=anchor,
        unsafe_unauthenticated=unsafe_unauthenticated,
        environment=environment,
        now=now,
        state_path=trust_state,
    )
    store = loaded.store
    for rejected in loaded.rejected:
        click.echo(f"rejected entry {rejected.index}: {safe(rejected.reason)}")
    countries = sorted({d.country for d in store.all_dscs()})
    click.echo(
        f"{environment.value} trust list ({store.mode.value}): {len(store.all_dscs())} DSC, "
        f"{len(store.all_cscas())} CSCA, countries {', '.join(countries) or '-'}"
    )
    if store.issued_at is not None:
        age = format_age(now - store.issued_at)
        click.echo(f"issued {store.issued_at.isoformat()} ({age} old), sequence {store.sequence}")
