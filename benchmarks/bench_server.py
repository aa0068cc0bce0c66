"""``make bench-server``: ``vaxcred serve --workers 2`` under a load generator on loopback.

Real passports (a fresh key chain, a signed national trust list, so the ``chain`` step runs) in a fixed mix:
valid, expired, forged signature, unknown signer (revoked and rule-failing ones join the mix once those
steps exist). Each response is checked against the verdict its passport must get.

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
from dataclasses import dataclass, field
from pathlib import Path

from tests.service.support import Chain, start_server

#: passport kind -> (share of the mix, the verdict it must get)
MIX: dict[str, tuple[float, bytes]] = {
    "valid": (0.70, b"VALID"),
    "expired": (0.10, b"INVALID"),
    "forged": (0.10, b"INVALID"),
    "unknown_signer": (0.10, b"INVALID"),
}
_STATUS_AT = len(b'{"status":"')


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wrong_verdicts: int = 0
    done: int = 0


def _requests(chain: Chain, count: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``count`` pre-built HTTP requests in the mix, each with the verdict it must get."""
    makers = {
        "valid": chain.valid,
        "expired": chain.expired,
        "forged": chain.tampered,
        "unknown_signer": chain.unknown_signer,
    }
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=[share for share, _ in MIX.values()], k=count)
    built = []
    for kind in kinds:
        body = json.dumps({"qr": makers[kind]()}).encode()
        head = (
            b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        built.append((head + body, MIX[kind][1]))
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


def _check(body: bytes, expected: bytes, tally: Tally) -> None:
    if body[_STATUS_AT : _STATUS_AT + len(expected) + 1] != expected + b'"':
        tally.wrong_verdicts += 1


async def _closed_loop(
    port: int, requests: list[tuple[bytes, bytes]], connections: int, duration: float
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
    port: int, requests: list[tuple[bytes, bytes]], rate: float, duration: float, pool: int
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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (default 15)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections (phase 1)")
    parser.add_argument("--passports", type=int, default=400, help="distinct passports in the mix")
    parser.add_argument("--load", type=float, default=0.8, help="phase 2 rate as a share of phase 1")
    args = parser.parse_args(argv)

    chain = Chain.make()
    requests = _requests(chain, args.passports)
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        files = chain.write(Path(tmp) / "trust")
        server = start_server(
            [
                "--trust-list", str(files["trust_list"]), "--anchor", str(files["csca"]),
                "--environment", "TST", "--workers", str(args.workers),
            ],
            Path(tmp) / "server.log",
        )  # fmt: skip
        try:
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
    mix = ", ".join(f"{share:.0%} {kind}" for kind, (share, _) in MIX.items())
    print(
        f"## bench-server ({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    print(f"vaxcred serve --workers {args.workers}, signed trust list (chain checked); mix: {mix}; "
          f"{args.passports} distinct passports; {args.duration:g} s per phase\n")  # fmt: skip
    print("| phase | rate | done | errors | wrong verdicts | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
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
    if capacity.errors or latency.errors or capacity.wrong_verdicts or latency.wrong_verdicts:
        print("WARNING: errors or wrong verdicts (see the table)", file=sys.stderr)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
