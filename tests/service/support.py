"""Passports, trust files and a live ``vaxcred serve`` on loopback, for the service tests and the benchmark.

The service verifies at its own clock, so these key chains and passports are made around the real time
(tests may read the clock; the library never does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred import keys
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.issue import Issuer
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore, sign_trust_list
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.x509util import parse_dsc

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
HOLDER_FN = "Nguyễn"
HOLDER_GN = "Thị Minh Khai"
HOLDER_DOB = "1987-03-08"


def dcc(
    fn: str = HOLDER_FN, gn: str = HOLDER_GN, dob: str = HOLDER_DOB, dn: int = 2, dt: str = "2021-09-12"
) -> DCC:
    codes = VIETNAM_VACCINES["Comirnaty"]
    return DCC(
        nam=Name.create(fn=fn, gn=gn),
        dob=DateOfBirth.from_text(dob),
        entry=Vaccination(
            tg="840539006",
            vp=codes.vp,
            mp=codes.mp,
            ma=codes.ma,
            dn=dn,
            sd=2,
            dt=dt,
            co="VN",
            is_="Bộ Y tế (Ministry of Health of Viet Nam)",
            ci=generate_uvci(),
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    """A CSCA, a current DSC, an older DSC (for expired passports), a trust-list signer; made at ``now``."""

    now: datetime
    csca: keys.KeyPair
    dsc: keys.KeyPair
    old_dsc: keys.KeyPair
    stranger: keys.KeyPair  # a DSC under another CSCA, not in any trust list
    list_signer: keys.KeyPair

    @classmethod
    def make(cls, now: datetime | None = None) -> Chain:
        now = now or datetime.now(UTC)
        csca = keys.make_csca(now=now - 500 * DAY)
        return cls(
            now=now,
            csca=csca,
            dsc=keys.make_dsc(csca, now=now - DAY),
            old_dsc=keys.make_dsc(csca, now=now - 401 * DAY),
            stranger=keys.make_dsc(keys.make_csca(now=now - 10 * DAY), now=now - DAY),
            list_signer=keys.make_trust_list_signer(csca, now=now - DAY),
        )

    def valid(self, **names: str) -> str:
        return Issuer(self.dsc.signer()).issue(dcc(**names), now=self.now - MINUTE).hc1

    def expired(self) -> str:
        return Issuer(self.old_dsc.signer()).issue(dcc(), now=self.now - 400 * DAY).hc1

    def unknown_signer(self) -> str:
        return Issuer(self.stranger.signer()).issue(dcc(), now=self.now - MINUTE).hc1

    def tampered(self) -> str:
        passport = Issuer(self.dsc.signer()).issue(dcc(), now=self.now - MINUTE)
        damaged = passport.cose[:-1] + bytes([passport.cose[-1] ^ 1])
        return prefix.add_prefix(base45.b45encode(compress.compress(damaged)))

    def hand_built(self, payload: Mapping[str, Any]) -> str:
        """A correctly signed passport over any payload (no issuing-side checks): hostile names."""
        signer = self.dsc.signer()
        iat = int(self.now.timestamp()) - 60
        claims = cwt.encode_claims(iss="VN", iat=iat, exp=iat + 86_400, dcc=payload)
        protected = cose.encode_protected(int(signer.algorithm), signer.kid)
        signature = signer.sign(cose.sig_structure_for(protected, claims))
        return prefix.add_prefix(
            base45.b45encode(compress.compress(cose.encode_sign1(protected, claims, signature)))
        )

    def store(self) -> TrustStore:
        entries = [
            TrustedDsc(
                info=parse_dsc(pair.certificate.public_bytes(Encoding.DER)), country="VN", source="test"
            )
            for pair in (self.dsc, self.old_dsc)
        ]
        return TrustStore.build(
            environment=Environment.TST,
            mode=TrustMode.SIGNED_LIST,
            dscs=entries,
            cscas=[("VN", self.csca.certificate)],
            issued_at=self.now - timedelta(hours=1),  # as if from a list signed an hour ago
        )

    def write(self, directory: Path) -> dict[str, Path]:
        """csca.pem, dsc.pem, old-dsc.pem and a signed national trust list (TST) in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "csca": directory / "csca.pem",
            "dsc": directory / "dsc.pem",
            "old_dsc": directory / "old-dsc.pem",
            "trust_list": directory / "trust.cbor",
        }
        for name in ("csca", "dsc", "old_dsc"):
            pair: keys.KeyPair = getattr(self, name)
            files[name].write_bytes(pair.certificate.public_bytes(Encoding.PEM))
        listed = sign_trust_list(
            self.store(),
            signer=self.list_signer.signer(),
            issued_at=self.now - timedelta(hours=1),
            sequence=1,
        )
        files["trust_list"].write_bytes(listed)
        return files


@dataclass
class LiveServer:
    """A ``vaxcred serve`` subprocess on loopback; ``log_lines()`` reads what it wrote to stderr."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(args: Sequence[str], log_path: Path, *, timeout: float = 30) -> LiveServer:
    """Start ``vaxcred serve ARGS --port 0`` and wait until it listens and answers /healthz."""
    import httpx

    log: IO[bytes] = log_path.open("wb")
    # each server keeps its own trust rollback state (two test lists may share a sequence number)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_STATE_HOME": str(log_path.parent / "state")}
    process = subprocess.Popen(
        [sys.executable, "-m", "vaxcred", "serve", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline and process.poll() is None:
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and '"listening"' in line:
                port = json.loads(line)["port"]
        if port is not None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return LiveServer(process, port, log_path)
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    process.kill()
    process.wait(5)
    raise RuntimeError(f"vaxcred serve did not start:\n{log_path.read_text(errors='replace')}")


def serving(args: Sequence[str], log_path: Path) -> Iterator[LiveServer]:
    server = start_server(args, log_path)
    try:
        yield server
    finally:
        server.stop()
