"""Core throughput: raw pyca/cryptography vs vaxcred vs pycose 1.1.0 vs python-cwt, one process, one core.

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_core`` (``make bench``); ``--quick`` for a
short run.  Every figure is operations per second, the best of several rounds of a ``time.perf_counter``
loop after a warm-up, each round long enough (~0.3 s; ~1.5 s per measurement) to swamp timer noise.

What each row does per operation:

- raw sign / verify: ``key.sign`` / ``public_key.verify`` of pyca/cryptography over a message the size
  of an HC1 Sig_structure (ES256 DER signature; PS256 salt 32) — the floor any HC1 library sits on;
- vaxcred issue: ``Issuer(signer).issue(dcc, now=...)`` with one reused Issuer (a batch issuer), over a
  pool of distinct DCCs; every check runs (value sets, Annex A, schema, EKU, DSC validity and key usage
  period); "one-shot" is the module function ``issue()``, which builds an Issuer each call;
- vaxcred verify: ``verify(hc1, store, now=...)`` → VALID on a pool of distinct passports, with a trust
  store of 200 DSCs (bare-DSC mode: ``chain`` skipped, as the oracles do not check chains either): prefix,
  Base45, zlib, COSE, kid lookup, signature, time, EKU, schema;
- pycose: claims CBOR (cbor2) → ``Sign1Message`` ES256 sign + encode → zlib → ``base45`` package → prefix;
  verify: strip → base45 → zlib → ``Sign1Message.decode`` → ``verify_signature`` → ``cbor2.loads`` claims;
- python-cwt: ``cwt.encode_and_sign`` → zlib → base45 → prefix; verify: strip → base45 → zlib →
  ``cwt.decode`` with the key from ``load_pem_hcert_dsc`` (which checks ``exp`` against the wall clock).

The last line of output is one JSON object (ops/s and ratios), read by ``benchmarks/chart.py``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import random
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

import base45
import cbor2
import cryptography
import cwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

from vaxcred import keys, schema
from vaxcred.codec import cose
from vaxcred.issue import Issuer, issue
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.result import Status
from vaxcred.schema import validation as schema_validation
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.verify import verify

NOW = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
POOL = 256  # distinct DCCs / passports cycled through (no per-payload caching can help)
TRUSTED_DSCS = 200

SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Ngô")
GIVEN = ("Văn Đức", "Thị Thu Hương", "Thùy Dương", "Thị Mỹ Lệ", "Đình Quốc Bảo", "Minh Khoa", "Ngọc Ánh")


# --- timing ------------------------------------------------------------------------------------------


def ops_per_second(fn: Callable[[], object], *, seconds: float, rounds: int) -> float:
    """Best-of-``rounds`` ops/s; each round runs ``fn`` for about ``seconds / rounds``."""
    for _ in range(3):  # warm-up
        fn()
    # calibrate: how many calls fill one round
    n, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        n *= 4
    per_round = max(1, int(n * (seconds / rounds) / elapsed))
    best = float("inf")
    gc.collect()  # start every measurement from the same heap; the collector stays on (real-world cost)
    for _ in range(rounds):
        loop = range(per_round)
        start = time.perf_counter()
        for _ in loop:
            fn()
        best = min(best, (time.perf_counter() - start) / per_round)
    return 1.0 / best


# --- fixtures ----------------------------------------------------------------------------------------


def make_dccs(count: int, rng: random.Random) -> list[DCC]:
    products = sorted(VIETNAM_VACCINES)
    out = []
    for i in range(count):
        codes = VIETNAM_VACCINES[products[i % len(products)]]
        sd = rng.randint(1, 3)
        entry = Vaccination(
            tg="840539006",
            vp=codes.vp,
            mp=codes.mp,
            ma=codes.ma,
            dn=rng.randint(1, sd),
            sd=sd,
            dt=f"2021-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            co="VN",
            is_="Ministry of Health of Viet Nam",
            ci=generate_uvci(rng=rng),
        )
        out.append(
            DCC(
                nam=Name.create(fn=rng.choice(SURNAMES), gn=rng.choice(GIVEN)),
                dob=DateOfBirth.from_text(
                    f"{rng.randint(1930, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                ),
                entry=entry,
            )
        )
    return out


def cycle(items: list[Any]) -> Callable[[], Any]:
    return itertools.cycle(items).__next__


def pycose_private(key: ec.EllipticCurvePrivateKey) -> EC2Key:
    n = key.private_numbers()
    return EC2Key(
        crv=P256,
        d=n.private_value.to_bytes(32, "big"),
        x=n.public_numbers.x.to_bytes(32, "big"),
        y=n.public_numbers.y.to_bytes(32, "big"),
    )


def pycose_public(key: ec.EllipticCurvePublicKey) -> EC2Key:
    n = key.public_numbers()
    return EC2Key(crv=P256, x=n.x.to_bytes(32, "big"), y=n.y.to_bytes(32, "big"))


def hc1_wrap(cose_bytes: bytes) -> str:
    return "HC1:" + base45.b45encode(zlib.compress(cose_bytes, 9)).decode("ascii")


def hc1_unwrap(hc1: str) -> bytes:
    if not hc1.startswith("HC1:"):
        raise ValueError("no HC1 prefix")
    return zlib.decompress(base45.b45decode(hc1[4:]))


# --- the run -----------------------------------------------------------------------------------------


def run(*, seconds: float, rounds: int, verbose: bool = True) -> dict[str, Any]:
    rng = random.Random(20260110)
    csca = keys.make_csca(now=NOW)
    dsc = keys.make_dsc(csca, now=NOW)
    rsa_csca = keys.make_csca(now=NOW, key="rsa")
    rsa_dsc = keys.make_dsc(rsa_csca, now=NOW, key="rsa")
    others = [keys.make_dsc(csca, now=NOW) for _ in range(TRUSTED_DSCS - 2)]
    store = TrustStore.from_dsc_certificates(
        [p.certificate.public_bytes(Encoding.DER) for p in (*others[:100], dsc, rsa_dsc, *others[100:])]
    )
    assert sum(len(v) for v in store.dscs.values()) == TRUSTED_DSCS
    # the deployed case: a signed national trust list, so `chain` (DSC -> CSCA) is checked on every call
    chain_store = TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.SIGNED_LIST,
        dscs=[TrustedDsc(info=d.info, country="VN", source="bench") for d in store.all_dscs()],
        cscas=[("VN", csca.certificate), ("VN", rsa_csca.certificate)],
        issued_at=NOW,  # fresh at verify_now (the default 72-hour bound applies)
        sequence=1,
    )
    signer, rsa_signer = dsc.signer(), rsa_dsc.signer()
    issuer, rsa_issuer = Issuer(signer), Issuer(rsa_signer)
    dccs = make_dccs(POOL, rng)
    passports = [issuer.issue(d, now=NOW).hc1 for d in dccs]
    rsa_passports = [rsa_issuer.issue(d, now=NOW).hc1 for d in dccs[:32]]
    verify_now = NOW + timedelta(days=1)
    for hc1 in (*passports, *rsa_passports):
        result = verify(hc1, store, now=verify_now)
        assert result.status is Status.VALID, result.failures
        chained = verify(hc1, chain_store, now=verify_now)
        assert chained.status is Status.VALID, chained.failures
        assert chained.step("chain").result.value == "pass"

    # the raw floor: a message of exactly the Sig_structure size of a real passport
    sig_structure = cose.sig_structure(cose.decode_sign1(issuer.issue(dccs[0], now=NOW).cose))
    ec_key = dsc.private_key
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    ec_pub = ec_key.public_key()
    ecdsa = ec.ECDSA(hashes.SHA256())
    der_sig = ec_key.sign(sig_structure, ecdsa)
    rsa_key = rsa_dsc.private_key
    rsa_pub = rsa_key.public_key()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    sha256 = hashes.SHA256()
    pss_sig = rsa_key.sign(sig_structure, pss, sha256)  # type: ignore[call-arg]

    # pycose (test oracle)
    pc_priv, pc_pub = pycose_private(ec_key), pycose_public(ec_pub)
    kid = signer.kid
    iat = int(NOW.timestamp())
    exp = iat + 365 * 86400
    jsons = [d.to_json() for d in dccs]

    def pycose_issue(dcc_json: dict[str, Any]) -> str:
        claims = cbor2.dumps({1: "VN", 4: exp, 6: iat, -260: {1: dcc_json}})
        msg = Sign1Message(phdr={Algorithm: Es256, KID: kid}, payload=claims)
        msg.key = pc_priv
        return hc1_wrap(msg.encode())

    def pycose_verify(hc1: str) -> Any:
        msg = Sign1Message.decode(hc1_unwrap(hc1))
        msg.key = pc_pub
        if not msg.verify_signature():
            raise AssertionError("pycose: signature does not verify")
        return cbor2.loads(msg.payload)

    pycose_passports = [pycose_issue(j) for j in jsons]
    for hc1 in pycose_passports[:4]:
        pycose_verify(hc1)
        assert verify(hc1, store, now=verify_now).status is Status.VALID

    # python-cwt (test oracle): exp is checked against the wall clock, so issue around the real now
    pem = ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    cwt_priv = cwt.COSEKey.from_pem(pem, alg="ES256", kid=kid)
    cwt_pub = cwt.load_pem_hcert_dsc(dsc.certificate.public_bytes(Encoding.PEM).decode("ascii"))
    wall = int(time.time())

    def cwt_issue(dcc_json: dict[str, Any]) -> str:
        claims = {1: "VN", 4: wall + 365 * 86400, 6: wall, -260: {1: dcc_json}}
        return hc1_wrap(cwt.encode_and_sign(claims, cwt_priv))

    def cwt_verify(hc1: str) -> Any:
        return cwt.decode(hc1_unwrap(hc1), keys=[cwt_pub])

    cwt_passports = [cwt_issue(j) for j in jsons]
    for hc1 in cwt_passports[:4]:
        cwt_verify(hc1)

    # jsonschema vs the compiled validator, one DCC
    import jsonschema
    import referencing
    from referencing.jsonschema import DRAFT202012

    documents = schema_validation.load_schema_documents("1.3.0")
    root = documents.pop("")
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (uri, DRAFT202012.create_resource(doc)) for uri, doc in documents.items()
    )
    validator = jsonschema.Draft202012Validator(root, registry=registry)
    assert validator.is_valid(jsons[0])

    d_next, j_next = cycle(dccs), cycle(jsons)
    p_next, rp_next = cycle(passports), cycle(rsa_passports)
    pc_next, cw_next = cycle(pycose_passports), cycle(cwt_passports)
    rsa_dccs = cycle(dccs)
    one = jsons[0]
    validate = schema.validate_dcc

    cases: list[tuple[str, Callable[[], object], float]] = [
        ("raw_sign", lambda: ec_key.sign(sig_structure, ecdsa), 1.0),
        ("raw_verify", lambda: ec_pub.verify(der_sig, sig_structure, ecdsa), 1.0),
        ("vaxcred_issue", lambda: issuer.issue(d_next(), now=NOW), 1.0),
        ("vaxcred_issue_oneshot", lambda: issue(d_next(), signer, now=NOW), 1.0),
        ("vaxcred_verify", lambda: verify(p_next(), store, now=verify_now), 1.0),
        ("vaxcred_verify_chain", lambda: verify(p_next(), chain_store, now=verify_now), 1.0),
        ("pycose_issue", lambda: pycose_issue(j_next()), 1.0),
        ("pycose_verify", lambda: pycose_verify(pc_next()), 1.0),
        ("cwt_issue", lambda: cwt_issue(j_next()), 1.0),
        ("cwt_verify", lambda: cwt_verify(cw_next()), 1.0),
        ("raw_sign_ps256", lambda: rsa_key.sign(sig_structure, pss, sha256), 0.5),  # type: ignore[call-arg]
        ("raw_verify_ps256", lambda: rsa_pub.verify(pss_sig, sig_structure, pss, sha256), 0.5),  # type: ignore[call-arg]
        ("vaxcred_issue_ps256", lambda: rsa_issuer.issue(rsa_dccs(), now=NOW), 0.5),
        ("vaxcred_verify_ps256", lambda: verify(rp_next(), store, now=verify_now), 0.5),
        ("jsonschema_validate", lambda: validator.is_valid(one), 0.5),
        ("compiled_validate", lambda: validate(one), 0.5),
    ]
    ops: dict[str, float] = {}
    for name, fn, weight in cases:
        ops[name] = ops_per_second(fn, seconds=seconds * weight, rounds=rounds)
        if verbose:
            print(f"  measured {name:24s} {ops[name]:12,.0f} ops/s", file=sys.stderr, flush=True)
    return ops


def report(ops: dict[str, float]) -> dict[str, Any]:
    def ratio(a: str, b: str) -> float:
        return round(ops[a] / ops[b], 3)

    return {
        "raw_sign_ops": round(ops["raw_sign"]),
        "raw_verify_ops": round(ops["raw_verify"]),
        "vaxcred_issue_ops": round(ops["vaxcred_issue"]),
        "vaxcred_issue_oneshot_ops": round(ops["vaxcred_issue_oneshot"]),
        "vaxcred_verify_ops": round(ops["vaxcred_verify"]),
        "vaxcred_verify_chain_ops": round(ops["vaxcred_verify_chain"]),
        "pycose_issue_ops": round(ops["pycose_issue"]),
        "pycose_verify_ops": round(ops["pycose_verify"]),
        "cwt_issue_ops": round(ops["cwt_issue"]),
        "cwt_verify_ops": round(ops["cwt_verify"]),
        "raw_sign_ps256_ops": round(ops["raw_sign_ps256"]),
        "raw_verify_ps256_ops": round(ops["raw_verify_ps256"]),
        "vaxcred_issue_ps256_ops": round(ops["vaxcred_issue_ps256"]),
        "vaxcred_verify_ps256_ops": round(ops["vaxcred_verify_ps256"]),
        "jsonschema_validate_ops": round(ops["jsonschema_validate"]),
        "compiled_validate_ops": round(ops["compiled_validate"]),
        "issue_vs_raw_sign": ratio("vaxcred_issue", "raw_sign"),
        "issue_oneshot_vs_raw_sign": ratio("vaxcred_issue_oneshot", "raw_sign"),
        "verify_vs_raw_verify": ratio("vaxcred_verify", "raw_verify"),
        "verify_chain_vs_raw_verify": ratio("vaxcred_verify_chain", "raw_verify"),
        "issue_vs_pycose": ratio("vaxcred_issue", "pycose_issue"),
        "verify_vs_pycose": ratio("vaxcred_verify", "pycose_verify"),
        "issue_vs_cwt": ratio("vaxcred_issue", "cwt_issue"),
        "verify_vs_cwt": ratio("vaxcred_verify", "cwt_verify"),
        "issue_ps256_vs_raw_sign_ps256": ratio("vaxcred_issue_ps256", "raw_sign_ps256"),
        "verify_ps256_vs_raw_verify_ps256": ratio("vaxcred_verify_ps256", "raw_verify_ps256"),
        "compiled_vs_jsonschema": ratio("compiled_validate", "jsonschema_validate"),
    }


ROWS = (
    ("ES256", "raw cryptography sign", "raw_sign", "raw_sign"),
    ("ES256", "vaxcred issue (Issuer reused)", "vaxcred_issue", "raw_sign"),
    ("ES256", "vaxcred issue() one-shot", "vaxcred_issue_oneshot", "raw_sign"),
    ("ES256", "pycose 1.1.0 issue", "pycose_issue", "raw_sign"),
    ("ES256", "python-cwt issue", "cwt_issue", "raw_sign"),
    ("ES256", "raw cryptography verify", "raw_verify", "raw_verify"),
    ("ES256", "vaxcred verify (200 DSCs)", "vaxcred_verify", "raw_verify"),
    ("ES256", "vaxcred verify, chain checked", "vaxcred_verify_chain", "raw_verify"),
    ("ES256", "pycose 1.1.0 verify", "pycose_verify", "raw_verify"),
    ("ES256", "python-cwt verify", "cwt_verify", "raw_verify"),
    ("PS256", "raw cryptography sign", "raw_sign_ps256", "raw_sign_ps256"),
    ("PS256", "vaxcred issue (Issuer reused)", "vaxcred_issue_ps256", "raw_sign_ps256"),
    ("PS256", "raw cryptography verify", "raw_verify_ps256", "raw_verify_ps256"),
    ("PS256", "vaxcred verify (200 DSCs)", "vaxcred_verify_ps256", "raw_verify_ps256"),
    ("schema", "jsonschema 1.3.0, one DCC", "jsonschema_validate", "jsonschema_validate"),
    ("schema", "vaxcred compiled validate_dcc", "compiled_validate", "jsonschema_validate"),
)


def table(ops: dict[str, float]) -> str:
    lines = [
        f"{'alg':7s} {'implementation':32s} {'ops/s':>10s} {'µs/op':>9s} {'vs raw/base':>12s}",
        "-" * 74,
    ]
    for alg, label, key, base in ROWS:
        lines.append(
            f"{alg:7s} {label:32s} {ops[key]:10,.0f} {1e6 / ops[key]:9.1f} {ops[key] / ops[base]:11.1%}"
        )
    return "\n".join(lines)


def environment() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from cryptography.hazmat.backends.openssl import backend

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (
        f"CPU {model}; pinned to cores {affinity}; Python {platform.python_version()}; "
        f"cryptography {cryptography.__version__} ({backend.openssl_version_text()}); "
        f"cbor2 {metadata.version('cbor2')}, pycose {metadata.version('pycose')}, "
        f"python-cwt {metadata.version('cwt')}, base45 {metadata.version('base45')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (~0.15 s per measurement)")
    args = parser.parse_args(argv)
    seconds, rounds = (0.15, 3) if args.quick else (1.5, 5)
    print(environment())
    ops = run(seconds=seconds, rounds=rounds)
    print()
    print(table(ops))
    summary = report(ops)
    print()
    print(
        f"issue  = {summary['issue_vs_raw_sign']:.0%} of raw sign (target >= 50%), "
        f"{summary['issue_vs_pycose']:.1f}x pycose, {summary['issue_vs_cwt']:.1f}x python-cwt"
    )
    print(
        f"verify = {summary['verify_vs_raw_verify']:.0%} of raw verify (target >= 50%), "
        f"{summary['verify_vs_pycose']:.1f}x pycose, {summary['verify_vs_cwt']:.1f}x python-cwt"
    )
    print(json.dumps(summary, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
