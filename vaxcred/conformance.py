"""Run test vectors in the dgc-testdata JSON format (EU ``dgc-testdata`` and vaxcred's ``test_vectors/``).

Each vector file carries the layers of one passport (``PREFIX`` … ``COSE``, ``CBOR``, ``JSON``, ``2DCODE``),
a ``TESTCTX`` (the DSC in ``CERTIFICATE``, the ``VALIDATIONCLOCK``) and ``EXPECTEDRESULTS`` flags. Every flag
maps to a verify step and, where it names two layers, a comparison (DCC.md §8):

* ``true``: every mapped step passes and the comparison holds;
* ``false``: a mapped step fails, an earlier step failed, or the comparison differs.

The trust store is the one DSC in ``CERTIFICATE`` (no CSCA: ``chain`` is skipped).
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vaxcred import errors, schema
from vaxcred.codec import base45, cbor, compress, cose, cwt, prefix
from vaxcred.result import StepResult, VerificationResult
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

__all__ = ["FLAGS", "FlagOutcome", "VectorOutcome", "parse_clock", "run_vector"]

#: flag -> the verify steps it maps to
FLAGS: dict[str, tuple[str, ...]] = {
    "EXPECTEDUNPREFIX": ("prefix",),
    "EXPECTEDB45DECODE": ("prefix", "base45"),
    "EXPECTEDCOMPRESSION": ("prefix", "base45", "zlib"),
    "EXPECTEDDECODE": ("prefix", "base45", "zlib", "cose"),
    "EXPECTEDVERIFY": ("prefix", "base45", "zlib", "cose", "kid", "signature"),
    "EXPECTEDEXPIRATIONCHECK": ("prefix", "base45", "zlib", "cose", "kid", "signature", "time"),
    "EXPECTEDKEYUSAGE": ("prefix", "base45", "zlib", "cose", "kid", "signature", "key_usage"),
    "EXPECTEDSCHEMAVALIDATION": ("prefix", "base45", "zlib", "cose", "kid", "signature", "schema"),
    "EXPECTEDVALIDJSON": (),
    "EXPECTEDVALIDOBJECT": (),
    "EXPECTEDENCODE": (),
    "EXPECTEDPICTUREDECODE": (),
}
#: misspelled upstream flags: ignored on purpose, never guessed
IGNORED_FLAGS = frozenset({"EXPTECTEDEXPIRED"})

_CLOCK = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$", re.ASCII
)


def parse_clock(text: str) -> datetime:
    """Parse a ``VALIDATIONCLOCK``: ``Z``, ``±hh:mm`` or no zone (UTC), 0–9 fractional digits."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"unparseable VALIDATIONCLOCK {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    tz = UTC
    moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment = moment - sign * offset
    return moment


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagOutcome:
    flag: str
    expected: bool
    actual: bool | None  # None: not applicable (a field it needs is missing)
    detail: str

    @property
    def agrees(self) -> bool:
        return self.actual is None or self.actual == self.expected


@dataclass(frozen=True, slots=True, kw_only=True)
class VectorOutcome:
    flags: tuple[FlagOutcome, ...]
    result: VerificationResult | None
    unknown_keys: tuple[str, ...]

    @property
    def agrees(self) -> bool:
        return all(f.agrees for f in self.flags)

    def disagreements(self) -> tuple[FlagOutcome, ...]:
        return tuple(f for f in self.flags if not f.agrees)


def _hex(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _expected_flags(vector: Mapping[str, Any]) -> tuple[dict[str, bool], list[str]]:
    flags: dict[str, bool] = {}
    unknown: list[str] = []
    nested = vector.get("EXPECTEDRESULTS")
    sources: list[Mapping[str, Any]] = [vector]
    if isinstance(nested, Mapping):
        sources.append(nested)
    for source in sources:
        for key, value in source.items():
            if not key.startswith(("EXPECTED", "EXPTECTED")) or key == "EXPECTEDRESULTS":
                continue
            if key in FLAGS and isinstance(value, bool):
                flags[key] = value
            elif key not in IGNORED_FLAGS:
                unknown.append(key)
    return flags, unknown


def _hcert_from_cbor(raw: bytes) -> Any:
    """A vector's ``CBOR`` holds the DCC map or the whole claims map (may use indefinite lengths)."""
    decoded = cbor.loads(raw, allow_indefinite=True)
    if isinstance(decoded, dict) and cwt.CWTClaim.HCERT in decoded:
        hcert = decoded[cwt.CWTClaim.HCERT]
        if isinstance(hcert, dict):
            return _plain(hcert.get(cwt.HCertKey.EU_DCC_V1))
    return _plain(decoded)


def _plain(value: Any) -> Any:
    """Unwrap text tags (0, 1004) so decoded CBOR compares with JSON."""
    if isinstance(value, cbor.Tagged):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _certificate(vector: Mapping[str, Any]) -> bytes | None:
    ctx = vector.get("TESTCTX")
    cert = ctx.get("CERTIFICATE") if isinstance(ctx, Mapping) else None
    if not isinstance(cert, str) or not cert:
        return None
    try:
        return base64.b64decode(cert, validate=False)
    except (binascii.Error, ValueError):
        return None


def _hc1_text(vector: Mapping[str, Any]) -> str | None:
    """Start at the outermost layer present: PREFIX -> BASE45 -> COMPRESSED -> COSE."""
    if isinstance(vector.get("PREFIX"), str):
        return str(vector["PREFIX"])
    if isinstance(vector.get("BASE45"), str):
        return prefix.HC1_PREFIX + str(vector["BASE45"])
    if (raw := _hex(vector.get("COMPRESSED"))) is not None:
        return prefix.HC1_PREFIX + base45.b45encode(raw)
    if (raw := _hex(vector.get("COSE"))) is not None:
        return prefix.HC1_PREFIX + base45.b45encode(compress.compress(raw))
    return None


def _steps_pass(result: VerificationResult | None, names: tuple[str, ...]) -> bool:
    if result is None:
        return False
    return all(result.step(n).result is StepResult.PASS for n in names)


def run_vector(
    vector: Mapping[str, Any], *, picture_decoder: Callable[[bytes], str] | None = None
) -> VectorOutcome:
    """Evaluate every EXPECTED* flag of one vector; ``picture_decoder`` reads ``2DCODE`` PNGs."""
    expected, unknown = _expected_flags(vector)
    for key in unknown:
        warnings.warn(f"unknown test-vector key {key!r}", stacklevel=2)
    ctx = vector.get("TESTCTX") if isinstance(vector.get("TESTCTX"), Mapping) else {}
    assert isinstance(ctx, Mapping)
    clock_text = ctx.get("VALIDATIONCLOCK")
    now = parse_clock(clock_text) if isinstance(clock_text, str) else datetime(2021, 6, 1, tzinfo=UTC)
    der = _certificate(vector)
    hc1 = _hc1_text(vector)
    result: VerificationResult | None = None
    if hc1 is not None:
        trust = TrustStore.from_dsc_certificates([der] if der else [])
        result = verify(hc1, trust, now=now)

    outcomes = [
        _evaluate(flag, want, vector, result, picture_decoder) for flag, want in sorted(expected.items())
    ]
    return VectorOutcome(flags=tuple(outcomes), result=result, unknown_keys=tuple(unknown))


def _evaluate(
    flag: str,
    want: bool,
    vector: Mapping[str, Any],
    result: VerificationResult | None,
    picture_decoder: Callable[[bytes], str] | None,
) -> FlagOutcome:
    def out(actual: bool | None, detail: str) -> FlagOutcome:
        return FlagOutcome(flag=flag, expected=want, actual=actual, detail=detail)

    steps = FLAGS[flag]
    failed = (
        [f"{s.name}: {s.code}" for s in result.steps if s.result is StepResult.FAIL]
        if result is not None
        else ["no input layer"]
    )
    steps_ok = _steps_pass(result, steps) if steps else True
    detail = "; ".join(failed) or "all steps pass"

    if flag == "EXPECTEDUNPREFIX":
        pre, b45 = vector.get("PREFIX"), vector.get("BASE45")
        same = not isinstance(pre, str) or not isinstance(b45, str) or pre.strip()[4:] == b45
        return out(steps_ok and same, detail if same else "PREFIX minus HC1: differs from BASE45")
    if flag == "EXPECTEDB45DECODE":
        b45, comp = vector.get("BASE45"), _hex(vector.get("COMPRESSED"))
        if isinstance(b45, str) and comp is not None:
            try:
                same = base45.b45decode(b45) == comp
            except errors.Base45Error as e:
                return out(False, e.code)
            return out(steps_ok and same, detail if same else "BASE45 does not decode to COMPRESSED")
        return out(steps_ok, detail)
    if flag == "EXPECTEDCOMPRESSION":
        comp, raw = _hex(vector.get("COMPRESSED")), _hex(vector.get("COSE"))
        if comp is not None and raw is not None:
            try:
                same = compress.decompress(comp) == raw
            except errors.ZlibError as e:
                return out(False, e.code)
            return out(steps_ok and same, detail if same else "COMPRESSED does not inflate to COSE")
        return out(steps_ok, detail)
    if flag == "EXPECTEDDECODE":
        if not steps_ok or result is None:
            return out(False, detail)
        js = vector.get("JSON")
        if js is None:
            return out(True, detail)
        decoded = _decoded_dcc(vector)
        same = decoded == js
        return out(same, detail if same else "decoded payload differs from JSON")
    if flag in ("EXPECTEDVERIFY", "EXPECTEDEXPIRATIONCHECK", "EXPECTEDKEYUSAGE", "EXPECTEDSCHEMAVALIDATION"):
        return out(steps_ok, detail)
    if flag == "EXPECTEDVALIDJSON":
        raw, js = _hex(vector.get("CBOR")), vector.get("JSON")
        if raw is None or js is None:
            return out(None, "CBOR or JSON missing")
        try:
            same = _hcert_from_cbor(raw) == js
        except errors.CborError as e:
            return out(False, e.code)
        return out(same, "CBOR equals JSON" if same else "CBOR differs from JSON")
    if flag == "EXPECTEDVALIDOBJECT":
        js = vector.get("JSON")
        if not isinstance(js, Mapping):
            return out(False, "JSON missing or not an object")
        try:
            schema.validate_dcc(js)
        except errors.SchemaError as e:
            return out(False, e.code)
        return out(True, "JSON validates")
    if flag == "EXPECTEDENCODE":
        raw, js = _hex(vector.get("CBOR")), vector.get("JSON")
        if raw is None or js is None:
            return out(None, "CBOR or JSON missing")
        try:
            same = cbor.loads(cbor.dumps(js)) == _hcert_from_cbor(raw)
        except errors.CborError as e:
            return out(False, e.code)
        return out(same, "JSON encodes to CBOR" if same else "encoded JSON differs from CBOR")
    # EXPECTEDPICTUREDECODE
    png_b64 = vector.get("2DCODE", vector.get("_2DCODE"))
    if picture_decoder is None or not isinstance(png_b64, str):
        return out(None, "no picture decoder or no 2DCODE")
    try:
        text = picture_decoder(base64.b64decode(png_b64))
    except (errors.ImageError, binascii.Error, ValueError) as e:
        return out(False, str(e))
    same = text == vector.get("PREFIX")
    return out(same, "picture decodes to PREFIX" if same else "picture text differs from PREFIX")


def _decoded_dcc(vector: Mapping[str, Any]) -> Any:
    hc1 = _hc1_text(vector)
    assert hc1 is not None
    message = compress.decompress(base45.b45decode(prefix.strip_prefix(hc1)))
    return _plain(dict(cwt.decode_claims(cose.decode_sign1(message).payload).dcc))
