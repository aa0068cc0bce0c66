"""``vaxcred verify``: check a passport the way a border app does. A stable contract for outside tools."""

from __future__ import annotations

import contextlib
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vaxcred import errors
from vaxcred._extras import MissingExtraError
from vaxcred.cli import _log_proof
from vaxcred.cli._common import EXIT_INVALID, EXIT_NEEDS_CHECK, EXIT_VALID, parse_at, safe
from vaxcred.cli._trust import (
    UNSAFE_FLAG,
    default_state_path,
    load_trust_list,
    parse_duration,
    read_capped,
    read_state,
    state_lock,
    trust_source_options,
    write_state,
)
from vaxcred.codec.image import is_image
from vaxcred.result import Status, VerificationResult
from vaxcred.revocation import RevocationList
from vaxcred.text import clip, json_dumps_safe
from vaxcred.trust import Environment, TrustStore, format_age
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
        raise click.BadParameter(f"cannot read {safe(clip(value))}: {e.strerror}", param_hint="INPUT") from e


def _verify_image(
    data: bytes, trust: TrustStore, now: datetime, deadline: float, **options: Any
) -> tuple[VerificationResult, str | None]:
    """Decode the image in a child process (SECURITY.md #17): a parser crash or a pathological image
    costs at most ``deadline`` seconds and never this process. Without the ``qr`` extra, verify() reports
    the failed step ``image.extra_missing``. Also returns the QR code's text (for --log-proof), if read."""
    try:
        from vaxcred.qr.isolated import IsolatedImageDecoder  # local import: Pillow and zxing-cpp
    except MissingExtraError:
        return verify_passport(data, trust, now=now, **options), None

    decoded: list[str] = []
    with IsolatedImageDecoder(deadline=deadline) as decoder:
        # start-up (~0.15 s: Pillow and zxing imported, warmed) is paid here, outside the deadline; if the
        # child cannot start, decode() tries again and verify() reports image.decoder_crashed
        with contextlib.suppress(errors.ImageError):
            decoder.start()

        def decode(raw: bytes) -> str:
            text = decoder.decode(raw)
            decoded.append(text)
            return text

        result = verify_passport(data, trust, now=now, image_decoder=decode, **options)
    return result, decoded[0] if decoded else None


def _hc1_text(passport: str | bytes) -> str | None:
    """The text verify() read from a text input (for --log-proof); ``None`` if it is not ASCII."""
    if isinstance(passport, str):
        return passport
    try:
        return passport.decode("ascii")
    except UnicodeDecodeError:
        return None


def _load_trust(
    dscs: tuple[str, ...],
    trust_list: Path | None,
    anchor: Path | None,
    unsafe_unauthenticated: bool,
    env: str,
    at: datetime,
    state_path: Path,
    retrieved_at: datetime | None,
) -> TrustStore:
    environment = Environment[env]
    if trust_list is not None:
        if dscs:
            raise click.UsageError("give either --trust-list or --dsc, not both (one source of trust)")
        loaded = load_trust_list(
            trust_list,
            anchor=anchor,
            unsafe_unauthenticated=unsafe_unauthenticated,
            environment=environment,
            now=at,
            state_path=state_path,
            retrieved_at=retrieved_at,
        )
        if loaded.rejected:
            click.echo(f"note: {len(loaded.rejected)} trust-list entries rejected", err=True)
        return loaded.store
    if anchor is not None or unsafe_unauthenticated or retrieved_at is not None:
        raise click.UsageError("--anchor, --trust-list-retrieved-at and the unsafe opt-in need --trust-list")
    if not dscs:
        raise click.UsageError("give --trust-list FILE or at least one --dsc CERT")
    ders = []
    for item in dscs:
        try:
            ders.append(load_certificate_bytes(read_capped(Path(item), "--dsc")))
        except errors.VaxcredError as e:
            raise click.BadParameter(f"{item}: {e.message}", param_hint="--dsc") from e
    try:
        return TrustStore.from_dsc_certificates(ders, environment=environment)
    except errors.VaxcredError as e:
        raise click.BadParameter(f"[{e.code}] {e.message}", param_hint="--dsc") from e


_MODE_TEXT = {
    "signed_list": "signed national trust list (authenticated)",
    "gateway": "EU gateway list, entry signatures checked (authenticated)",
    "unauthenticated": f"UNAUTHENTICATED gateway list ({UNSAFE_FLAG}): nobody vouches for these keys",
}


def _trust_lines(result: VerificationResult) -> list[str]:
    if result.trust_mode == "dsc":
        return ["  trust:         bare DSC given with --dsc: chain to a CSCA NOT checked"]
    lines = [f"  trust:         {_MODE_TEXT.get(result.trust_mode, result.trust_mode)}, {result.environment}"]
    if result.trust_updated_at is None:
        lines.append("  last update:   unknown (no signed issue time)")
    else:
        age = format_age(result.trust_age) if result.trust_age is not None else "?"
        bound = format_age(result.trust_max_age) if result.trust_max_age is not None else "?"
        lines.append(f"  last update:   {result.trust_updated_at.isoformat()} ({age} old, max {bound})")
    return lines


def _load_synced(
    folder: Path, anchor: Path | None, env: str, at: datetime, state_path: Path
) -> tuple[TrustStore, dict[str, Any]]:
    """--data: the trust list of a folder kept by `vaxcred sync` and its verify() options (revocation, rules
    and their age), re-verified; its trust list is held to the rollback state like --trust-list's."""
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
    with state_lock(state_path):
        # an older signed copy put back on disk (a withdrawn DSC still listed) passes every signature and
        # hash check of the folder: only the verifier's own state, outside the folder, can refuse it
        state = read_state(state_path)
        try:
            updated = state.accept(data.trust)
        except errors.TrustStoreError as e:
            raise click.UsageError(
                f"cannot use the trust list of {folder}: [{e.code}] {safe(e.message)}"
            ) from e
        if updated != state:
            write_state(state_path, updated)
    return data.trust, data.verify_options()


def _load_revocations(paths: tuple[Path, ...], at: datetime) -> RevocationList:
    """--revocations: batch files or folders as published (a bad file is reported and skipped)."""
    from vaxcred.sync import load_revocation_files

    revocation, problems = load_revocation_files(paths, now=at)
    for problem in problems:
        click.echo(f"left out {safe(problem.path)} [{problem.code}] {safe(problem.message)}", err=True)
    return revocation


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


def _country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise click.BadParameter("a two-letter country code", param_hint="--country")
    return value.upper()


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
    for line in _trust_lines(result):
        click.echo(line)
    for notice in result.notices:
        click.echo(f"  ! {notice.code}: {safe(notice.message)}")
    for step in result.steps:
        mark = {"pass": "✓", "fail": "✗", "skip": "-"}[step.result.value]
        if details or step.result.value != "pass":
            click.echo(f"  {mark} {step.name:<10} {step.code}: {safe(step.message)}")
        if step.name == "rules" and (details or step.result.value != "pass"):
            _print_rules(result, lang)
    if details and result.certificate:
        click.echo(json_dumps_safe(result.certificate, indent=2))


@click.command()
@click.argument("input_value", metavar="INPUT")
@trust_source_options(environment_help="Trust environment; test and production never mix.")
@click.option(
    UNSAFE_FLAG,
    "unsafe_unauthenticated",
    is_flag=True,
    help="UNSAFE: accept gateway JSON without --anchor, its signatures NOT checked. Never VALID: at "
    "best NEEDS_CHECK (exit 2).",
)
@click.option(
    "--max-trust-age",
    metavar="DURATION",
    help="Oldest trust list accepted for VALID (e.g. 24h, 3d); older or of unknown age: NEEDS_CHECK. "
    "Given explicitly it holds bare --dsc certificates (no age) to it too.  [default: 72h]",
)
@click.option(
    "--trust-state",
    "trust_state",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Rollback state: the highest signed-list sequence seen; older lists are refused. "
    "[default: $XDG_STATE_HOME/vaxcred/trust-state.json]",
)
@click.option(
    "--trust-list-retrieved-at",
    "retrieved_at",
    metavar="ISO-8601",
    help="Gateway JSON: when it was downloaded from the gateway (its age counts from here; without it "
    "the age is unknown and the result NEEDS_CHECK).",
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
    "--region",
    metavar="REGION",
    help="Region within the arrival country whose rules apply (rules without a region otherwise).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "vi"]),
    default="en",
    show_default=True,
    help="Language of the rule descriptions shown to the officer.",
)
@click.option(
    "--log-proof",
    "log_proof",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PROOF.json",
    help="Require this inclusion proof (`vaxcred log prove`): the passport must be in the issuing side's "
    "log under a tree head signed by --log-cert, else INVALID. Text and image input alike.",
)
@click.option(
    "--log-cert",
    "log_cert",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="LOG.pem",
    help="The log signer's certificate (with --log-proof).",
)
def verify(
    input_value: str,
    dscs: tuple[str, ...],
    trust_list: Path | None,
    anchor: Path | None,
    unsafe_unauthenticated: bool,
    max_trust_age: str | None,
    trust_state: Path | None,
    retrieved_at: str | None,
    env: str,
    data: Path | None,
    revocations: tuple[Path, ...],
    at: str | None,
    as_json: bool,
    details: bool,
    image_deadline: float,
    country: str | None,
    rules_path: Path | None,
    region: str | None,
    lang: str,
    log_proof: Path | None,
    log_cert: Path | None,
) -> None:
    """Verify INPUT: an HC1 string, a file holding one, or a PNG/JPEG image of the QR code.

    VALID means: every step passed and the signer is trusted by an authenticated trust list at most
    --max-trust-age old (or a bare --dsc, shown as such).  Exit code: 0 VALID, 1 INVALID,
    2 NEEDS_CHECK, 3 usage error (including a trust list that cannot be authenticated or is older
    than one already seen).

    With --log-proof and --log-cert the passport must also be in the issuing side's log (the proof from
    `vaxcred log prove`); a proof that does not hold makes the result INVALID.
    """
    if not (math.isfinite(image_deadline) and image_deadline > 0):
        raise click.BadParameter("must be a positive number of seconds", param_hint="--image-deadline")
    now = parse_at(at)
    max_age = parse_duration(max_trust_age) if max_trust_age is not None else None
    fetched = parse_at(retrieved_at) if retrieved_at is not None else None
    state_path = trust_state or default_state_path()
    options: dict[str, Any] = {}
    if data is not None:
        if trust_list is not None or dscs:
            raise click.UsageError("--data brings its own trust list: leave out --trust-list and --dsc")
        trust, options = _load_synced(data, anchor, env, now, state_path)
    else:
        trust = _load_trust(dscs, trust_list, anchor, unsafe_unauthenticated, env, now, state_path, fetched)
    if revocations:
        options["revocation"] = _load_revocations(revocations, now)
    if rules_path is not None or country is not None:
        if rules_path is None and "rules" in options and country is not None:  # --data's rules for --country
            options["country"] = _country(country)
        else:
            options.update(_load_rules(rules_path, country))
            options.pop("rules_stale_after", None)  # the age was the folder's rules', not --rules'
    if region is not None:
        if "rules" not in options:
            raise click.UsageError("--region needs business rules (--rules or --data)")
        options["region"] = region.upper()
    options["max_trust_age"] = max_age
    required = _log_proof.load_required_proof(log_proof, log_cert)
    passport = _read_input(input_value)
    if isinstance(passport, bytes) and is_image(passport):
        result, hc1 = _verify_image(passport, trust, now, image_deadline, **options)
    else:
        result, hc1 = verify_passport(passport, trust, now=now, **options), _hc1_text(passport)
    check = None if required is None else _log_proof.check_proof(hc1, required)
    if check is not None:
        result = _log_proof.apply(result, check)
    if as_json:
        out = result.to_json()
        if check is not None:
            out["log_proof"] = check.to_json()
        click.echo(json_dumps_safe(out))
    else:
        _print_human(result, details, lang)
        if check is not None:
            click.echo(f"  {check.line()}")
    click.get_current_context().exit(_EXIT[result.status])
