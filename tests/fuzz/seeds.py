"""Seed corpora for the fuzz targets, from the suites in the repository (SECURITY.md §6: "suites as seeds").

* HC1 layers (``verify``, ``base45``, ``zlib``, ``cose``, ``hc1_cose``, ``cbor``, ``cwt``, ``hc1_claims``): every
  vector of test_vectors/VN (ours) and tests/data/dgc-testdata (EU), one seed per layer field;
* ``cbor`` also: RFC 8949 Appendix A (tests/data/cbor-test-vectors) and the not-well-formed items of
  tests/data/rfc8949; ``base45`` also: tests/data/rfc9285;
* ``certlogic``: every case of the CertLogic test suite (tests/data/certlogic); ``rules_gateway``: the rules
  vaxcred ships for Viet Nam (vaxcred/data/rules/VN);
* trust lists: a gateway JSON and a signed national list made from the test keys (targets.fixture());
* every target also: its past findings, tests/fuzz/regressions/<target>/ (replayed by test_fuzz.py too).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fuzz import targets
from vaxcred.codec import cose
from vaxcred.conformance import _hex
from vaxcred.errors import VaxcredError
from vaxcred.revocation import HashType, RevocationBatch
from vaxcred.trust import export_gateway_trust_list

DATA = targets.REPO / "tests" / "data"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
VECTOR_DIRS = (targets.REPO / "test_vectors" / "VN", DATA / "dgc-testdata")


def _vectors() -> Iterator[dict[str, Any]]:
    for root in VECTOR_DIRS:
        for path in sorted(root.rglob("*.json")):
            try:
                vector = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(vector, dict):
                yield vector


def _hex_field(vector: dict[str, Any], name: str) -> bytes | None:
    return _hex(vector.get(name))


def _text_field(vector: dict[str, Any], name: str) -> bytes | None:
    value = vector.get(name)
    return value.encode("utf-8") if isinstance(value, str) and value else None


def _payload(message: bytes | None) -> bytes | None:
    if message is None:
        return None
    try:
        return cose.decode_sign1(message).payload
    except VaxcredError:
        return None


def _hc1_seeds(target: str) -> Iterator[bytes | None]:
    for vector in _vectors():
        message = _hex_field(vector, "COSE")
        if target == "verify":
            yield _text_field(vector, "PREFIX")
        elif target == "base45":
            yield _text_field(vector, "BASE45")
        elif target == "zlib":
            yield _hex_field(vector, "COMPRESSED")
        elif target in ("cose", "hc1_cose"):
            yield message
        elif target in ("cwt", "hc1_claims"):
            yield _payload(message)
        elif target == "cbor":
            yield _hex_field(vector, "CBOR")
            yield message
            yield _payload(message)


def _suite_seeds(target: str) -> Iterator[bytes | None]:
    if target == "cbor":
        for item in json.loads((DATA / "cbor-test-vectors" / "appendix_a.json").read_text(encoding="utf-8")):
            yield bytes.fromhex(item["hex"])
        groups = json.loads((DATA / "rfc8949" / "not_well_formed.json").read_text(encoding="utf-8"))["groups"]
        for items in groups.values():
            yield from (bytes.fromhex(h) for h in items)
    elif target == "base45":
        suite = json.loads((DATA / "rfc9285" / "base45_vectors.json").read_text(encoding="utf-8"))
        for items in suite.values():
            if isinstance(items, list):
                yield from (i["text"].encode("utf-8") for i in items if isinstance(i, dict) and "text" in i)


def _certificates() -> Iterator[bytes | None]:
    """Our test certificates and every DSC of the vector suites (TESTCTX.CERTIFICATE, Base64 DER)."""
    for path in sorted(targets.KEYS.glob("*.pem")):
        if "TEST-ONLY" not in path.name:
            yield x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
    for vector in _vectors():
        context = vector.get("TESTCTX")
        certificate = context.get("CERTIFICATE") if isinstance(context, dict) else None
        if isinstance(certificate, str):
            try:
                yield base64.b64decode(certificate, validate=True)
            except ValueError:
                continue


def _rules_seeds(target: str) -> Iterator[bytes | None]:
    """CertLogic: every case of the CertLogic test suite as ``[expression, data]``; rules: ours for VN."""
    if target == "certlogic":
        for path in sorted((DATA / "certlogic" / "testSuite").glob("*.json")):
            suite = json.loads(path.read_text(encoding="utf-8"))
            for case in suite.get("cases", ()):
                for assertion in case.get("assertions", ()):
                    pair = [case.get("certLogicExpression"), assertion.get("data")]
                    yield json.dumps(pair, separators=(",", ":")).encode("utf-8")
    elif target == "rules_gateway":
        for path in sorted((targets.REPO / "vaxcred" / "data" / "rules" / "VN").glob("*.json")):
            yield path.read_bytes()


def _trust_seeds(target: str) -> Iterator[bytes | None]:
    if target == "x509_dsc":
        yield from _certificates()
    elif target == "revocation_batch":
        kid = cose.decode_sign1(targets.fixture().trust_list).kid
        for kid_value, hash_type in ((kid, HashType.UCI), (None, HashType.SIGNATURE)):
            entries = tuple(hashlib.sha256(bytes([i])).digest()[:16] for i in range(3))
            batch = RevocationBatch(
                country="VN", expires=targets.NOW, kid=kid_value, hash_type=hash_type, entries=entries
            )
            yield batch.to_json()
    elif target == "trust_gateway":
        yield export_gateway_trust_list(targets.national_store(), now=targets.NOW)
        yield b"[]"
    elif target == "trust_signed":
        yield targets.fixture().trust_list
    elif target == "trust_signed_payload":
        yield cose.decode_sign1(targets.fixture().trust_list).payload


def regressions(target: str) -> list[Path]:
    """The inputs that once found a bug in ``target`` (each must now end in a typed outcome)."""
    folder = REGRESSIONS / target
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _regression_seeds(target: str) -> Iterator[bytes | None]:
    for path in regressions(target):
        yield path.read_bytes()


def seeds(target: str) -> list[bytes]:
    """The distinct seeds of ``target``, in a stable order."""
    if target not in targets.TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}")
    found: dict[bytes, None] = {}
    for source in (_hc1_seeds, _suite_seeds, _rules_seeds, _trust_seeds, _regression_seeds):
        for seed in source(target):
            if seed is not None:
                found.setdefault(seed, None)
    return list(found)


def write_seeds(target: str, folder: Path) -> int:
    """Write the seeds of ``target`` into ``folder`` (named by content hash, as libFuzzer does)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = seeds(target)
    for seed in items:
        (folder / hashlib.sha1(seed, usedforsecurity=False).hexdigest()).write_bytes(seed)
    return len(items)
