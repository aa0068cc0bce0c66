"""``vaxcred verify``: check a passport the way a border app does. A stable contract for outside tools."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vaxcred import errors
from vaxcred.cli._common import EXIT_INVALID, EXIT_NEEDS_CHECK, EXIT_VALID, parse_at, safe
from vaxcred.result import Status, VerificationResult
from vaxcred.revocation import RevocationList
from vaxcred.trust import Environment, TrustStore, load_gateway_trust_list, load_signed_trust_list
from vaxcred.verify import verify as verify_passport
from vaxcred.x509util import load_certificate_bytes

_EXIT = {Status.VALID: EXIT_VALID, Status.INVALID: EXIT_INVALID, Status.NEEDS_CHECK: EXIT_NEEDS_CHECK}
_MAX_FILE = 10 * 1024 * 1024


def _read_input(value: str) -> str | bytes:
    """INPUT: an HC1 string, a file holding one, or an image file ('-' reads stdin)."""
    if value == "-":
        return sys.stdin.buffer.read(_MAX_FILE + 1)
    if value.lstrip().startswith("HC1:"):
        return value
    path = Path(value)
    try:
        is_file = len(value) < 4096 and path.is_file()
    except (OSError, ValueError):  # names too long for the file system, NUL bytes, ...
        is_file = False
    if not is_file:
        # not a file: the text itself is the passport; verify reports what is wrong with it (prefix step),
        # as for any other bad QR content, with exit code 1 rather than a usage error
        return value
    try:
        with path.open("rb") as fh:
            return fh.read(_MAX_FILE + 1)
    except OSError as e:
        raise click.BadParameter(f"cannot read {value}: {e.strerror}", param_hint="INPUT") from e


def _looks_like_image(data: bytes) -> bool:
    from vaxcred import qr  # local import: Pillow and zxing-cpp only when needed

    return qr.is_image(data)


def _verify_image(
    data: bytes, trust: TrustStore, now: datetime, deadline: float, **options: Any
) -> VerificationResult:
    """Decode the image in a child process (SECURITY.md #17): a parser crash or a pathological image
    costs at most ``deadline`` seconds and never this process."""
    from vaxcred.qr.isolated import IsolatedImageDecoder

    with IsolatedImageDecoder(deadline=deadline) as decoder:
        # start-up (~0.15 s: Pillow and zxing imported, warmed) is paid here, outside the deadline; if the
        # child cannot start, decode() tries again and verify() reports image.decoder_crashed
        with contextlib.suppress(errors.ImageError):
            decoder.start()
        return verify_passport(data, trust, now=now, image_decoder=decoder.decode, **options)


def _load_trust(
    dscs: tuple[str, ...], trust_list: Path | None, anchor: Path | None, env: str, at: Any
) -> TrustStore:
    environment = Environment[env]
    if trust_list is not None:
        data = trust_list.read_bytes()
        try:
            if data.lstrip()[:1] == b"[":
                return load_gateway_trust_list(data, environment=environment).store
            if anchor is None:
                raise click.UsageError("a signed trust list needs --anchor (the CSCA certificate)")
            from cryptography import x509

            anchor_cert = x509.load_der_x509_certificate(load_certificate_bytes(anchor.read_bytes()))
            return load_signed_trust_list(data, anchor=anchor_cert, environment=environment, now=at)
        except errors.VaxcredError as e:
            raise click.UsageError(f"cannot load the trust list: [{e.code}] {e.message}") from e
    if not dscs:
        raise click.UsageError("give --trust-list FILE or at least one --dsc CERT")
    ders = []
    for item in dscs:
        try:
            ders.append(load_certificate_bytes(Path(item).read_bytes()))
        except OSError as e:
            raise click.BadParameter(f"cannot read {item}: {e.strerror}", param_hint="--dsc") from e
        except errors.VaxcredError as e:
            raise click.BadParameter(f"{item}: {e.message}", param_hint="--dsc") from e
    try:
        return TrustStore.from_dsc_certificates(ders, environment=environment)
    except errors.VaxcredError as e:
        raise click.BadParameter(e.message, param_hint="--dsc") from e


def _load_synced(
    folder: Path, anchor: Path | None, env: str, at: datetime
) -> tuple[TrustStore, dict[str, Any]]:
    """--data: the trust list of a folder kept by `vaxcred sync` and its verify() options (revocation, rules
    and their age), re-verified."""
    from vaxcred.cli.sync import load_anchor
    from vaxcred.sync import load_folder

    if anchor is None:
        raise click.UsageError("--data needs --anchor (the pinned CSCA certificate)")
    data = load_folder(folder, anchor=load_anchor(anchor), environment=Environment[env], now=at)
    for problem in data.problems:
        click.echo(
            f"{folder}: left out {safe(problem.path)} [{problem.code}] {safe(problem.message)}", err=True
        )
    if data.trust is None or data.index is None:
        raise click.UsageError(f"no usable trust list and index in {folder} (run `vaxcred sync`)")
    return data.trust, data.verify_options()


def _load_revocations(paths: tuple[Path, ...], at: datetime) -> RevocationList:
    """--revocations: batch files or folders as published (a bad file is reported and skipped)."""
    from vaxcred.sync import load_revocation_files

    revocation, problems = load_revocation_files(paths, now=at)
    for problem in problems:
        click.echo(f"left out {safe(problem.path)} [{problem.code}] {safe(problem.message)}", err=True)
    return revocation


def _country(country: str) -> str:
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        raise click.BadParameter("a two-letter country code", param_hint="--country")
    return country.upper()


def _load_rules(path: Path | None, country: str | None) -> dict[str, Any]:
    """``verify()`` keyword arguments for ``--rules`` / ``--country`` (a rule file, array or folder)."""
    if path is None and country is None:
        return {}
    if path is None or country is None:
        raise click.UsageError("--rules and --country go together")
    from vaxcred.rules import RuleSet

    try:
        return {"rules": RuleSet.from_path(path), "country": _country(country)}
    except errors.VaxcredError as e:
        raise click.UsageError(f"cannot load the rules: [{e.code}] {e.message}") from e
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}", param_hint="--rules") from e


def _print_rules(result: VerificationResult, lang: str) -> None:
    marks = {"passed": "✓", "failed": "✗", "open": "?"}
    for outcome in result.rules:
        click.echo(
            f"    {marks[outcome.outcome.value]} {outcome.identifier} {outcome.version} {outcome.outcome.value}:"
            f" {safe(outcome.description(lang))}"
        )


def _print_human(result: VerificationResult, details: bool, lang: str = "en") -> None:
    colour = {"VALID": "green", "INVALID": "red", "NEEDS_CHECK": "yellow"}[result.status.value]
    click.secho(result.status.value, fg=colour, bold=True)
    if result.holder:
        h = result.holder
        click.echo(
            f"  name:          {safe(h.fn or '')} {safe(h.gn or '')}  ({safe(h.fnt or '')} / {safe(h.gnt or '')})"
        )
        click.echo(f"  date of birth: {safe(h.dob) or '(not given)'}")
    if result.issuer_country:
        click.echo(f"  issued by:     {safe(result.issuer_country)} (from the trust store)")
    if result.trust_mode == "dsc":
        click.echo("  trust:         bare DSC given with --dsc: chain to a CSCA NOT checked")
    for step in result.steps:
        mark = {"pass": "✓", "fail": "✗", "skip": "-"}[step.result.value]
        if details or step.result.value != "pass":
            click.echo(f"  {mark} {step.name:<10} {step.code}: {safe(step.message)}")
        if step.name == "rules" and (details or step.result.value != "pass"):
            _print_rules(result, lang)
    if details and result.certificate:
        click.echo(json.dumps(result.certificate, ensure_ascii=False, indent=2))


@click.command()
@click.argument("input_value", metavar="INPUT")
@click.option(
    "--dsc",
    "dscs",
    multiple=True,
    metavar="CERT",
    help="A DSC certificate (PEM, DER or base64 DER) trusted as is; repeatable. Chain not checked.",
)
@click.option(
    "--trust-list",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="EU gateway trust-list JSON, or a vaxcred signed national trust list (needs --anchor).",
)
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CSCA certificate that anchors a signed trust list.",
)
@click.option(
    "--environment",
    "env",
    type=click.Choice(["PROD", "ACC", "TST"]),
    default="PROD",
    show_default=True,
    help="Trust environment; test and production never mix.",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A folder kept by `vaxcred sync`: its trust list and revocations (needs --anchor).",
)
@click.option(
    "--revocations",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Revocation batches: a file (`vaxcred revocations export`) or a folder of *.json; repeatable.",
)
@click.option("--at", "at", metavar="ISO-8601", help="Verify as of this time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable machine format).")
@click.option("--details", is_flag=True, help="Also show passing steps and the whole certificate.")
@click.option(
    "--image-deadline",
    type=float,
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Longest an image's QR code may take to decode (in a separate process, killed after that).",
)
@click.option(
    "--country",
    metavar="CC",
    help="Arrival country whose business rules apply (with --rules, or the rules of --data).",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(exists=True, path_type=Path),
    help="Business rules: a rule file, a JSON array of rules, or a folder of *.json rule files.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "vi"]),
    default="en",
    show_default=True,
    help="Language of the rule descriptions shown to the officer.",
)
def verify(
    input_value: str,
    dscs: tuple[str, ...],
    trust_list: Path | None,
    anchor: Path | None,
    env: str,
    data: Path | None,
    revocations: tuple[Path, ...],
    at: str | None,
    as_json: bool,
    details: bool,
    image_deadline: float,
    country: str | None,
    rules_path: Path | None,
    lang: str,
) -> None:
    """Verify INPUT: an HC1 string, a file holding one, or a PNG/JPEG image of the QR code.

    Exit code: 0 VALID, 1 INVALID, 2 NEEDS_CHECK, 3 usage error.
    """
    if not (math.isfinite(image_deadline) and image_deadline > 0):
        raise click.BadParameter("must be a positive number of seconds", param_hint="--image-deadline")
    now = parse_at(at)
    synced: dict[str, Any] = {}
    if data is not None:
        if trust_list is not None or dscs:
            raise click.UsageError("--data brings its own trust list: leave out --trust-list and --dsc")
        trust, synced = _load_synced(data, anchor, env, now)
    else:
        trust = _load_trust(dscs, trust_list, anchor, env, now)
    if "rules" in synced and rules_path is None:
        # the folder's rules apply for --country; without it the rules step is skipped (not configured)
        options: dict[str, Any] = {}
        if country:
            options = {k: synced[k] for k in ("rules", "rules_stale_after")} | {"country": _country(country)}
    else:
        options = _load_rules(rules_path, country)
    if "revocation" in synced:
        options["revocation"] = synced["revocation"]
    if revocations:
        options["revocation"] = _load_revocations(revocations, now)
    passport = _read_input(input_value)
    if isinstance(passport, bytes) and _looks_like_image(passport):
        result = _verify_image(passport, trust, now, image_deadline, **options)
    else:
        result = verify_passport(passport, trust, now=now, **options)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, sort_keys=False))
    else:
        _print_human(result, details, lang)
    click.get_current_context().exit(_EXIT[result.status])
