"""``make demo``: the main job on the embedded default, no server needed.

Part 1, one passport: creates a ministry key chain in a local folder, issues a passport for a sample
Vietnamese person, writes its QR code (PNG and SVG), exports the signed national trust list, then verifies
the PNG the way a border app does (image -> QR -> HC1 -> every check) and prints the result.

Part 2, the national pipeline on generated data, in a SQLite file: synthetic people (10,000 by default) with
the seeds' error mix, import -> registry check -> site keys and site signing -> central issuance -> the
data-quality report (text, CSV, JSON, PNG), then a citizen's correction resolved with re-issue and the
revocation export. Personal data stays in the output folder; the terminal gets counts and codes.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from vaxcred.demo.national import run_pipeline
from vaxcred.demo.passport import _key_chain, run
from vaxcred.keys import TokenConfig

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaxcred.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    parser.add_argument(
        "--people",
        type=int,
        default=10_000,
        help="synthetic people in the pipeline part (default 10000; 0 skips it)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 2),
        help="issuance worker processes (default 2)",
    )
    parser.add_argument("--pkcs11", metavar="MODULE", help="keep every key on this PKCS#11 module's token")
    parser.add_argument(
        "--token", metavar="LABEL", help="the token's label (with --pkcs11; PIN: $VAXCRED_PKCS11_PIN)"
    )
    args = parser.parse_args(argv)
    if args.people < 0 or args.workers < 1:
        parser.error("--people must be >= 0 and --workers >= 1")
    if (args.pkcs11 is None) != (args.token is None):
        parser.error("--pkcs11 and --token go together")
    token = None if args.pkcs11 is None else TokenConfig(module=args.pkcs11, token_label=args.token)
    args.out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    chain = _key_chain(args.out / "keys", now, token)
    code = run(args.out, now, chain)
    if args.people:
        code = max(code, run_pipeline(args.out, now, chain, people=args.people, workers=args.workers))
    return code
