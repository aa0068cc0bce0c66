"""The codec layers against real certificates: dgc-testdata and the Vietnamese production QR.

Data vendored under tests/data/ (dgc-testdata: Apache-2.0, see its LICENSE and SOURCE_COMMIT.txt;
vietnam: see its SOURCE.txt).  The full per-flag conformance run lives in tests/conformance/; this file
checks only what the codec decides: prefix, base45, zlib, COSE structure and CWT claims.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vaxcred.codec.base45 import b45decode
from vaxcred.codec.compress import decompress
from vaxcred.codec.cose import Algorithm, decode_sign1
from vaxcred.codec.cwt import decode_claims
from vaxcred.codec.prefix import strip_prefix
from vaxcred.errors import DecodeError

DATA = Path(__file__).parents[1] / "data"
DGC = DATA / "dgc-testdata"
VECTORS = sorted(DGC.glob("*/2DCode/*/*.json"))

# Vectors whose COSE field the codec rejects, with the code and the upstream expectation:
#   common/2DCode/raw/CBO2.json  425 bytes follow the COSE_Sign1 ("INVALID: wrong CWT structure");
#                                upstream sets only EXPECTEDVERIFY: false.
DECODE_FAILURES = {"common/2DCode/raw/CBO2.json": "cbor.trailing_bytes"}


def _name(path: Path) -> str:
    return path.relative_to(DGC).as_posix()


def _load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def test_the_dgc_testdata_subset_is_present() -> None:
    """The vendored vectors are there (140 files, 128 with a COSE field)."""
    assert len(VECTORS) == 140
    assert sum("COSE" in _load(p) for p in VECTORS) == 128


@pytest.mark.parametrize("path", [p for p in VECTORS if "COSE" in _load(p)], ids=_name)
def test_dgc_vector_cose_and_claims_decode(path: Path) -> None:
    """decode_sign1 + decode_claims succeed on every COSE field except the listed failures."""
    vector = _load(path)
    name = _name(path)
    cose = bytes.fromhex(vector["COSE"])
    if name in DECODE_FAILURES:
        with pytest.raises(DecodeError) as info:
            decode_claims(decode_sign1(cose).payload)
        assert info.value.code == DECODE_FAILURES[name]
        assert vector["EXPECTEDRESULTS"].get("EXPECTEDDECODE") is not True
        assert vector["EXPECTEDRESULTS"].get("EXPECTEDVERIFY") is not True
        return
    claims = decode_claims(decode_sign1(cose).payload)
    if vector.get("EXPECTEDRESULTS", {}).get("EXPECTEDDECODE") is True and "JSON" in vector:
        assert claims.dcc == vector["JSON"]


def _layer(flag: str, vector: dict[str, Any]) -> tuple[bool, bytes | str | None]:
    """Run the layer a flag tests; return (failed, output)."""
    try:
        if flag == "EXPECTEDUNPREFIX":
            return False, strip_prefix(vector["PREFIX"])
        if flag == "EXPECTEDB45DECODE":
            return False, b45decode(vector["BASE45"])
        return False, decompress(bytes.fromhex(vector["COMPRESSED"]))
    except DecodeError:
        return True, None


LAYERS = {
    "EXPECTEDUNPREFIX": ("PREFIX", "BASE45"),
    "EXPECTEDB45DECODE": ("BASE45", "COMPRESSED"),
    "EXPECTEDCOMPRESSION": ("COMPRESSED", "COSE"),
}
LAYER_CASES = [
    (path, flag)
    for path in VECTORS
    for flag, (source, _) in LAYERS.items()
    if flag in _load(path).get("EXPECTEDRESULTS", {}) and source in _load(path)
]


@pytest.mark.parametrize(("path", "flag"), LAYER_CASES, ids=[f"{_name(p)}-{f}" for p, f in LAYER_CASES])
def test_dgc_vector_layer_agrees_with_its_flag(path: Path, flag: str) -> None:
    """prefix, base45 and zlib succeed (and match the next field) exactly when the flag says so."""
    vector = _load(path)
    expected = vector["EXPECTEDRESULTS"][flag]
    failed, output = _layer(flag, vector)
    target = LAYERS[flag][1]
    if target in vector and output is not None:
        wanted = vector[target] if target == "BASE45" else bytes.fromhex(vector[target])
        matches = output == wanted
    else:
        matches = not failed
    assert matches is expected


def test_vietnamese_production_qr_decodes_through_every_layer() -> None:
    """The real VN passport (PS256, RSA-2048) passes prefix, base45, zlib, COSE and CWT decoding."""
    text = (DATA / "vietnam" / "VAC_VN.qr.txt").read_text(encoding="utf-8")
    msg = decode_sign1(decompress(b45decode(strip_prefix(text))))
    assert msg.alg == Algorithm.PS256
    assert msg.kid == bytes.fromhex("f30da46716f7882d")
    assert msg.kid_in_protected
    assert len(msg.signature) == 256
    claims = decode_claims(msg.payload)
    assert claims.iss == "VN"
    assert claims.iat < claims.exp
    assert set(claims.dcc) == {"ver", "nam", "dob", "v"}


def test_vietnamese_production_qr_carries_the_documented_fields() -> None:
    """The real VN passport decodes to the fields DCC.md §10 documents (times, codes, UVCI shape, names)."""
    import re
    from datetime import UTC, datetime

    from vaxcred.model import transliterate
    from vaxcred.schema import validate_dcc

    text = (DATA / "vietnam" / "VAC_VN.qr.txt").read_text(encoding="utf-8")
    assert len(text) == 825
    claims = decode_claims(decode_sign1(decompress(b45decode(strip_prefix(text)))).payload)
    assert datetime.fromtimestamp(claims.iat, UTC) == datetime(2022, 4, 14, 15, 38, 7, tzinfo=UTC)
    assert datetime.fromtimestamp(claims.exp, UTC) == datetime(2025, 1, 30, tzinfo=UTC)
    dcc = claims.dcc
    assert dcc["ver"] == "1.3.0"
    (entry,) = dcc["v"]
    assert {k: entry[k] for k in ("tg", "vp", "mp", "ma", "dn", "sd", "co", "is")} == {
        "tg": "840539006",
        "vp": "J07BX03",
        "mp": "EU/1/21/1529",
        "ma": "ORG-100030215",
        "dn": 2,
        "sd": 2,
        "co": "VN",
        "is": "Ban Co Yeu",
    }
    assert re.fullmatch(r"URN:UVCI:01:VN:[0-9A-F]{32}", entry["ci"])
    nam = dcc["nam"]
    assert nam["fnt"] == transliterate(nam["fn"])
    assert nam["gnt"] == transliterate(nam["gn"])
    assert nam["gnt"].count("<") == 1
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", dcc["dob"])
    validate_dcc(dcc)  # J07BX03 and the Vaxzevria/BioNTech pairing are rules findings, not schema failures
