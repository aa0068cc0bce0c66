"""``vaxcred sync``: keep a verifier's trust list, rules, value sets and revocations current (docs/sync.md).

``vaxcred sync URL --into DIR --anchor CERT`` pulls; ``vaxcred sync publish`` writes the folder a ministry
serves; ``vaxcred sync show DIR`` prints what a synced folder holds and how old it is.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from cryptography import x509

from vaxcred import errors
from vaxcred.cli._common import EXIT_INVALID, fail, open_chain, parse_at, safe
from vaxcred.revocation import RevocationBatch, read_batches
from vaxcred.sync import (
    DataKind,
    HttpLimits,
    PartOutcome,
    load_folder,
    publish_folder,
    sync_folder,
)
from vaxcred.trust import Environment
from vaxcred.x509util import load_certificate_bytes

_ENV = click.option(
    "--environment",
    "env",
    type=click.Choice(["PROD", "ACC", "TST"]),
    default="PROD",
    show_default=True,
    help="Trust environment; test and production never mix.",
)
_ANCHOR = click.option(
    "--anchor",
    "--trust-key",
    "anchor",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The pinned CSCA (or trust-list) certificate the trust list and index must be signed under.",
)


def load_anchor(path: Path) -> x509.Certificate:
    """The pinned anchor certificate (PEM, DER or Base64 DER)."""
    try:
        return x509.load_der_x509_certificate(load_certificate_bytes(path.read_bytes()))
    except (OSError, ValueError, errors.VaxcredError) as e:
        raise click.BadParameter(f"{path}: not a certificate ({e})", param_hint="--anchor") from e


class _PullByDefault(click.Group):
    """``vaxcred sync URL ...`` means ``vaxcred sync pull URL ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["pull", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_PullByDefault)
def sync() -> None:
    """Download trust list, rules, value sets and revocations (or publish them).

    \b
    vaxcred sync https://ministry.example/vaxcred --into data --anchor csca.pem
    vaxcred sync publish --keys KEYS --out site --trust-list trust.cbor --revocations revocations.json
    vaxcred sync show data --anchor csca.pem
    """


def _describe(outcome: PartOutcome) -> str:
    text = f"{outcome.name}: {outcome.status}"
    if outcome.sequence is not None:
        text += f" (sequence {outcome.sequence})"
    if outcome.files_fetched:
        text += f", {outcome.files_fetched} file(s) fetched"
    if outcome.code:
        text += f" [{outcome.code}] {safe(outcome.message)}"
    return text


@sync.command("pull")
@click.argument("url")
@click.option("--into", required=True, type=click.Path(file_okay=False, path_type=Path), help="Local folder.")
@_ANCHOR
@_ENV
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds per connect or read.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds for a whole response.",
)
@click.option("--at", "at", metavar="ISO-8601", help="Check freshness as of this time (default: now).")
def pull(
    url: str, into: Path, anchor: Path, env: str, timeout: float, deadline: float, at: str | None
) -> None:
    """Bring DIR up to date from URL; the last good copy is kept on any failure (exit 1)."""
    try:
        report = sync_folder(
            url,
            into,
            anchor=load_anchor(anchor),
            environment=Environment[env],
            now=parse_at(at),
            limits=HttpLimits(connect=timeout, read=timeout, deadline=deadline),
        )
    except OSError as e:  # the local folder: permissions, a full disk (the last good copy is intact)
        raise click.ClickException(f"cannot write to {into}: {e.strerror or e}") from e
    for outcome in (report.trust, report.index):
        click.echo(_describe(outcome), err=outcome.status == "failed")
    if not report.ok:
        click.get_current_context().exit(EXIT_INVALID)


@sync.command("show")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_ANCHOR
@_ENV
@click.option("--at", "at", metavar="ISO-8601", help="Ages as of this time (default: now).")
def show(folder: Path, anchor: Path, env: str, at: str | None) -> None:
    """What a synced folder holds, how old each kind is, and any file left out (exit 1 if something is stale
    or left out)."""
    now = parse_at(at)
    data = load_folder(folder, anchor=load_anchor(anchor), environment=Environment[env], now=now)
    counts = {
        DataKind.TRUST: f"{len(data.trust.all_dscs())} DSC" if data.trust else "missing",
        DataKind.RULES: f"{len(data.rules.rules) if data.rules else 0} rule(s)",
        DataKind.VALUE_SETS: f"{len(data.value_set_files)} file(s)",
        DataKind.REVOCATION: f"{len(data.revocation)} hash(es)" if data.revocation is not None else "missing",
    }
    for kind in DataKind:
        issued = data.issued_at(kind)
        age = f"issued {issued.isoformat()}" if issued else "no data"
        fresh = "fresh" if data.is_fresh(kind, now) else "STALE"
        click.echo(
            f"{kind.value:<11} {counts[kind]:<16} {age}  {fresh} (max age {data.policy.max_age(kind)})"
        )
    for problem in data.problems:
        where = f" batch {problem.batch}" if problem.batch is not None else ""
        click.echo(
            f"left out: {safe(problem.path)}{where} [{problem.code}] {safe(problem.message)}", err=True
        )
    if data.stale(now) or data.problems:
        click.get_current_context().exit(EXIT_INVALID)


def _batches(paths: tuple[Path, ...], now: datetime) -> list[RevocationBatch]:
    """Every unexpired batch of the files; any bad file or batch is a usage error (publish nothing bad)."""
    batches: list[RevocationBatch] = []
    for path in paths:
        try:
            with path.open("rb") as fh:
                for position, item in enumerate(read_batches(fh)):
                    if not isinstance(item, RevocationBatch):
                        raise click.BadParameter(
                            f"{path} batch {position}: [{item.code}] {safe(item.message)}",
                            param_hint="--revocations",
                        )
                    if item.expires > now:
                        batches.append(item)
        except errors.TrustStoreError as e:
            raise click.BadParameter(
                f"{path}: [{e.code}] {safe(e.message)}", param_hint="--revocations"
            ) from e
    return batches


@sync.command("publish")
@click.option(
    "--keys",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Key-chain folder (its trust-list key signs the index).",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The folder to serve."
)
@click.option(
    "--trust-list",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The signed national trust list (`vaxcred trustlist export`).",
)
@click.option(
    "--revocations",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Revocation batches (`vaxcred revocations export`); repeatable.",
)
@click.option(
    "--rules",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A rule-set file; repeatable.",
)
@click.option(
    "--value-sets",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A value-set file; repeatable.",
)
@click.option("--sequence", required=True, type=click.IntRange(0), help="Grows with every publication.")
@_ENV
@click.option("--at", "at", metavar="ISO-8601", help="Issue time (default: now).")
def publish(
    folder: Path,
    out: Path,
    trust_list: Path,
    revocations: tuple[Path, ...],
    rules: tuple[Path, ...],
    value_sets: tuple[Path, ...],
    sequence: int,
    env: str,
    at: str | None,
) -> None:
    """Write OUT for static serving: trust.cbor, files/<sha256>, index.cbor signed by the trust-list key."""
    now = parse_at(at)
    batches = _batches(revocations, now)
    try:
        signer = open_chain(folder).load("trustlist").signer()
        index = publish_folder(
            out,
            trust_list=trust_list.read_bytes(),
            signer=signer,
            environment=Environment[env],
            issued_at=now,
            sequence=sequence,
            rules=[(f"rules/{p.name}", p.read_bytes()) for p in rules],
            value_sets=[(f"valuesets/{p.name}", p.read_bytes()) for p in value_sets],
            revocation_batches=batches,
        )
    except errors.VaxcredError as e:
        raise fail(e) from e
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    click.echo(f"published sequence {index.sequence}: {len(index.files)} file(s) in {out}")
