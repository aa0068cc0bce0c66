"""Revocation lookups at national scale: memory per entry, load and build time, lookup time.

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_revocation --entries 10000000`` (``make
bench-revocation``; ``ENTRIES=100000`` for a quick check).

The promise checked (issue 8): 10 million revocation entries held in at most 300 MB, constant time per
lookup.  The entries are uniform random 16-byte hashes (seeded), as gateway batches of 1,000 under one DSC
kid and one hash type, each batch's JSON generated on the fly and read through the same path a verifier
uses (:func:`vaxcred.revocation.read_batches` -> :class:`~vaxcred.revocation.RevocationListBuilder`), so
no copy of the input sits in memory beside the list.  Phases:

- ``load``: generating, parsing and adding every batch (16 bytes an entry kept);
- ``build``: the in-place bucket sort and deduplication into :class:`~vaxcred.revocation.HashSet16`;
- ``lookup_hit`` / ``lookup_miss``: ``hash in set`` for listed and unlisted hashes (median per call);
- ``check``: a full :meth:`RevocationList.check` of a passport (three SHA-256 hashes, two kids).

Memory: ``nbytes`` is what the hash sets hold (exact); RSS figures come from /proc/self/status
(``VmHWM`` reset through /proc/self/clear_refs before loading, so ``peak_rss_growth`` is the build's own
high-water mark above the interpreter's baseline).  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from vaxcred.revocation import (
    HashSet16,
    HashType,
    RevocationBatch,
    RevocationList,
    RevocationListBuilder,
    read_batches,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
KID = bytes.fromhex("0102030405060708")
_MB = 1024 * 1024


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (0 where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def _batch_json(rng: random.Random, count: int, expires: str) -> bytes:
    raw = rng.randbytes(16 * count)
    entries = ",".join(
        '{"hash":"' + base64.b64encode(raw[i : i + 16]).decode("ascii") + '"}' for i in range(0, len(raw), 16)
    )
    head = f'{{"country":"VN","expires":"{expires}","kid":"{base64.b64encode(KID).decode()}",'
    return (head + f'"hashType":"UCI","entries":[{entries}]}}').encode("ascii")


def _median_ns(calls: int, values: list[bytes], table: HashSet16) -> float:
    """Median over chunks of ``calls`` lookups of the time per ``value in table``."""
    samples = []
    for start in range(0, len(values), calls):
        chunk = values[start : start + calls]
        began = time.perf_counter_ns()
        for value in chunk:
            _ = value in table
        samples.append((time.perf_counter_ns() - began) / len(chunk))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    entries = args.entries
    rng = random.Random(args.seed)
    expires = (NOW + timedelta(days=365)).isoformat().replace("+00:00", "Z")

    baseline = _status("VmRSS")
    _reset_peak()
    builder = RevocationListBuilder(now=NOW, max_entries=max(entries, 1))
    began = time.perf_counter()
    remaining = entries
    while remaining:
        count = min(1000, remaining)
        for batch in read_batches(io.BytesIO(_batch_json(rng, count, expires))):
            assert isinstance(batch, RevocationBatch)
            builder.add(batch)
        remaining -= count
    loaded = time.perf_counter()
    revoked: RevocationList = builder.build(issued_at=NOW, max_age=timedelta(days=2))
    built = time.perf_counter()
    peak_growth = _status("VmHWM") - baseline
    rss_growth = _status("VmRSS") - baseline

    # probes: listed hashes regenerated from the same seed, unlisted ones from another
    probe_rng = random.Random(args.seed)
    listed = [probe_rng.randbytes(16) for _ in range(min(entries, 100_000))]
    other = random.Random(args.seed + 1)
    unlisted = [other.randbytes(16) for _ in range(100_000)]
    table = revoked._index[(KID, HashType.UCI)]  # the one set every entry went to (private: no copy)
    hit = _median_ns(1000, listed, table)
    miss = _median_ns(1000, unlisted, table)
    assert all(v in table for v in listed[:1000])
    signature = bytes(range(64))
    began_check = time.perf_counter_ns()
    for i in range(20_000):
        revoked.check(kid=KID, uvci=f"URN:UVCI:01:VN:{i:012d}#X", country="VN", signature=signature, alg=-7)
    check_ns = (time.perf_counter_ns() - began_check) / 20_000

    result = {
        "entries": entries,
        "stored": len(revoked),
        "nbytes": revoked.nbytes(),
        "bytes_per_entry": round(revoked.nbytes() / max(entries, 1), 2),
        "rss_growth_mb": round(rss_growth / _MB, 1),
        "peak_rss_growth_mb": round(peak_growth / _MB, 1),
        "load_s": round(loaded - began, 2),
        "build_s": round(built - loaded, 2),
        "lookup_hit_ns": round(hit),
        "lookup_miss_ns": round(miss),
        "check_us": round(check_ns / 1000, 2),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "pid": os.getpid(),
    }
    for key, value in result.items():
        print(f"{key:>20}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
