"""The human output of ``vaxcred verify``: the status, the holder, the trust it rests on, the steps and the
rules, every untrusted string made safe for the terminal (``--json`` is :meth:`VerificationResult.to_json`)."""

from __future__ import annotations

import click

from vaxcred.cli._common import safe
from vaxcred.cli._trust import UNSAFE_FLAG
from vaxcred.result import VerificationResult
from vaxcred.text import json_dumps_safe
from vaxcred.trust import format_age

_MODE_TEXT = {
    "signed_list": "signed national trust list (authenticated)",
    "gateway": "EU gateway list, entry signatures checked (authenticated)",
    "unauthenticated": f"UNAUTHENTICATED gateway list ({UNSAFE_FLAG}): nobody vouches for these keys",
}


def trust_lines(result: VerificationResult) -> list[str]:
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


def print_rules(result: VerificationResult, lang: str) -> None:
    marks = {"passed": "✓", "failed": "✗", "open": "?"}
    for outcome in result.rules:
        click.echo(
            f"    {marks[outcome.outcome.value]} {outcome.identifier} {outcome.version} {outcome.outcome.value}:"
            f" {safe(outcome.description(lang))}"
        )


def print_human(result: VerificationResult, details: bool, lang: str = "en") -> None:
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
    for line in trust_lines(result):
        click.echo(line)
    for notice in result.notices:
        click.echo(f"  ! {notice.code}: {safe(notice.message)}")
    for step in result.steps:
        mark = {"pass": "✓", "fail": "✗", "skip": "-"}[step.result.value]
        if details or step.result.value != "pass":
            click.echo(f"  {mark} {step.name:<10} {step.code}: {safe(step.message)}")
        if step.name == "rules" and (details or step.result.value != "pass"):
            print_rules(result, lang)
    if details and result.certificate:
        click.echo(json_dumps_safe(result.certificate, indent=2))
