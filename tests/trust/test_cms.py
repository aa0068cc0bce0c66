"""CMS SignedData verification (the EU gateway entries' signatures): real signatures built by cryptography's
PKCS7SignatureBuilder, checked good, tampered, wrong signer, missing, odd encodings; never a foreign error."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.certs import Issued, cms_signature, make_ca, make_leaf, new_key
from vaxcred.trust.cms import MAX_CMS_BYTES, CmsError, verify_signed_data

CONTENT = b"\x30\x03\x02\x01\x07 the certificate DER\n\r\n with line-feed bytes"


@pytest.fixture(scope="module")
def ec_signer() -> Issued:
    return make_ca("EU", cn="EC trust anchor")


@pytest.fixture(scope="module")
def rsa_signer() -> Issued:
    return make_ca("EU", cn="RSA trust anchor", key=new_key("rsa"))


def _cms(content: bytes, signer: Issued, **kwargs: bool) -> bytes:
    return base64.b64decode(cms_signature(content, signer, **kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"detached": False},
        {"attributes": False},
        {"detached": False, "attributes": False},
    ],
    ids=["detached", "attached", "no-attributes", "attached-no-attributes"],
)
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_good_signature_verifies(
    kind: str, kwargs: dict[str, bool], ec_signer: Issued, rsa_signer: Issued
) -> None:
    """ECDSA and RSA PKCS#1 v1.5 signatures, detached or attached, with or without signed attributes."""
    signer = ec_signer if kind == "ec" else rsa_signer
    cms = _cms(CONTENT, signer, **kwargs)
    assert verify_signed_data(cms, CONTENT, [signer.cert]) == signer.cert


def test_rsa_pss_signature_verifies(rsa_signer: Issued) -> None:
    """RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) is read from its parameters and verifies."""
    cms = _cms(CONTENT, rsa_signer, pss=True)
    assert verify_signed_data(cms, CONTENT, [rsa_signer.cert]) == rsa_signer.cert


def test_the_signer_is_found_among_several(ec_signer: Issued, rsa_signer: Issued) -> None:
    """The sid is a hint: every given certificate is tried and the one whose key verifies is returned."""
    other = make_ca("EU", cn="another anchor")
    cms = _cms(CONTENT, rsa_signer)
    assert verify_signed_data(cms, CONTENT, [other.cert, ec_signer.cert, rsa_signer.cert]) == rsa_signer.cert


@pytest.mark.parametrize("attributes", [True, False])
def test_other_content_fails(attributes: bool, ec_signer: Issued) -> None:
    """A signature over one certificate does not authenticate another (messageDigest or signature)."""
    cms = _cms(CONTENT, ec_signer, attributes=attributes)
    with pytest.raises(CmsError):
        verify_signed_data(cms, CONTENT + b"\x00", [ec_signer.cert])


def test_attached_content_must_be_the_certificate(ec_signer: Issued) -> None:
    """An attached signature over other bytes is refused even though it verifies on its own."""
    cms = _cms(b"something else", ec_signer, detached=False)
    with pytest.raises(CmsError, match="not this certificate"):
        verify_signed_data(cms, CONTENT, [ec_signer.cert])


def test_wrong_signer_fails(ec_signer: Issued) -> None:
    """Signed by a key that is not among the allowed signers: refused."""
    rogue = make_ca("EU", cn="DCCG Trust Anchor")  # same name, other key
    with pytest.raises(CmsError):
        verify_signed_data(_cms(CONTENT, rogue), CONTENT, [ec_signer.cert])


def test_no_allowed_signer_fails(ec_signer: Issued) -> None:
    """With no certificate allowed to sign (no upload certificate for the country), nothing verifies."""
    with pytest.raises(CmsError, match="no certificate"):
        verify_signed_data(_cms(CONTENT, ec_signer), CONTENT, [])


def test_bit_flips_fail_or_touch_only_unsigned_fields(ec_signer: Issued) -> None:
    """Flipping any bit raises only CmsError; a flip in the signed attributes or the signature value (the
    last 120 bytes) always fails.  (CMS leaves version numbers, the digest-algorithm set, embedded
    certificates and the sid unsigned: a flip there may still verify, with the same signer.)"""
    cms = _cms(CONTENT, ec_signer)
    signed_tail = len(cms) - 120
    for index in range(len(cms)):
        for bit in (0x01, 0x80):
            flipped = bytearray(cms)
            flipped[index] ^= bit
            try:
                signer = verify_signed_data(bytes(flipped), CONTENT, [ec_signer.cert])
            except CmsError:
                continue
            assert index < signed_tail, f"bit flip at byte {index} of the signed part still verifies"
            assert signer == ec_signer.cert


def _indefinite(der: bytes) -> bytes:
    """Re-encode every constructed element of ``der`` with indefinite lengths, except the signed attributes
    (BER as Bouncy Castle writes it)."""

    def walk(buf: bytes, pos: int, end: int) -> bytes:
        out = b""
        while pos < end:
            tag = buf[pos]
            length = buf[pos + 1]
            header = 2
            if length & 0x80:
                count = length & 0x7F
                length = int.from_bytes(buf[pos + 2 : pos + 2 + count], "big")
                header += count
            start, stop = pos + header, pos + header + length
            if (tag & 0x20 and tag != 0xA0) or (tag == 0xA0 and buf[start] != 0x30):
                out += bytes([tag, 0x80]) + walk(buf, start, stop) + b"\x00\x00"
            else:
                out += buf[pos:stop]
            pos = stop
        return out

    return walk(der, 0, len(der))


def test_ber_indefinite_lengths_accepted(ec_signer: Issued) -> None:
    """The gateway's Bouncy Castle output uses indefinite lengths: the same signature in BER verifies."""
    der = _cms(CONTENT, ec_signer, detached=False)
    ber = _indefinite(der)
    assert ber != der
    assert b"\x30\x80" in ber
    assert verify_signed_data(ber, CONTENT, [ec_signer.cert]) == ec_signer.cert


def test_rsa_key_for_an_ecdsa_signature_fails(ec_signer: Issued, rsa_signer: Issued) -> None:
    """The signature algorithm is bound to the key type: an ECDSA signature never checks with an RSA key."""
    with pytest.raises(CmsError):
        verify_signed_data(_cms(CONTENT, ec_signer), CONTENT, [rsa_signer.cert])


def test_oversized_signature_refused(ec_signer: Issued) -> None:
    """Anything larger than MAX_CMS_BYTES is refused before parsing."""
    with pytest.raises(CmsError, match="larger"):
        verify_signed_data(b"\x30" * (MAX_CMS_BYTES + 1), CONTENT, [ec_signer.cert])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x80",
        b"\x30\x80\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x03\x02\x01\x01\x00",
        base64.b64decode("MIAGCSqGSIb3DQEHAqCAMIACAQE="),  # a truncated BER header as in old fixtures
        b"\x30" + b"\x80" * 40,  # deep indefinite nesting
        b"\x30\x80" * 40 + b"\x00\x00" * 40,
        b"\x1f\x81\x00",  # high tag number
        b"\x04\x80\x00\x00",  # indefinite primitive
    ],
)
def test_malformed_structures_raise_cms_error(data: bytes, ec_signer: Issued) -> None:
    """Truncated, overlong, deeply nested and odd encodings raise CmsError only."""
    with pytest.raises(CmsError):
        verify_signed_data(data, CONTENT, [ec_signer.cert])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_cms_error(data: bytes) -> None:
    """Arbitrary bytes never verify and never raise anything but CmsError."""
    signer = _HYPOTHESIS_SIGNER
    with pytest.raises(CmsError):
        verify_signed_data(data, CONTENT, [signer.cert])


_HYPOTHESIS_SIGNER = make_leaf(make_ca("EU"), cn="upload", eku=None)


def test_type_errors_for_caller_mistakes(ec_signer: Issued) -> None:
    """Non-bytes input is a caller mistake (TypeError), not a CmsError."""
    with pytest.raises(TypeError):
        verify_signed_data("text", CONTENT, [ec_signer.cert])  # type: ignore[arg-type]
