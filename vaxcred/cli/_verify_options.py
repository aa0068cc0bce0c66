"""The options of ``vaxcred verify`` beyond the trust source it shares with ``serve``
(:func:`~vaxcred.cli._trust.trust_source_options`): the unsafe opt-in, trust age and state, ``--data``,
revocations, time, output, image deadline, business rules and the log proof, in the order ``--help`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from vaxcred.cli._trust import UNSAFE_FLAG

_F = TypeVar("_F", bound=Callable[..., Any])

_OPTIONS = [
    click.option(
        UNSAFE_FLAG,
        "unsafe_unauthenticated",
        is_flag=True,
        help="UNSAFE: accept gateway JSON without --anchor, its signatures NOT checked. Never VALID: at "
        "best NEEDS_CHECK (exit 2).",
    ),
    click.option(
        "--max-trust-age",
        metavar="DURATION",
        help="Oldest trust list accepted for VALID (e.g. 24h, 3d); older or of unknown age: NEEDS_CHECK. "
        "Given explicitly it holds bare --dsc certificates (no age) to it too.  [default: 72h]",
    ),
    click.option(
        "--trust-state",
        "trust_state",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Rollback state: the highest signed-list sequence seen; older lists are refused. "
        "[default: $XDG_STATE_HOME/vaxcred/trust-state.json]",
    ),
    click.option(
        "--trust-list-retrieved-at",
        "retrieved_at",
        metavar="ISO-8601",
        help="Gateway JSON: when it was downloaded from the gateway (its age counts from here; without it "
        "the age is unknown and the result NEEDS_CHECK).",
    ),
    click.option(
        "--data",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="A folder kept by `vaxcred sync`: its trust list and revocations (needs --anchor).",
    ),
    click.option(
        "--revocations",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="Revocation batches: a file (`vaxcred revocations export`) or a folder of *.json; repeatable.",
    ),
    click.option("--at", "at", metavar="ISO-8601", help="Verify as of this time (default: now)."),
    click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object (the stable machine format)."
    ),
    click.option("--details", is_flag=True, help="Also show passing steps and the whole certificate."),
    click.option(
        "--image-deadline",
        type=float,
        default=0.5,
        show_default=True,
        metavar="SECONDS",
        help="Longest an image's QR code may take to decode (in a separate process, killed after that).",
    ),
    click.option(
        "--country",
        metavar="CC",
        help="Arrival country whose business rules apply (with --rules, or the rules of --data).",
    ),
    click.option(
        "--rules",
        "rules_path",
        type=click.Path(exists=True, path_type=Path),
        help="Business rules: a rule file, a JSON array of rules, or a folder of *.json rule files.",
    ),
    click.option(
        "--region",
        metavar="REGION",
        help="Region within the arrival country whose rules apply (rules without a region otherwise).",
    ),
    click.option(
        "--lang",
        type=click.Choice(["en", "vi"]),
        default="en",
        show_default=True,
        help="Language of the rule descriptions shown to the officer.",
    ),
    click.option(
        "--log-proof",
        "log_proof",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PROOF.json",
        help="Require this inclusion proof (`vaxcred log prove`): the passport must be in the issuing side's "
        "log under a tree head signed by --log-cert, else INVALID. Text and image input alike.",
    ),
    click.option(
        "--log-cert",
        "log_cert",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="LOG.pem",
        help="The log signer's certificate (with --log-proof).",
    ),
]


def verify_options(func: _F) -> _F:
    """Declare the options of ``vaxcred verify`` on ``func`` (parameters ``unsafe_unauthenticated`` ...
    ``log_cert``)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func
