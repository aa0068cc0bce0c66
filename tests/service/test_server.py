"""``vaxcred serve --workers 2``: both workers answer, a dead worker is replaced, SIGTERM stops all cleanly."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.service.support import Chain, start_server


def _worker_pids(log: list[str]) -> set[int]:
    pids = set()
    for line in log:
        if line.startswith("{") and "Started server process" in line:
            pids.add(int(json.loads(line)["event"].split("[")[1].rstrip("]")))
    return pids


def test_two_workers_restart_and_stop_cleanly(
    trust_files: dict[str, Path], chain: Chain, tmp_path: Path
) -> None:
    """Requests are served by both processes; a killed worker comes back; SIGTERM exits 0 leaving none."""
    server = start_server(
        ["--dsc", str(trust_files["dsc"]), "--environment", "TST", "--workers", "2"], tmp_path / "log"
    )
    try:
        deadline = time.monotonic() + 20
        while len(_worker_pids(server.log_lines())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = _worker_pids(server.log_lines())
        assert len(first) == 2
        hc1 = chain.valid()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert all(
                client.post("/verify", json={"qr": hc1}).json()["status"] == "VALID" for _ in range(20)
            )
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        while len(_worker_pids(server.log_lines())) < 3 and time.monotonic() < deadline + 20:
            time.sleep(0.05)
        assert len(_worker_pids(server.log_lines()) - first) == 1
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        code = server.stop()
    assert code == 0
    for pid in _worker_pids(server.log_lines()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_serve_refuses_a_busy_port(trust_files: dict[str, Path], tmp_path: Path) -> None:
    """A port in use is a usage error (exit 3) with a clear message, not a traceback."""
    from vaxcred.cli import main
    from vaxcred.service.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        code = main(["serve", "--dsc", str(trust_files["dsc"]), "--port", str(port), "--environment", "TST"])
    finally:
        sock.close()
    assert code == 3


def test_serve_needs_trust(tmp_path: Path) -> None:
    from vaxcred.cli import main

    assert main(["serve", "--port", "0"]) == 3
