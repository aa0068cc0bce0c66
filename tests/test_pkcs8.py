"""vaxcred.pkcs8: PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC encrypted PKCS#8, read back by OpenSSL.

The DER is parsed back with a strict reader written here, independently of the module's encoder.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from vaxcred.crypto import SigningKey
from vaxcred.pkcs8 import DEFAULT_ITERATIONS, MAX_ITERATIONS, _tlv, encrypt_pkcs8

PASSPHRASE = b"correct horse battery staple"
FAST = 1_000  # iterations for tests that do not test the default

PBES2 = "1.2.840.113549.1.5.13"
PBKDF2 = "1.2.840.113549.1.5.12"
HMAC_WITH_SHA256 = "1.2.840.113549.2.9"
AES256_CBC = "2.16.840.1.101.3.4.1.42"


# --- a strict DER reader (test side) ------------------------------------------------------------------


def _read_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next position); definite, minimal lengths only (DER)."""
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        assert 1 <= count <= 4, "indefinite or oversized length"
        raw = data[pos : pos + count]
        assert raw[0] != 0, "non-minimal long-form length"
        length = int.from_bytes(raw, "big")
        assert length >= 0x80, "long form used for a short length"
        pos += count
    content = data[pos : pos + length]
    assert len(content) == length, "truncated"
    return tag, content, pos + length


def _items(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = _read_tlv(content, pos)
        out.append((tag, value))
    return out


def _oid(tag_value: tuple[int, bytes]) -> str:
    tag, body = tag_value
    assert tag == 0x06
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _integer(tag_value: tuple[int, bytes]) -> int:
    tag, body = tag_value
    assert tag == 0x02
    assert not (len(body) > 1 and body[0] == 0 and body[1] < 0x80), "non-minimal INTEGER"
    return int.from_bytes(body, "big", signed=True)


def _octets(tag_value: tuple[int, bytes]) -> bytes:
    tag, body = tag_value
    assert tag == 0x04
    return body


def _seq(tag_value: tuple[int, bytes]) -> list[tuple[int, bytes]]:
    tag, body = tag_value
    assert tag == 0x30
    return _items(body)


@dataclass(frozen=True)
class EncryptedPkcs8:
    """What an EncryptedPrivateKeyInfo with PBES2 says, field by field."""

    scheme: str
    kdf: str
    salt: bytes
    iterations: int
    key_length: int | None
    prf: str
    prf_parameters: bytes  # the DER after the prf OID (NULL is b"\x05\x00")
    cipher: str
    iv: bytes
    encrypted_data: bytes


def pem_to_der(pem: bytes) -> bytes:
    match = re.fullmatch(
        rb"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        rb"((?:[A-Za-z0-9+/=]{1,64}\n)+)"
        rb"-----END ENCRYPTED PRIVATE KEY-----\n",
        pem,
    )
    assert match, "not a single RFC 7468 ENCRYPTED PRIVATE KEY block"
    return base64.b64decode(match.group(1), validate=False)


def read_encrypted_pkcs8(pem: bytes) -> EncryptedPkcs8:
    """Parse a PEM ENCRYPTED PRIVATE KEY (PBES2 + PBKDF2 only) without vaxcred or cryptography code."""
    der = pem_to_der(pem)
    tag, body, end = _read_tlv(der)
    assert tag == 0x30
    assert end == len(der), "trailing data"
    algorithm, encrypted = _items(body)
    scheme_oid, pbes2_params = _seq(algorithm)
    kdf_alg, enc_alg = _seq(pbes2_params)
    kdf_oid, kdf_params = _seq(kdf_alg)
    kdf_fields = _seq(kdf_params)
    salt, iterations = _octets(kdf_fields[0]), _integer(kdf_fields[1])
    rest = kdf_fields[2:]
    key_length = None
    if rest and rest[0][0] == 0x02:
        key_length, rest = _integer(rest[0]), rest[1:]
    assert len(rest) == 1, "prf missing (would default to hmacWithSHA1) or extra fields"
    prf = _seq(rest[0])
    cipher_oid, iv = _seq(enc_alg)
    return EncryptedPkcs8(
        scheme=_oid(scheme_oid),
        kdf=_oid(kdf_oid),
        salt=salt,
        iterations=iterations,
        key_length=key_length,
        prf=_oid(prf[0]),
        prf_parameters=b"".join(bytes((t, len(v))) + v for t, v in prf[1:]),
        cipher=_oid(cipher_oid),
        iv=_octets(iv),
        encrypted_data=_octets(encrypted),
    )


# --- keys ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(params=["ec", "rsa"])
def key(request: pytest.FixtureRequest, ec_key: SigningKey, rsa_key: SigningKey) -> SigningKey:
    return ec_key if request.param == "ec" else rsa_key


def _clear_der(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _secrets(key: SigningKey) -> list[bytes]:
    """The private values in their natural big-endian encodings."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return [key.private_numbers().private_value.to_bytes(32, "big")]
    numbers = key.private_numbers()
    return [
        n.to_bytes((n.bit_length() + 7) // 8, "big")
        for n in (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp)
    ]


# --- round trips ---------------------------------------------------------------------------------------


def test_round_trips_through_cryptography_loader(key: SigningKey) -> None:
    """EC P-256 and RSA-2048 come back identical through load_pem_private_key (OpenSSL's PBES2)."""
    pem = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    loaded = serialization.load_pem_private_key(pem, password=PASSPHRASE)
    assert _clear_der(loaded) == _clear_der(key)  # type: ignore[arg-type]


def test_default_iterations_are_at_least_600000_and_load(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """Without ``iterations`` the file says ≥ 600,000 (OWASP 2023) and still loads."""
    assert DEFAULT_ITERATIONS >= 600_000
    pem = encrypt_pkcs8(ec_key, PASSPHRASE)
    assert read_encrypted_pkcs8(pem).iterations >= 600_000
    loaded = serialization.load_pem_private_key(pem, password=PASSPHRASE)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == ec_key.private_numbers()


def test_wrong_passphrase_fails(key: SigningKey) -> None:
    """Another passphrase does not decrypt (ValueError from cryptography)."""
    pem = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, password=b"correct horse battery stapler")


def test_utf8_passphrase_round_trips(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """Non-ASCII passphrase bytes are used as given (PBKDF2 over the raw bytes)."""
    passphrase = "mật khẩu".encode()
    pem = encrypt_pkcs8(ec_key, passphrase, iterations=FAST)
    assert _clear_der(serialization.load_pem_private_key(pem, password=passphrase)) == _clear_der(ec_key)  # type: ignore[arg-type]


# --- what the DER says ---------------------------------------------------------------------------------


@pytest.mark.parametrize("iterations", [1, 127, 128, 255, 256, 32_767, 32_768, 65_536, 600_001])
def test_iteration_count_parses_back(ec_key: ec.EllipticCurvePrivateKey, iterations: int) -> None:
    """iterationCount is the INTEGER we asked for (minimal encoding around the sign-bit boundaries)."""
    pem = encrypt_pkcs8(ec_key, PASSPHRASE, iterations=iterations)
    assert read_encrypted_pkcs8(pem).iterations == iterations
    if iterations in (1, 128, 600_001):
        serialization.load_pem_private_key(pem, password=PASSPHRASE)


def test_algorithms_parse_back(key: SigningKey) -> None:
    """PBES2 { PBKDF2 { 16-byte salt, count, no keyLength, hmacWithSHA256 NULL }, aes256-CBC 16-byte IV }."""
    pem = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    info = read_encrypted_pkcs8(pem)
    assert info.scheme == PBES2
    assert info.kdf == PBKDF2
    assert len(info.salt) == 16
    assert info.iterations == FAST
    assert info.key_length is None
    assert info.prf == HMAC_WITH_SHA256
    assert info.prf_parameters == b"\x05\x00"
    assert info.cipher == AES256_CBC
    assert len(info.iv) == 16
    clear = _clear_der(key)
    assert len(info.encrypted_data) == (len(clear) // 16 + 1) * 16  # PKCS#7: always 1..16 bytes of padding


def test_oid_bytes_are_the_standard_encodings(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """The OIDs appear with their well-known DER bytes (as OpenSSL writes them)."""
    der = pem_to_der(encrypt_pkcs8(ec_key, PASSPHRASE, iterations=FAST))
    assert bytes.fromhex("06092a864886f70d01050d") in der  # PBES2
    assert bytes.fromhex("06092a864886f70d01050c") in der  # PBKDF2
    assert bytes.fromhex("06082a864886f70d02090500") in der  # hmacWithSHA256, NULL
    assert bytes.fromhex("060960864801650304012a") in der  # aes256-CBC


def test_rsa_file_uses_long_form_lengths(rsa_key: rsa.RSAPrivateKey) -> None:
    """RSA-2048 needs two-byte long-form lengths (0x82); the strict reader accepts them."""
    pem = encrypt_pkcs8(rsa_key, PASSPHRASE, iterations=FAST)
    assert pem_to_der(pem)[:2] == b"\x30\x82"
    assert len(read_encrypted_pkcs8(pem).encrypted_data) > 1000


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, "0400"),
        (127, "047f"),
        (128, "048180"),
        (255, "0481ff"),
        (256, "04820100"),
        (65_535, "0482ffff"),
        (65_536, "0483010000"),
    ],
)
def test_der_length_octets_are_minimal(size: int, header: str) -> None:
    """Short form below 128, then 0x80|n with n minimal big-endian bytes (X.690 §10.1)."""
    encoded = _tlv(0x04, bytes(size))
    assert encoded.hex().startswith(header)
    assert _read_tlv(encoded) == (0x04, bytes(size), len(encoded))


def test_pem_is_rfc7468(key: SigningKey) -> None:
    """One ENCRYPTED PRIVATE KEY block, 64-character lines, newline-terminated."""
    pem = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    lines = pem.split(b"\n")
    assert lines[0] == b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
    assert lines[-2:] == [b"-----END ENCRYPTED PRIVATE KEY-----", b""]
    assert all(len(line) == 64 for line in lines[1:-3])
    assert 0 < len(lines[-3]) <= 64


# --- randomness and secrecy ----------------------------------------------------------------------------


def test_two_encryptions_differ(key: SigningKey) -> None:
    """Fresh salt and IV every time: same key and passphrase, different files, both decrypt."""
    first = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    second = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    a, b = read_encrypted_pkcs8(first), read_encrypted_pkcs8(second)
    assert a.salt != b.salt
    assert a.iv != b.iv
    assert a.encrypted_data != b.encrypted_data
    for pem in (first, second):
        assert _clear_der(serialization.load_pem_private_key(pem, password=PASSPHRASE)) == _clear_der(key)  # type: ignore[arg-type]


def test_output_never_contains_the_clear_key(key: SigningKey) -> None:
    """Neither the PEM nor its DER holds the clear PKCS#8, a 16-byte piece of it, or a private value."""
    pem = encrypt_pkcs8(key, PASSPHRASE, iterations=FAST)
    der = pem_to_der(pem)
    clear = _clear_der(key)
    assert clear not in der
    assert base64.b64encode(clear) not in pem
    secret_region = clear[len(clear) // 4 :]  # past the version and algorithm OIDs
    for i in range(len(secret_region) - 16):
        assert secret_region[i : i + 16] not in der
    for value in _secrets(key):
        assert value not in der
        assert base64.b64encode(value)[:40] not in pem
    assert PASSPHRASE not in pem
    assert PASSPHRASE not in der


# --- argument checks -----------------------------------------------------------------------------------


def test_refuses_empty_or_non_bytes_passphrase(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """An empty passphrase would be no protection; str is a type error (no implicit encoding)."""
    with pytest.raises(ValueError):
        encrypt_pkcs8(ec_key, b"", iterations=FAST)
    with pytest.raises(TypeError):
        encrypt_pkcs8(ec_key, "text", iterations=FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize("iterations", [0, -1, MAX_ITERATIONS + 1])
def test_refuses_out_of_range_iterations(ec_key: ec.EllipticCurvePrivateKey, iterations: int) -> None:
    """iterationCount is 1..2**31-1 (OpenSSL reads it into an int)."""
    with pytest.raises(ValueError):
        encrypt_pkcs8(ec_key, PASSPHRASE, iterations=iterations)


@pytest.mark.parametrize("iterations", [True, 1000.0, "1000"])
def test_refuses_non_int_iterations(ec_key: ec.EllipticCurvePrivateKey, iterations: object) -> None:
    """bool, float and str are not iteration counts."""
    with pytest.raises(TypeError):
        encrypt_pkcs8(ec_key, PASSPHRASE, iterations=iterations)  # type: ignore[arg-type]


# --- the openssl command line (interop with a second reader) ---------------------------------------------

_OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(_OPENSSL is None, reason="openssl binary not installed")
def test_openssl_cli_decrypts_to_the_same_pkcs8(tmp_path: Path, key: SigningKey) -> None:
    """`openssl pkcs8 -in F -passin env:PW -outform DER` decrypts it to the same key (OpenSSL re-encodes)."""
    assert _OPENSSL is not None
    path = tmp_path / "key.pem"
    path.write_bytes(encrypt_pkcs8(key, PASSPHRASE, iterations=FAST))
    env = {**os.environ, "VAXCRED_TEST_PW": PASSPHRASE.decode()}
    result = subprocess.run(
        [_OPENSSL, "pkcs8", "-in", str(path), "-passin", "env:VAXCRED_TEST_PW", "-outform", "DER"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    decrypted = serialization.load_der_private_key(result.stdout, password=None)
    assert _clear_der(decrypted) == _clear_der(key)  # type: ignore[arg-type]

    env["VAXCRED_TEST_PW"] = "wrong"
    wrong = subprocess.run(
        [_OPENSSL, "pkcs8", "-in", str(path), "-passin", "env:VAXCRED_TEST_PW", "-outform", "DER"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert wrong.returncode != 0
    assert not wrong.stdout


@pytest.mark.skipif(_OPENSSL is None, reason="openssl binary not installed")
def test_openssl_asn1parse_agrees_on_the_parameters(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """`openssl asn1parse` names the same algorithms and the same iteration count as the reader here."""
    assert _OPENSSL is not None
    path = tmp_path / "key.pem"
    path.write_bytes(encrypt_pkcs8(ec_key, PASSPHRASE, iterations=600_001))
    text = subprocess.run(
        [_OPENSSL, "asn1parse", "-in", str(path)], capture_output=True, check=True, text=True
    ).stdout
    for name in (":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc"):
        assert name in text
    assert re.search(r"prim: INTEGER\s+:0927C1\b", text)  # 600001
