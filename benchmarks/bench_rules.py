"""Verify with business rules vs plain verify, one process, one core (target: >= 50 % of the plain rate).

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_rules`` (part of ``make bench``); ``--quick`` for
a short run. Same timing method as :mod:`benchmarks.bench_core` (best of several rounds after a warm-up).

Rows, per operation, over a pool of distinct passports (fresh full courses that pass every rule):

- plain verify: ``verify(hc1, store, now=...)`` (rules skipped: not configured);
- verify + rules: the same with the Viet Nam destination rule set (``--country VN``), 8 rules selected and
  run per passport (selection, external parameters, evaluation, verdict);
- rules only: :func:`vaxcred.rules.judge` on the decoded payload — the cost the rules step adds.

The last line of output is one JSON object (ops/s and the ratio).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from datetime import timedelta
from typing import Any

from benchmarks.bench_core import NOW, POOL, cycle, environment, make_dccs, ops_per_second
from vaxcred import keys
from vaxcred.issue import Issuer
from vaxcred.result import Status
from vaxcred.rules import judge, vietnam_rules
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

AT = NOW + timedelta(days=1)


def run(*, seconds: float, rounds: int) -> dict[str, float]:
    """ops/s of plain verify, verify with the Viet Nam rules, and the rules alone."""
    from cryptography.hazmat.primitives.serialization import Encoding

    rng = random.Random(20260110)
    csca = keys.make_csca(now=NOW - timedelta(days=60))
    dsc = keys.make_dsc(csca, now=NOW - timedelta(days=1))
    store = TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])
    rules = vietnam_rules()
    issuer = Issuer(dsc.signer())
    passports, payloads = [], []
    for i, dcc in enumerate(make_dccs(POOL, rng)):
        recent = (NOW - timedelta(days=20 + i % 200)).date().isoformat()
        entry = dataclasses.replace(dcc.entry, dn=dcc.entry.sd, dt=recent)  # a full course the rules accept
        hc1 = issuer.issue(dataclasses.replace(dcc, entry=entry), now=NOW).hc1
        result = verify(hc1, store, now=AT, rules=rules, country="VN")
        if result.status is not Status.VALID:
            raise AssertionError(f"benchmark passport not VALID under the rules: {result.step('rules')}")
        passports.append(hc1)
        payloads.append(result.certificate)
    p_next, d_next = cycle(passports), cycle(payloads)

    def rules_only() -> Any:
        return judge(rules, d_next(), at=AT, country="VN", issuer_country="VN")

    return {
        "verify": ops_per_second(lambda: verify(p_next(), store, now=AT), seconds=seconds, rounds=rounds),
        "verify_rules": ops_per_second(
            lambda: verify(p_next(), store, now=AT, rules=rules, country="VN"), seconds=seconds, rounds=rounds
        ),
        "rules_only": ops_per_second(rules_only, seconds=seconds, rounds=rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (~0.15 s per measurement)")
    args = parser.parse_args(argv)
    seconds, rounds = (0.15, 3) if args.quick else (1.5, 5)
    print(environment())
    ops = run(seconds=seconds, rounds=rounds)
    ratio = ops["verify_rules"] / ops["verify"]
    print(f"plain verify        {ops['verify']:>10,.0f} ops/s")
    print(f"verify + VN rules   {ops['verify_rules']:>10,.0f} ops/s  ({ratio:.0%} of plain; target >= 50%)")
    print(f"rules step alone    {ops['rules_only']:>10,.0f} ops/s")
    summary = {
        "verify_ops": round(ops["verify"]),
        "verify_rules_ops": round(ops["verify_rules"]),
        "rules_only_ops": round(ops["rules_only"]),
        "verify_rules_vs_verify": round(ratio, 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
