"""What ``vaxcred verify`` and ``vaxcred serve`` check passports against: the trust store (``--dsc``,
``--trust-list``, or a ``vaxcred sync`` folder's, held to the rollback state), revocation batches and
business rules, each turned into :func:`vaxcred.verify.verify` keyword arguments; bad input is a usage error."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vaxcred import errors
from vaxcred.cli._common import safe
from vaxcred.cli._trust import load_trust_list, read_capped, read_state, state_lock, write_state
from vaxcred.revocation import RevocationList
from vaxcred.trust import Environment, TrustStore
from vaxcred.x509util import load_certificate_bytes


def load_trust(
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


def load_synced(
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


def load_revocations(paths: tuple[Path, ...], at: datetime) -> RevocationList:
    """--revocations: batch files or folders as published (a bad file is reported and skipped)."""
    from vaxcred.sync import load_revocation_files

    revocation, problems = load_revocation_files(paths, now=at)
    for problem in problems:
        click.echo(f"left out {safe(problem.path)} [{problem.code}] {safe(problem.message)}", err=True)
    return revocation


def load_rules(path: Path | None, country: str | None) -> dict[str, Any]:
    """``verify()`` keyword arguments for ``--rules`` / ``--country`` (a rule file, array or folder)."""
    if path is None and country is None:
        return {}
    if path is None or country is None:
        raise click.UsageError("--rules and --country go together")
    from vaxcred.rules import RuleSet

    try:
        return {"rules": RuleSet.from_path(path), "country": parse_country(country)}
    except errors.VaxcredError as e:
        raise click.UsageError(f"cannot load the rules: [{e.code}] {e.message}") from e
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}", param_hint="--rules") from e


def parse_country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise click.BadParameter("a two-letter country code", param_hint="--country")
    return value.upper()
