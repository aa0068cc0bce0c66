"""Batch site signing, in one process: signing and verification cost per record, and bytes stored per signature,
for v1 (one COSE_Sign1 per record) and batches of several sizes.

``python -m benchmarks.bench_site_batches [--records N] [--sizes 16,64,128,256]`` (``make bench-site-batches``).
Prints one line per format: µs per record to sign, µs per record to verify as issuance does (a batch member:
head checked once per batch, cached; then payload decode and audit path), µs per record to verify a standalone
record with a cold cache, and the bytes a ``site_signatures`` row carries for it (payload or COSE + audit path;
plus the batch row's head shared by its members).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

from vaxcred import keys
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch import BatchMember, SignedBatch, _head_outcome, sign_batch
from vaxcred.pipeline.site_signing.record import sign_dose, verify_dose, verify_stored_dose

NOW = dt.datetime(2023, 1, 10, 9, 0, tzinfo=dt.UTC)


def _doses(n: int) -> list[DoseRecord]:
    return [
        DoseRecord(
            citizen_id=f"0010900{i:05d}",
            vaccine="Comirnaty",
            lot=f"FK{i % 997:04d}",
            date="2022-09-01",
            dose_number=1 + i % 3,
            site_id="VN001-S01",
        )
        for i in range(n)
    ]


def _per_record(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4096)
    parser.add_argument("--sizes", default="16,64,128,256,512")
    args = parser.parse_args()
    ca = keys.make_site_ca(now=NOW - dt.timedelta(days=30))
    site = keys.make_site_certificate(
        ca, site_id="VN001-S01", site_name="Trạm Y tế", now=NOW - dt.timedelta(days=1)
    )
    signer, cert = site.signer(), site.certificate
    doses = _doses(args.records)
    n = len(doses)
    print(f"{n} records, ES256, one process")
    print(
        f"{'format':>10} {'sign µs':>9} {'issuance µs':>12} {'standalone µs':>14} {'row bytes':>10} {'head bytes':>11}"
    )

    v1: list[bytes] = []
    sign_v1 = _per_record(n, lambda: v1.extend(sign_dose(d, signer=signer, now=NOW).cose for d in doses))
    verify_v1 = _per_record(n, lambda: [verify_dose(r, site_certificate=cert) for r in v1])
    row = sum(len(r) for r in v1) / n
    print(f"{'v1':>10} {sign_v1:9.1f} {verify_v1:12.1f} {verify_v1:14.1f} {row:10.0f} {'-':>11}")

    for size in (int(s) for s in args.sizes.split(",")):
        batches: list[SignedBatch] = []

        def sign_all(batches: list[SignedBatch] = batches, size: int = size) -> None:
            batches.extend(sign_batch(doses[i : i + size], signer=signer, now=NOW) for i in range(0, n, size))

        sign = _per_record(n, sign_all)
        stored = [
            (b.head, m.index, b"".join(m.proof), m.payload)
            for b in batches
            for m in b.outcomes
            if isinstance(m, BatchMember)
        ]
        _head_outcome.cache_clear()

        def issuance_checks(stored: list[tuple[bytes | None, int, bytes, bytes]] = stored) -> None:
            for head, index, proof, payload in stored:
                verify_stored_dose(payload, head, index, proof, site_certificate=cert)

        issuance = _per_record(n, issuance_checks)
        records = [b.record(m) for b in batches for m in b.outcomes if isinstance(m, BatchMember)]

        def cold(records: list[bytes] = records) -> None:
            for r in records:
                _head_outcome.cache_clear()
                verify_dose(r, site_certificate=cert)

        standalone = _per_record(n, cold)
        row = sum(len(p) + len(proof) for _, _, proof, p in stored) / n
        head = sum(len(b.head or b"") for b in batches) / len(batches)  # shared by the batch's members
        print(f"{size:>10} {sign:9.1f} {issuance:12.1f} {standalone:14.1f} {row:10.0f} {head:11.0f}")


if __name__ == "__main__":
    main()
