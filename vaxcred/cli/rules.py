"""``vaxcred rules``: evaluate and validate CertLogic expressions and EU gateway rules (a stable contract).

* ``vaxcred rules eval EXPR.json DATA.json`` prints the JSON value of the expression over the data (date-times
  as ``YYYY-MM-DDThh:mm:ss.sssZ``); with ``DATA.jsonl`` it evaluates once per non-empty line and prints one
  JSON value per line, in order. Exit 0; exit 1 with ``[code] message`` on stderr for an invalid
  expression (every problem listed) or an evaluation error (the line number for ``.jsonl``; evaluation
  stops there).
* ``vaxcred rules validate FILE.json``: a CertLogic expression, or a gateway rule (an object with
  ``Identifier`` or ``Logic``); exit 0 valid, 1 invalid with one ``JSON-pointer: message`` line per problem
  on stdout (the pointer ``""`` is the whole document).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

from vaxcred import errors
from vaxcred.cli._common import EXIT_INVALID, safe
from vaxcred.rules import (
    compile_expression,
    expression_problems,
    parse_json,
    rule_problems,
    to_json_value,
)
from vaxcred.text import json_dumps_safe

_MAX_EXPRESSION = 1024 * 1024
_MAX_DATA = 64 * 1024 * 1024


def _read(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise click.BadParameter(f"{path.name} is larger than {limit} bytes")
    return data


def _fail(message: str) -> NoReturn:
    # messages may quote the expression or the data: no raw control or bidi character on a terminal
    click.echo("\n".join(safe(line) for line in message.split("\n")), err=True)
    click.get_current_context().exit(EXIT_INVALID)


@click.group()
def rules() -> None:
    """Evaluate and validate CertLogic expressions and EU gateway business rules."""


@rules.command("eval")
@click.argument(
    "expr_file", metavar="EXPR.json", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.argument(
    "data_file", metavar="DATA.json", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
def eval_(expr_file: Path, data_file: Path) -> None:
    """Print the JSON value of the CertLogic expression in EXPR.json over DATA.json.

    DATA.jsonl (one JSON document per line) evaluates once per line and prints one value per line.
    Exit 0; exit 1 with the typed error on stderr.
    """
    try:
        expression = compile_expression(parse_json(_read(expr_file, _MAX_EXPRESSION), what=expr_file.name))
    except errors.InvalidExpressionError as e:
        lines = [f"[{e.code}] {e.message}", *(f"{where}: {message}" for where, message in e.problems)]
        _fail("\n".join(lines))
    except errors.RulesError as e:
        _fail(f"[{e.code}] {e.message}")
    raw = _read(data_file, _MAX_DATA)
    documents: list[tuple[int, bytes]]
    if data_file.suffix == ".jsonl":
        documents = [(n, line) for n, line in enumerate(raw.split(b"\n"), start=1) if line.strip()]
    else:
        documents = [(0, raw)]
    for number, document in documents:
        where = f"line {number}: " if number else ""
        try:
            value: Any = to_json_value(expression.evaluate(parse_json(document, what=f"{where}the data")))
        except errors.RulesError as e:
            _fail(f"{where}[{e.code}] {e.message}")
        click.echo(json_dumps_safe(value))


@rules.command("validate")
@click.argument("file", metavar="FILE.json", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def validate(file: Path) -> None:
    """Validate a CertLogic expression or an EU gateway rule (all but the upload-time checks).

    Exit 0 valid; 1 invalid, with one `JSON-pointer: message` line per problem.
    """
    try:
        document = parse_json(_read(file, _MAX_EXPRESSION), what=file.name)
    except errors.RulesError as e:
        click.echo(f": {safe(e.message)}")
        click.get_current_context().exit(EXIT_INVALID)
    is_rule = isinstance(document, dict) and ("Identifier" in document or "Logic" in document)
    problems = rule_problems(document) if is_rule else expression_problems(document)
    for problem in problems:
        click.echo(safe(problem))
    if problems:
        click.get_current_context().exit(EXIT_INVALID)
    click.echo(f"valid {'rule' if is_rule else 'CertLogic expression'}", err=True)
