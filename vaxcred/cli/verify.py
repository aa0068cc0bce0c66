"""``vaxcred verify``: check a passport the way a border app does. A stable contract for outside tools.

This module reads the input (text, file, stdin or image, the image decoded in a child process) and runs the
command; its options are declared in :mod:`~vaxcred.cli._verify_options`, what it checks against (trust,
revocations, rules; shared with ``serve``) is loaded by :mod:`~vaxcred.cli._verify_data`, and the human
output is written by :mod:`~vaxcred.cli._verify_output`.
"""

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
from vaxcred.cli._trust import default_state_path, parse_duration, trust_source_options
from vaxcred.cli._verify_data import load_revocations, load_rules, load_synced, load_trust, parse_country
from vaxcred.cli._verify_options import verify_options
from vaxcred.cli._verify_output import print_human as _print_human
from vaxcred.codec.image import is_image
from vaxcred.result import Status, VerificationResult
from vaxcred.text import clip, json_dumps_safe
from vaxcred.trust import TrustStore
from vaxcred.verify import verify as verify_passport

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


@click.command()
@click.argument("input_value", metavar="INPUT")
@trust_source_options(environment_help="Trust environment; test and production never mix.")
@verify_options
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
        trust, options = load_synced(data, anchor, env, now, state_path)
    else:
        trust = load_trust(dscs, trust_list, anchor, unsafe_unauthenticated, env, now, state_path, fetched)
    if revocations:
        options["revocation"] = load_revocations(revocations, now)
    if rules_path is not None or country is not None:
        if rules_path is None and "rules" in options and country is not None:  # --data's rules for --country
            options["country"] = parse_country(country)
        else:
            options.update(load_rules(rules_path, country))
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
