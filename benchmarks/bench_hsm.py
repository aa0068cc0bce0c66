"""Signing on a PKCS#11 token vs with a key in memory: ES256 and PS256, bare signatures and whole passports.

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_hsm`` (``make bench-hsm``); ``--quick`` for a short
run. By default a throwaway SoftHSM2 token is initialised in a temporary folder (``softhsm2-util``, Debian's
``softhsm2``); for a real HSM set ``PKCS11_MODULE``, ``PKCS11_TOKEN`` and ``VAXCRED_PKCS11_PIN`` (the benchmark
then generates four keys labelled ``vaxcred bench …`` on that token and leaves them there).

Rows, each in operations per second (``benchmarks.bench_core.ops_per_second``: best of several rounds after a warm-up):

- ``sign``: ``Signer.sign`` over a 300-byte message (an HC1 Sig_structure's size) — ``LocalSigner`` (OpenSSL
  through pyca/cryptography) vs ``ExternalSigner`` over the token (one session, one login; ES256 hashes here
  and signs ``CKM_ECDSA`` on the token, PS256 is ``CKM_SHA256_RSA_PKCS_PSS``);
- ``issue``: ``Issuer(signer).issue(dcc, now=…)``, every issuing check included, over a pool of DCCs.

SoftHSM2 is software: its figures show the PKCS#11 call overhead, not an HSM's speed. A network HSM adds a
round trip per signature; the batch issuer's worker processes (one token session each) are how issuance scales.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_core import NOW, cycle, make_dccs, ops_per_second
from vaxcred import keys
from vaxcred.crypto import Signer
from vaxcred.issue import Issuer

_MESSAGE = bytes(range(256)) + bytes(44)
_BENCH_PIN = "bench-pin-1234"


def _softhsm(folder: Path) -> keys.TokenConfig:
    modules = [p for p in ("/usr/lib/softhsm/libsofthsm2.so",) if Path(p).exists()]
    modules += [str(p) for p in Path("/usr/lib").glob("*/softhsm/libsofthsm2.so")]
    if not modules or shutil.which("softhsm2-util") is None:
        sys.exit("SoftHSM2 is missing: apt-get install softhsm2 (or set PKCS11_MODULE / PKCS11_TOKEN)")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            _BENCH_PIN,
            "--so-pin",
            "97531",
        ],
        check=True,
        capture_output=True,
    )
    return keys.TokenConfig(module=modules[0], token_label="bench")


def _signers(token: keys.Pkcs11Token, key_type: str) -> dict[str, Signer]:
    csca = keys.make_csca(now=NOW - timedelta(days=60))
    on_token = keys.make_dsc(
        csca,
        now=NOW - timedelta(days=1),
        private_key=token.generate(key_type, label=f"vaxcred bench {key_type}"),
    )
    in_memory = keys.make_dsc(csca, now=NOW - timedelta(days=1), key="rsa" if key_type == "rsa" else "ec")
    return {"file": in_memory.signer(), "token": on_token.signer()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round per row (checks that it runs)")
    args = parser.parse_args()
    rounds, seconds = (1, 0.05) if args.quick else (5, 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        if os.environ.get("PKCS11_MODULE"):
            config = keys.TokenConfig(
                module=os.environ["PKCS11_MODULE"], token_label=os.environ["PKCS11_TOKEN"]
            )
            pin = keys.pin_from_env()
        else:
            config, pin = _softhsm(Path(tmp)), _BENCH_PIN.encode()
        results: dict[str, Any] = {}
        next_dcc = cycle(make_dccs(256, random.Random(2021)))
        with keys.Pkcs11Token.open(config, pin) as token:
            for alg, key_type in (("ES256", "ec"), ("PS256", "rsa")):
                for where, signer in _signers(token, key_type).items():
                    issuer = Issuer(signer)

                    def sign(s: Signer = signer) -> bytes:
                        return s.sign(_MESSAGE)

                    def issue(i: Issuer = issuer) -> object:
                        return i.issue(next_dcc(), now=NOW)

                    signed = ops_per_second(sign, seconds=seconds, rounds=rounds)
                    issued = ops_per_second(issue, seconds=seconds, rounds=rounds)
                    results[f"{alg} sign {where}"] = round(signed)
                    results[f"{alg} issue {where}"] = round(issued)
                    print(f"{alg} {where:<5}  sign {signed:>10,.0f}/s   issue {issued:>9,.0f}/s")
        for alg in ("ES256", "PS256"):
            results[f"{alg} sign token/file"] = round(
                results[f"{alg} sign token"] / results[f"{alg} sign file"], 3
            )
        results["module"] = config.module
        results["python"] = platform.python_version()
        results["quick"] = args.quick
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
