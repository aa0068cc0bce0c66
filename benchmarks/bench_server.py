"""``make bench-server``: ``vaxcred serve --data DIR --workers 2`` under a load generator on loopback.

The service runs as a border deployment does: on a complete ``vaxcred sync`` folder written by the real
publisher (:func:`vaxcred.sync.publish_folder`): a fresh key chain (:mod:`vaxcred.keys`), the signed
national trust list (so the ``chain`` step runs), Viet Nam's rule set (``vaxcred/data/rules/VN``) and
revocation batches built with :mod:`vaxcred.revocation` as the pipeline's export builds them (the revoked
passports plus ``--revocation-entries`` other hashes, so lookups run against a list of realistic size).
Every request names ``"country": "VN"``, so the rules apply. Real passports in a fixed mix (``MIX``): valid,
revoked, failing a rule (incomplete course; last dose too recent), expired, forged signature, unknown signer.
Each answer is checked against the verdict its passport must get (status and reason code): a wrong verdict
or a transport error fails the run (exit status 1).

Two phases, each a fixed duration with bounded loops (the generator stops by itself):

1. **capacity**: ``--connections`` keep-alive connections in a closed loop, as fast as the service answers:
   verifications a second (``rps``);
2. **latency at 80 %**: an open loop at 80 % of that rate: requests start on a fixed schedule whatever the
   service does, and each latency runs from its *scheduled* start (no coordinated omission), so queueing
   shows in the percentiles.

The generator is a small asyncio HTTP/1.1 client (pre-built requests, Content-Length framing) in this
process, sharing the machine's cores with the service, as a load balancer or a sidecar on the same host
would. Output: a Markdown table for docs/benchmarks.md, then as the last line one JSON object
``{"rps": …, "p50_ms": …, "p99_ms": …}`` (percentiles of phase 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import vaxcred
from tests.service.support import DAY, MINUTE, Chain, dcc, start_server
from vaxcred.issue import Issuer
from vaxcred.pipeline.corrections import REVOCATION_HASH_TYPES
from vaxcred.pipeline.reports import decode_passport
from vaxcred.revocation import HashType, RevocationBatch, RevocationEntry, batches_for, revocation_entries
from vaxcred.sync import publish_folder
from vaxcred.trust import Environment

RULES_DIR = Path(vaxcred.__file__).parent / "data" / "rules" / "VN"


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One kind of passport in the mix: its share, and the answer it must get."""

    share: float
    status: str
    #: the code of the first reason (None: no reason at all)
    reason: str | None = None
    #: text the answer must also hold: the verify step that proves the data was used
    detail: str

    def expected(self) -> str:
        return f"{self.status} {self.reason or ''} ({self.detail})".replace("  ", " ")


#: passport kind -> share of the mix and expected answer
MIX: dict[str, Kind] = {
    "valid": Kind(share=0.50, status="VALID", detail='"code":"rules.ok"'),
    "revoked": Kind(share=0.10, status="INVALID", reason="revocation.revoked", detail='"code":"rules.ok"'),
    # dose 1 of 2: VR-VN-0002, the course must be complete
    "incomplete_course": Kind(
        share=0.10, status="INVALID", reason="rules.failed", detail="failed: VR-VN-0002"
    ),
    # last dose 3 days ago: VR-VN-0003, at least 14 days
    "too_recent": Kind(share=0.05, status="INVALID", reason="rules.failed", detail="failed: VR-VN-0003"),
    "expired": Kind(share=0.10, status="INVALID", reason="time.expired", detail='"code":"signature.ok"'),
    "forged": Kind(share=0.10, status="INVALID", reason="signature.invalid", detail='"code":"kid.ok"'),
    "unknown_signer": Kind(share=0.05, status="INVALID", reason="kid.unknown", detail='"code":"cose.ok"'),
}
_STATUS_AT = len(b'{"status":"')


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    done: int = 0
    #: answers that were not the verdict expected, by passport kind
    wrong: Counter[str] = field(default_factory=Counter)

    @property
    def wrong_verdicts(self) -> int:
        return sum(self.wrong.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """What one pre-built request must be answered with (byte patterns of the response JSON)."""

    kind: str
    status: bytes
    reasons: bytes
    detail: bytes

    @classmethod
    def of(cls, kind: str) -> Expected:
        spec = MIX[kind]
        reasons = (
            b'"reasons":[]' if spec.reason is None else b'"reasons":[{"code":"%s"' % spec.reason.encode()
        )
        return cls(
            kind=kind, status=spec.status.encode() + b'"', reasons=reasons, detail=spec.detail.encode()
        )

    def matches(self, body: bytes) -> bool:
        return (
            body[_STATUS_AT : _STATUS_AT + len(self.status)] == self.status
            and self.reasons in body
            and self.detail in body
        )


def _makers(chain: Chain) -> dict[str, Callable[[], str]]:
    """Passport makers by kind; dose dates relative to ``chain.now`` so the rules see them as intended."""
    # 60 days ago: within VR-VN-0003 (at least 14 days) and VR-VN-0004 (at most 270 days)
    recent = (chain.now - 60 * DAY).date().isoformat()
    too_recent = (chain.now - 3 * DAY).date().isoformat()
    issuer = Issuer(chain.dsc.signer())
    at = chain.now - MINUTE

    def issued(dt: str, dn: int = 2) -> Callable[[], str]:
        return lambda: issuer.issue(dcc(dt=dt, dn=dn), now=at).hc1

    return {
        "valid": issued(dt=recent),
        "revoked": issued(dt=recent),
        "incomplete_course": issued(dt=recent, dn=1),
        "too_recent": issued(dt=too_recent),
        "expired": chain.expired,
        "forged": chain.tampered,
        "unknown_signer": chain.unknown_signer,
    }


def _passports(chain: Chain, count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` distinct passports in the mix, as (kind, HC1)."""
    makers = _makers(chain)
    rng = random.Random(seed)
    kinds = list(MIX)[:count]  # every kind at least once, then drawn by share
    kinds += rng.choices(list(MIX), weights=[kind.share for kind in MIX.values()], k=count - len(kinds))
    return [(kind, makers[kind]()) for kind in kinds]


def _revocation_batches(
    chain: Chain, revoked: list[str], filler: int, seed: int = 11
) -> tuple[RevocationBatch, ...]:
    """The gateway batches revoking ``revoked`` (by the hash types the pipeline's corrections record) plus
    ``filler`` random UCI hashes under the same kid, grouped as the pipeline's export groups them."""
    entries: list[RevocationEntry] = []
    for hc1 in revoked:
        passport = decode_passport(hc1)
        entries.extend(
            revocation_entries(
                kid=passport.kid,
                uvci=passport.uvci,
                country=passport.country,
                signature=passport.signature,
                alg=passport.alg,
                expires=passport.exp,
                hash_types=REVOCATION_HASH_TYPES,
            )
        )
    rng = random.Random(seed)
    expires = chain.now + 365 * DAY
    entries.extend(
        RevocationEntry(kid=chain.dsc.kid, hash_type=HashType.UCI, hash=rng.randbytes(16), expires=expires)
        for _ in range(filler)
    )
    return batches_for(entries, country="VN")


def _publish(chain: Chain, out: Path, batches: tuple[RevocationBatch, ...]) -> Path:
    """Write the sync folder with the real publisher (signed an hour ago, as a daily publication); the CSCA PEM."""
    files = chain.write(out.parent / "keys")
    publish_folder(
        out,
        trust_list=files["trust_list"].read_bytes(),
        signer=chain.list_signer.signer(),
        environment=Environment.TST,
        issued_at=chain.now - timedelta(hours=1),
        sequence=1,
        rules=[(f"rules/VN/{path.name}", path.read_bytes()) for path in sorted(RULES_DIR.glob("*.json"))],
        revocation_batches=batches,
    )
    return files["csca"]


def _requests(passports: list[tuple[str, str]]) -> list[tuple[bytes, Expected]]:
    """Pre-built HTTP requests (arrival country VN), each with the verdict it must get."""
    built = []
    for kind, hc1 in passports:
        body = json.dumps({"qr": hc1, "country": "VN"}).encode()
        head = (
            b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        built.append((head + body, Expected.of(kind)))
    return built


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Send one request, return the body (raises on anything but a complete 200 response)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    length = None
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length is None:
        raise RuntimeError("no content-length")
    return await reader.readexactly(length)


def _check(body: bytes, expected: Expected, tally: Tally) -> None:
    if not expected.matches(body):
        tally.wrong[expected.kind] += 1


async def _closed_loop(
    port: int, requests: list[tuple[bytes, Expected]], connections: int, duration: float
) -> Tally:
    tally = Tally()
    stop_at = time.perf_counter() + duration

    async def client(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < stop_at:
                request, expected = requests[i % len(requests)]
                i += connections
                started = time.perf_counter()
                try:
                    body = await _exchange(reader, writer, request)
                except (RuntimeError, OSError, asyncio.IncompleteReadError):
                    tally.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                tally.latencies.append(time.perf_counter() - started)
                _check(body, expected, tally)
                tally.done += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(c) for c in range(connections)))
    return tally


async def _open_loop(
    port: int, requests: list[tuple[bytes, Expected]], rate: float, duration: float, pool: int
) -> Tally:
    """Requests start every 1/rate s on schedule; latency from the scheduled start to the full response."""
    tally = Tally()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    total = int(rate * duration)
    start = time.perf_counter() + 0.05

    async def one(i: int, scheduled: float) -> None:
        reader, writer = await idle.get()
        request, expected = requests[i % len(requests)]
        try:
            body = await _exchange(reader, writer, request)
        except (RuntimeError, OSError, asyncio.IncompleteReadError):
            tally.errors += 1
            writer.close()
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
            return
        tally.latencies.append(time.perf_counter() - scheduled)
        _check(body, expected, tally)
        tally.done += 1
        idle.put_nowait((reader, writer))

    tasks = []
    i = 0
    while i < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        while i < due:
            tasks.append(asyncio.ensure_future(one(i, start + i / rate)))
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    # bounded: whatever is still queued a few seconds after the schedule ends counts as an error
    _finished, pending = await asyncio.wait(tasks, timeout=max(5.0, duration))
    for task in pending:
        task.cancel()
    tally.errors += len(pending)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return tally


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


async def _census(port: int, requests: list[tuple[bytes, Expected]]) -> dict[str, tuple[int, int, bytes]]:
    """Every distinct request once, one at a time: per kind (sent, wrong, first wrong answer)."""
    census: dict[str, tuple[int, int, bytes]] = {}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request, expected in requests:
            body = await _exchange(reader, writer, request)
            sent, wrong, sample = census.get(expected.kind, (0, 0, b""))
            bad = not expected.matches(body)
            census[expected.kind] = (sent + 1, wrong + bad, sample or (body if bad else b""))
    finally:
        writer.close()
    return census


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark and print its report; SystemExit(1) on any wrong verdict or transport error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (default 15)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections (phase 1)")
    parser.add_argument("--passports", type=int, default=400, help="distinct passports in the mix")
    parser.add_argument(
        "--revocation-entries",
        type=int,
        default=10_000,
        help="hashes of other revoked passports in the published list (default 10000)",
    )
    parser.add_argument("--load", type=float, default=0.8, help="phase 2 rate as a share of phase 1")
    args = parser.parse_args(argv)

    chain = Chain.make()
    passports = _passports(chain, args.passports)
    requests = _requests(passports)
    revoked = [hc1 for kind, hc1 in passports if kind == "revoked"]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        data = Path(tmp) / "data"
        anchor = _publish(chain, data, _revocation_batches(chain, revoked, args.revocation_entries))
        server = start_server(
            [
                "--data", str(data), "--anchor", str(anchor),
                "--environment", "TST", "--workers", str(args.workers),
            ],
            Path(tmp) / "server.log",
        )  # fmt: skip
        try:
            census = asyncio.run(_census(server.port, requests))
            # warm-up: both workers import and cache what the first requests need
            asyncio.run(_closed_loop(server.port, requests, args.connections, min(1.0, args.duration)))
            capacity = asyncio.run(_closed_loop(server.port, requests, args.connections, args.duration))
            rps = capacity.done / args.duration
            rate = max(1.0, rps * args.load)
            latency = asyncio.run(
                _open_loop(server.port, requests, rate, args.duration, pool=args.connections * 2)
            )
        finally:
            server.stop()

    result = {
        "rps": round(rps, 1),
        "p50_ms": round(_pct(latency.latencies, 50), 2),
        "p99_ms": round(_pct(latency.latencies, 99), 2),
    }
    print(
        f"## bench-server ({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    hashes = len(revoked) * len(REVOCATION_HASH_TYPES) + args.revocation_entries
    print(f"vaxcred serve --data (signed trust list, VN rules, {hashes:,} revocation hashes) --workers {args.workers}; requests with country VN; {args.passports} distinct "
          f"passports; {args.duration:g} s per phase\n")  # fmt: skip
    print("| passport kind | share | expected | distinct | wrong (each once) | wrong (under load) |")
    print("|---|---|---|---|---|---|")
    for kind, spec in MIX.items():
        sent, wrong, _ = census.get(kind, (0, 0, b""))
        under_load = capacity.wrong[kind] + latency.wrong[kind]
        print(f"| {kind} | {spec.share:.0%} | {spec.expected()} | {sent} | {wrong} | {under_load} |")
    print(
        "\n| phase | rate | done | errors | wrong verdicts | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, tally, target in (
        (f"capacity ({args.connections} connections, closed loop)", capacity, f"{rps:,.0f}/s achieved"),
        (f"latency at {args.load:.0%} (open loop)", latency, f"{rate:,.0f}/s scheduled"),
    ):
        values = tally.latencies
        print(
            f"| {name} | {target} | {tally.done:,} | {tally.errors} | {tally.wrong_verdicts} | "
            f"{_pct(values, 50):.2f} | {_pct(values, 90):.2f} | {_pct(values, 99):.2f} | {_pct(values, 99.9):.2f} | "
            f"{(max(values) * 1000 if values else float('nan')):.2f} |"
        )
    if latency.latencies:
        print(f"\nmean latency at {args.load:.0%}: {statistics.fmean(latency.latencies) * 1000:.2f} ms")
    census_wrong = sum(wrong for _, wrong, _ in census.values())
    for kind, (_, wrong, sample) in census.items():
        if wrong:
            print(f"wrong verdict for {kind}: {sample[:400].decode(errors='replace')}", file=sys.stderr)
    failed = (
        census_wrong or capacity.errors or latency.errors or capacity.wrong_verdicts or latency.wrong_verdicts
    )
    if failed:
        print("FAILED: errors or wrong verdicts (see the tables)", file=sys.stderr)
    print(json.dumps(result))
    if failed:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
