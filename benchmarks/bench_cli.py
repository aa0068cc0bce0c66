"""CLI start-up: wall time of ``vaxcred verify TEXT --dsc CERT`` against ``python -c "import vaxcred.verify"``.

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_cli`` (``make bench-cli``, part of ``make bench``);
``--quick`` for a short run. A real passport and its DSC are made into a temporary folder first (issued at
the current time, so the command verifies VALID without ``--at``); then the two commands run alternately,
``--runs`` times each after a warm-up, every run a fresh process, and the figure is the median wall time.
The target (issue 7) is a ratio of at most 1.5: the command line may cost at most half again what the
library's own import costs.

``--importtime`` also lists the modules the command imports beyond ``import vaxcred.verify`` (from
``python -X importtime``), largest first: what to look at when the ratio grows.

The last line of output is one JSON object (seconds and the ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred import issue, keys, vaccination_dcc

#: the ratio issue 7 asks for
TARGET_RATIO = 1.5
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _make_passport(folder: Path) -> tuple[str, Path]:
    """A VALID passport (issued now) and its DSC as PEM in ``folder``."""
    now = datetime.now(UTC)
    csca = keys.make_csca(now=now - timedelta(days=60))
    dsc = keys.make_dsc(csca, now=now - timedelta(days=1))
    dcc = vaccination_dcc(
        name="Nguyễn Văn Đức", dob="1990-05-17", vaccine="Comirnaty", dose=2, doses_total=2, date="2021-09-01"
    )
    passport = issue(dcc, dsc.signer(), now=now - timedelta(minutes=1))
    pem = folder / "dsc.pem"
    pem.write_bytes(dsc.certificate.public_bytes(Encoding.PEM))
    return passport.hc1, pem


def _wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return elapsed


def _imported(argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Module -> its own import time in µs, as ``-X importtime`` reports it for ``argv``."""
    done = subprocess.run(
        argv, capture_output=True, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, check=True, text=True
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            found[match.group(4)] = int(match.group(1))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs of each command (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs of each first (default 3)")
    parser.add_argument("--quick", action="store_true", help="5 runs, 1 warm-up: proves the harness works")
    parser.add_argument("--importtime", action="store_true", help="list what the command imports on top")
    parser.add_argument(
        "--vaxcred",
        type=Path,
        default=Path(sys.executable).with_name("vaxcred"),
        help="the console script (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    runs, warmup = (5, 1) if args.quick else (args.runs, args.warmup)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        hc1, pem = _make_passport(Path(tmp))
        command = [str(args.vaxcred), "verify", hc1, "--dsc", str(pem)]
        baseline = [sys.executable, "-c", "import vaxcred.verify"]
        floor = [sys.executable, "-c", "pass"]
        for _ in range(warmup):
            for argv_ in (command, baseline, floor):
                _wall(argv_, env)
        times: dict[str, list[float]] = {"command": [], "baseline": [], "python": []}
        for _ in range(runs):  # alternate, so that drift in the machine's load hits all alike
            times["command"].append(_wall(command, env))
            times["baseline"].append(_wall(baseline, env))
            times["python"].append(_wall(floor, env))
        extra = {}
        if args.importtime:
            mine, theirs = _imported(command, env), _imported(baseline, env)
            extra = {m: us for m, us in mine.items() if m not in theirs}

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["command"] / median["baseline"]
    labels = {
        "command": "vaxcred verify HC1 --dsc PEM",
        "baseline": 'python -c "import vaxcred.verify"',
        "python": "python -c pass",
    }
    for name, label in labels.items():
        print(f"{label:<36} {median[name] * 1000:8.1f} ms (median of {runs})")
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"ratio {ratio:.2f}x ({verdict} the target of {TARGET_RATIO}x)")
    if extra:
        print(f"imported by the command beyond vaxcred.verify: {len(extra)} modules, own time:")
        for module, us in sorted(extra.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {us / 1000:7.2f} ms  {module}")
    print(
        json.dumps(
            {
                "runs": runs,
                "command_s": round(median["command"], 4),
                "import_verify_s": round(median["baseline"], 4),
                "python_s": round(median["python"], 4),
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
            }
        )
    )


if __name__ == "__main__":
    main()
