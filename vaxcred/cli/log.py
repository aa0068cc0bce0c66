"""``vaxcred log``: the tamper-evident issuance log — the log key, signed tree heads, audit, proofs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vaxcred.cli._common import EXIT_INVALID, RefusedError, fail, open_chain, parse_at, safe
from vaxcred.cli._files import read_bounded
from vaxcred.cli._pipeline import at_option, db_option, keys_option, open_db, storage_errors
from vaxcred.errors import VaxcredError
from vaxcred.keys import load_certificate
from vaxcred.pipeline import log as issuance_log

#: the log signer's files in the key-chain folder
LOG_SIGNER_STEM = "log-signer"
#: a tree head file is a small COSE_Sign1 (the audit refuses heads over 4 KiB as malformed)
_MAX_HEAD_FILE = 4096


@click.group("log")
def log_group() -> None:
    """The tamper-evident issuance log: every site-signed dose record, passport, revocation and withdrawal of a
    dose record is appended (RFC 9162 Merkle tree) in the transaction that stores it.

    \b
    vaxcred log init-key --keys KEYS          the log signer (EKU log signing only) under the CSCA
    vaxcred log sign-head --keys KEYS         sign the log as it stands (publish the head outside the ministry)
    vaxcred log audit --log-cert KEYS/log-signer.pem    exit 0 intact, 1 with each finding
    vaxcred log prove --uvci URN:UVCI:...     a passport's inclusion proof (JSON)
    """


@log_group.command("init-key")
@keys_option
@at_option("Start of the certificate's validity")
def init_key(folder: Path, at: str | None) -> None:
    """Create the log signer (log-signer.pem / .key, encrypted like every key of the chain)."""
    chain = open_chain(folder)
    if (folder / f"{LOG_SIGNER_STEM}.pem").exists():
        raise RefusedError(f"a log signer already exists in {safe(folder)}")
    try:  # on the chain's token if it has one; logged in the key-operations log (purpose "log")
        pair = chain.new_log_signer(now=parse_at(at), stem=LOG_SIGNER_STEM)
    except VaxcredError as e:
        raise fail(e) from e
    except (ValueError, OverflowError) as e:  # a validity running past the year 9999
        raise click.UsageError(f"cannot make the log signer at that time: {safe(str(e))}") from e
    click.echo(f"log signer {pair.kid.hex()} written to {safe(folder)}/{LOG_SIGNER_STEM}.pem")


@log_group.command("sign-head")
@keys_option
@db_option
@at_option("Signing time")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the head (COSE) here."
)
def sign_head(folder: Path, db_url: str, at: str | None, out: Path | None) -> None:
    """Sign a tree head over the whole log and store it; prints its size and root."""
    chain = open_chain(folder)
    try:
        signer = chain.load(LOG_SIGNER_STEM).signer()
    except (OSError, VaxcredError) as e:
        raise click.UsageError(f"no usable log signer in {folder} (run `vaxcred log init-key`): {e}") from e
    db = open_db(db_url)
    try:
        with storage_errors(), db.begin() as conn:
            head = issuance_log.sign_tree_head(conn, signer, now=parse_at(at))
    except VaxcredError as e:
        raise fail(e) from e
    finally:
        db.dispose()
    if out is not None:
        out.write_bytes(head.cose)
    click.echo(
        f"tree head: size {head.tree_size}, root {head.root_hash.hex()}, signed {head.signed_at:%Y-%m-%dT%H:%M:%SZ}"
    )


@log_group.command("audit")
@db_option
@click.option(
    "--log-cert",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The log signer's certificate (KEYS/log-signer.pem): verifies the tree heads.",
)
@click.option(
    "--head",
    "heads",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A tree head kept from earlier (`log sign-head --out`), repeatable: the log must still match it and "
    "still store it (a head deleted, or a rewrite re-signed, shows only against heads kept elsewhere).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def audit(ctx: click.Context, db_url: str, log_cert: Path, heads: tuple[Path, ...], as_json: bool) -> None:
    """Check the log end to end against the database and its signed heads; exit 0 intact, 1 with each finding."""
    try:
        certificate = load_certificate(log_cert)
    except (OSError, VaxcredError, ValueError) as e:
        raise click.UsageError(f"cannot read the log certificate {log_cert}: {e}") from e
    published = [read_bounded(path, _MAX_HEAD_FILE, "--head") for path in heads]
    db = open_db(db_url)
    try:
        with storage_errors(), db.connect() as conn:
            report = issuance_log.audit_log(conn, log_certificate=certificate, published=published)
    finally:
        db.dispose()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "intact": report.intact,
                    "entries": report.entries,
                    "heads": report.heads,
                    "uncovered": report.uncovered,
                    "findings": [{"code": f.code, "message": f.message} for f in report.findings],
                }
            )
        )
    else:
        for finding in report.findings:
            click.echo(f"[{finding.code}] {safe(finding.message)}")
        state = "intact" if report.intact else f"{len(report.findings)} finding(s)"
        click.echo(
            f"log {state}: {report.entries} entries, {report.heads} signed heads, "
            f"{report.uncovered} entries not yet under a signed head"
        )
    ctx.exit(0 if report.intact else EXIT_INVALID)


@log_group.command("prove")
@db_option
@click.option("--uvci", required=True, help="The passport's UVCI.")
def prove(db_url: str, uvci: str) -> None:
    """A passport's inclusion proof as JSON: its entry, leaf index, audit path and the covering tree head.

    A verifier requires it with `vaxcred verify HC1 ... --log-proof PROOF.json --log-cert LOG.pem`.
    """
    db = open_db(db_url)
    try:
        with storage_errors(), db.connect() as conn:
            proof = issuance_log.passport_proof(conn, uvci)
    finally:
        db.dispose()
    if proof is None:
        raise RefusedError(
            "no such passport in the log, or no signed tree head covers it yet (run `vaxcred log sign-head`)"
        )
    click.echo(json.dumps(proof.to_json()))


@log_group.command("anomalies")
@db_option
@click.option(
    "--opening", default="7-19", show_default=True, metavar="START-END", help="Local opening hours (UTC+7)."
)
@click.option(
    "--top", type=click.IntRange(1, 1000), default=10, show_default=True, help="Busiest site-hours shown."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def anomalies(ctx: click.Context, db_url: str, opening: str, top: int, as_json: bool) -> None:
    """Signs of insider abuse: busiest site-hours, signing outside opening hours, sites signing far more records
    than they recorded, passports without a verified registry result (must be 0; exit 1 otherwise)."""
    try:
        start, end = (int(part) for part in opening.split("-", 1))
    except ValueError as e:
        raise click.BadParameter("START-END in whole hours, e.g. 7-19", param_hint="--opening") from e
    db = open_db(db_url)
    try:
        with storage_errors(), db.connect() as conn:
            report = issuance_log.anomaly_report(conn, opening=(start, end), top=top)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--opening") from e
    finally:
        db.dispose()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "busiest_hours": [
                        {"site_id": h.site_id, "hour": h.hour.isoformat(), "signatures": h.signatures}
                        for h in report.busiest_hours
                    ],
                    "outside_hours": [
                        {"site_id": s.site_id, "signatures": s.signatures, "of": s.recorded}
                        for s in report.outside_hours
                    ],
                    "oversigning": [
                        {"site_id": s.site_id, "signatures": s.signatures, "recorded": s.recorded}
                        for s in report.oversigning
                    ],
                    "passports_without_verified_registry": report.passports_without_verified_registry,
                },
                ensure_ascii=False,
            )
        )
    else:
        click.echo("busiest site-hours (local time):")
        for h in report.busiest_hours:
            click.echo(f"  {safe(h.site_id):<24} {h.hour:%Y-%m-%d %H:00}  {h.signatures:>8}")
        click.echo(f"signing outside {start:02d}:00-{end:02d}:00:")
        for s in report.outside_hours:
            click.echo(f"  {safe(s.site_id):<24} {s.signatures:>8} of {s.recorded}")
        click.echo("sites signing far more records than they recorded:")
        for s in report.oversigning:
            click.echo(f"  {safe(s.site_id):<24} {s.signatures:>8} signatures, {s.recorded} doses recorded")
        click.echo(
            f"passports without a verified registry result: {report.passports_without_verified_registry}"
        )
    ctx.exit(0 if report.passports_without_verified_registry == 0 else EXIT_INVALID)
