"""Properties of issue + verify (hypothesis): round trips, single bit flips, arbitrary input.

Which single bit flips may legitimately leave a passport VALID:

- in the COSE bytes: none.  The protected header and payload are covered by the signature (Sig_structure is
  built from the bytes as received); the signature bytes are the signature; what remains (tag ``D2``, array
  header ``84``, the bstr headers and the unprotected ``A0``) changes the CBOR structure when flipped — no
  flip of ``D2`` removes the tag (every other tag is refused), ``A0`` becomes a non-empty or non-map item
  that swallows or misreads what follows, and a changed length makes the message truncated or leaves
  trailing bytes.  So every flip must give INVALID.
- in the zlib bytes: deflate has bits no decoder reads — the 5 padding bits after the 3-bit header of a
  stored block (level 9 stores incompressible messages) and the padding at the end of the final block.  A
  flip there inflates to the identical COSE and stays VALID.  So: VALID if and only if the stdlib
  ``zlib.decompress`` of the flipped stream is the original COSE.
- in the HC1 text: a character flip reaches the zlib bytes through Base45, so the same rule applies.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.interop.payloads import DAY, NOW, dccs, icao_oracle, sample_dcc, wrap_hc1
from vaxcred import keys
from vaxcred.codec.cwt import MAX_TIME
from vaxcred.issue import IssuedPassport, Issuer
from vaxcred.model import DCC
from vaxcred.result import STEP_NAMES, Status, StepResult, VerificationResult
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

AFTER = NOW + DAY
ROUND_TRIP = settings(max_examples=100, deadline=None)
FLIPS = settings(max_examples=100, deadline=None)
FUZZ = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="session")
def csca() -> keys.KeyPair:
    return keys.make_csca(now=NOW - 60 * DAY)


@pytest.fixture(scope="session")
def es256(csca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_dsc(csca, now=NOW - DAY)


@pytest.fixture(scope="session")
def ps256(csca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_dsc(csca, now=NOW - DAY, key="rsa")


@pytest.fixture(scope="session")
def store(es256: keys.KeyPair, ps256: keys.KeyPair) -> TrustStore:
    return TrustStore.from_dsc_certificates(
        [p.certificate.public_bytes(Encoding.DER) for p in (es256, ps256)]
    )


@pytest.fixture(scope="session")
def issuers(es256: keys.KeyPair, ps256: keys.KeyPair) -> dict[str, Issuer]:
    return {"ES256": Issuer(es256.signer()), "PS256": Issuer(ps256.signer())}


@pytest.fixture(scope="session", params=["ES256", "PS256"])
def passport(request: pytest.FixtureRequest, issuers: dict[str, Issuer]) -> IssuedPassport:
    return issuers[request.param].issue(sample_dcc(), now=NOW)


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def _inflates_to(stream: bytes, expected: bytes) -> bool:
    """Whether the stdlib zlib (the oracle) inflates ``stream`` to exactly ``expected``."""
    try:
        return zlib.decompress(stream) == expected
    except zlib.error:
        return False


def _check_shape(result: VerificationResult) -> None:
    assert tuple(s.name for s in result.steps) == STEP_NAMES
    event(result.failures[0].code if result.failures else result.status.value)  # --hypothesis-show-statistics


# --- round trip ---------------------------------------------------------------------------------------


@ROUND_TRIP
@given(dcc=dccs(), alg=st.sampled_from(["ES256", "PS256"]))
def test_any_valid_payload_issues_and_verifies_valid(
    issuers: dict[str, Issuer], store: TrustStore, dcc: DCC, alg: str
) -> None:
    """Any issuable Vietnamese payload, signed ES256 or PS256, verifies VALID with the DCC unchanged."""
    result = verify(issuers[alg].issue(dcc, now=NOW).hc1, store, now=AFTER)
    assert result.status is Status.VALID, result.failures
    assert result.certificate == dcc.to_json()


@ROUND_TRIP
@given(dcc=dccs())
def test_verified_holder_has_icao_names_of_the_written_names(
    issuers: dict[str, Issuer], store: TrustStore, dcc: DCC
) -> None:
    """The verified holder carries the names as written and their ICAO forms (tone marks dropped, Đ -> D)."""
    holder = verify(issuers["ES256"].issue(dcc, now=NOW).hc1, store, now=AFTER).holder
    assert holder is not None
    assert (holder.fn, holder.gn, holder.dob) == (dcc.nam.fn, dcc.nam.gn, dcc.dob.text)
    assert holder.fnt == icao_oracle(dcc.nam.fn or "")
    assert holder.gnt == icao_oracle(dcc.nam.gn or "")


# --- single bit flips, exhaustively -------------------------------------------------------------------


def test_every_bit_flip_in_the_cose_bytes_is_invalid(passport: IssuedPassport, store: TrustStore) -> None:
    """Each of the 8·len(COSE) single bit flips, re-wrapped in zlib/Base45/HC1:, verifies INVALID."""
    not_invalid = [
        bit
        for bit in range(8 * len(passport.cose))
        if verify(wrap_hc1(_flip(passport.cose, bit)), store, now=AFTER).status is not Status.INVALID
    ]
    assert not_invalid == []


def test_bit_flip_in_the_zlib_bytes_is_valid_only_in_unread_padding(
    passport: IssuedPassport, store: TrustStore
) -> None:
    """A flip in the compressed bytes verifies VALID exactly when it inflates to the identical COSE."""
    stream = zlib.compress(passport.cose, 9)
    mismatches = []
    for bit in range(8 * len(stream)):
        flipped = _flip(stream, bit)
        hc1 = "HC1:" + base45.b45encode(flipped).decode("ascii")
        valid = verify(hc1, store, now=AFTER).status is Status.VALID
        if valid != _inflates_to(flipped, passport.cose):
            mismatches.append(bit)
    assert mismatches == []


def test_stored_block_header_padding_bits_are_the_only_valid_flips(
    passport: IssuedPassport, store: TrustStore
) -> None:
    """In a stored (level 0) zlib stream exactly the 5 padding bits after the block header stay VALID."""
    stream = zlib.compress(passport.cose, 0)
    valid = {
        bit
        for bit in range(8 * len(stream))
        if verify("HC1:" + base45.b45encode(_flip(stream, bit)).decode("ascii"), store, now=AFTER).status
        is Status.VALID
    }
    assert valid == {19, 20, 21, 22, 23}  # byte 2 = BFINAL, BTYPE 00, then bits 3..7 unread


def test_bit_flip_in_the_hc1_text_is_never_valid_unless_the_cose_is_unchanged(
    passport: IssuedPassport, store: TrustStore
) -> None:
    """Each single bit flip of the HC1 text's bytes gives a non-VALID result, barring a deflate no-op."""
    raw = passport.hc1.encode("ascii")
    offenders = []
    for bit in range(8 * len(raw)):
        flipped = _flip(raw, bit)
        if verify(flipped, store, now=AFTER).status is Status.VALID:
            try:
                unchanged = _inflates_to(base45.b45decode(flipped.strip()[4:]), passport.cose)
            except ValueError:
                unchanged = False
            if not unchanged:
                offenders.append(bit)
    assert offenders == []


@FLIPS
@given(dcc=dccs(), data=st.data())
def test_bit_flip_in_any_issued_cose_is_invalid(
    issuers: dict[str, Issuer], store: TrustStore, dcc: DCC, data: st.DataObject
) -> None:
    """For generated payloads, a flip of any one bit of the COSE bytes verifies INVALID."""
    cose = issuers["ES256"].issue(dcc, now=NOW).cose
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(cose) - 1), label="bit")
    result = verify(wrap_hc1(_flip(cose, bit)), store, now=AFTER)
    assert result.status is Status.INVALID
    _check_shape(result)


# --- arbitrary input ----------------------------------------------------------------------------------

_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.integers() | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def _cose_like(draw: st.DrawFn) -> bytes:
    """A tag-18 4-array with arbitrary headers, payload (sometimes claims-shaped) and signature."""
    kid = draw(st.binary(min_size=8, max_size=8) | st.binary(max_size=12))
    protected = cbor2.dumps(
        draw(st.dictionaries(st.integers(-40, 40), _cbor_values, max_size=3)) | {4: kid, 1: -7}
    )
    payload = draw(
        st.binary(max_size=200)
        | st.builds(cbor2.dumps, _cbor_values)
        | st.builds(
            lambda iat, exp, dcc: cbor2.dumps({1: "VN", 4: exp, 6: iat, -260: {1: dcc}}),
            _cbor_values,
            _cbor_values,
            _cbor_values,
        )
    )
    unprotected = draw(st.dictionaries(st.integers(-5, 5), _cbor_values, max_size=3))
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, draw(st.binary(max_size=80))]))


_texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=_BASE45, max_size=300).map(lambda s: "HC1:" + s),
    st.binary(max_size=300).map(lambda b: "HC1:" + base45.b45encode(b).decode("ascii")),
    st.binary(max_size=300).map(lambda b: "HC1:" + base45.b45encode(zlib.compress(b)).decode("ascii")),
    st.builds(cbor2.dumps, _cbor_values).map(wrap_hc1),
    _cose_like().map(wrap_hc1),
)
_bytes = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    st.binary(max_size=300).map(lambda b: b"\xff\xd8\xff" + b),
    st.binary(max_size=300).map(lambda b: b"HC1:" + b),
)


@FUZZ
@given(text=_texts)
def test_arbitrary_text_gives_an_invalid_result(store: TrustStore, text: str) -> None:
    """Any text, from noise to well-formed COSE with nonsense inside, yields an INVALID result, never an error."""
    result = verify(text, store, now=AFTER)
    assert result.status is Status.INVALID
    _check_shape(result)


@FUZZ
@given(data=_bytes)
def test_arbitrary_bytes_give_an_invalid_result(store: TrustStore, data: bytes) -> None:
    """Any bytes, including fake PNG/JPEG headers, yield an INVALID result, never an error."""
    result = verify(data, store, now=AFTER)
    assert result.status is Status.INVALID
    _check_shape(result)


#: JSON-like values CBOR encodes without tags (integers within 64 bits: bignums are not DCC content)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=15,
)


@FUZZ
@given(
    dcc=st.dictionaries(st.text(max_size=5), _json_values, max_size=5),
    iat=st.integers(min_value=0, max_value=MAX_TIME - 1),
    exp=st.integers(min_value=0, max_value=MAX_TIME - 1),
    signature=st.binary(min_size=64, max_size=64) | st.binary(max_size=300),
    alg=st.sampled_from([-7, -37, -8, 0]),
)
def test_forged_message_under_a_trusted_kid_never_verifies(
    es256: keys.KeyPair,
    store: TrustStore,
    dcc: dict[str, object],
    iat: int,
    exp: int,
    signature: bytes,
    alg: int,
) -> None:
    """Well-formed claims under a trusted kid with arbitrary signature bytes fail the signature step."""
    protected = cbor2.dumps({1: alg, 4: es256.kid})
    payload = cbor2.dumps({1: "VN", 4: exp, 6: iat, -260: {1: dcc}})
    result = verify(
        wrap_hc1(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))), store, now=AFTER
    )
    assert result.status is Status.INVALID
    assert result.step("signature").result is StepResult.FAIL
    assert result.certificate is None
    _check_shape(result)


@FUZZ
@given(
    now=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(UTC))
)
def test_valid_exactly_between_iat_and_exp(
    passport: IssuedPassport, store: TrustStore, now: datetime
) -> None:
    """At any aware instant a real passport is VALID if and only if iat <= now <= exp (inside the DSC)."""
    result = verify(passport.hc1, store, now=now)
    assert (result.status is Status.VALID) == (passport.iat <= now <= passport.exp)
    _check_shape(result)
