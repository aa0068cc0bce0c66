#!/usr/bin/env python3
"""Regenerate vaxcred's own test vectors (``test_vectors/``) deterministically, byte for byte.

Usage: ``python scripts/make_test_vectors.py [--out DIR]`` (``make vectors``); the default ``DIR`` is
``test_vectors/`` at the top of the repository. The output folder is rewritten from scratch.

Everything that is random in real issuance is fixed here, so the same library and dependency versions
always write the same bytes (``tests/conformance/test_own_vectors.py`` checks this):

* keys: EC P-256 private keys are SHA-256(label) scalars (``ec.derive_private_key``); the RSA-2048 key's
  primes come from a SHA-256 counter stream over a label (first probable prime, Miller-Rabin);
* certificates: fixed serial numbers, fixed times, ECDSA signatures by the CSCA with RFC 6979
  deterministic nonces (``ecdsa_deterministic=True``);
* COSE signatures: ES256 with RFC 6979 (``ec.ECDSA(SHA256, deterministic_signing=True)``); PS256 with a
  salt derived from the signed bytes (PSS needs a salt; OpenSSL always draws it at random, so the EMSA-PSS
  encoding and the RSA private operation are done here, and every signature is checked with
  ``cryptography`` before it is written);
* the clock: every time below is a constant; UVCIs are fixed strings with their checksum.

THE PRIVATE KEYS WRITTEN TO ``test_vectors/keys/`` ARE PUBLIC TEST KEYS. Never trust them anywhere.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import shutil
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from vaxcred import errors, qr
from vaxcred.codec import base45, cbor, compress, cose, cwt, prefix
from vaxcred.crypto import Algorithm, der_to_raw, kid_for
from vaxcred.issue import IssuancePolicy, add_months, issue
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination
from vaxcred.model.uvci import uvci_checksum
from vaxcred.oids import EKU_TEST, EKU_VACCINATION
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.x509util import PRIVATE_KEY_USAGE_PERIOD, eku_extension, encode_pkup

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "test_vectors"
RAW = Path("VN") / "2DCode" / "raw"

# --- the fixed clock ----------------------------------------------------------------------------------
CSCA_NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
CSCA_NOT_AFTER = datetime(2028, 12, 31, 23, 59, 59, tzinfo=UTC)
DSC_NOT_BEFORE = datetime(2025, 6, 1, tzinfo=UTC)
DSC_NOT_AFTER = datetime(2027, 5, 31, 23, 59, 59, tzinfo=UTC)
#: notAfter of the short-lived DSC (expired-DSC and exp-past-DSC vectors)
SHORT_DSC_NOT_AFTER = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
#: privateKeyUsagePeriod end of every DSC (6 months, as vaxcred.keys.make_dsc)
PKUP_END = datetime(2025, 12, 1, tzinfo=UTC)
#: when every passport is signed (10:00 in Ha Noi)
ISSUED_AT = datetime(2025, 9, 15, 3, 0, tzinfo=UTC)
#: exp of every passport: 12 months after iat (IssuancePolicy default)
EXPIRES_AT = add_months(ISSUED_AT, 12)
#: VALIDATIONCLOCK of most vectors
CLOCK = datetime(2025, 10, 1, tzinfo=UTC)

SCHEMA_VERSION = "1.3.0"
GATEWAY_ENV = "TST"
ISSUER_TEXT = "Ministry of Health of Viet Nam"
ORGANIZATION = "vaxcred PUBLIC TEST KEYS - not trusted anywhere"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
LABEL = b"vaxcred test vectors/"

# --- flags --------------------------------------------------------------------------------------------
#: the layer flags, outermost first: a failure makes every later one false
LAYERS = (
    "EXPECTEDUNPREFIX",
    "EXPECTEDB45DECODE",
    "EXPECTEDCOMPRESSION",
    "EXPECTEDDECODE",
    "EXPECTEDVERIFY",
)
#: checks made once the signature holds; independent of each other
CHECKS = ("EXPECTEDEXPIRATIONCHECK", "EXPECTEDKEYUSAGE", "EXPECTEDSCHEMAVALIDATION")


def expected_flags(
    *,
    fails_at: str | None = None,
    failing_checks: Sequence[str] = (),
    json_valid: bool = True,
    picture: bool = True,
) -> dict[str, bool]:
    """The EXPECTEDRESULTS of a vector, written by hand from what it tests (never by running vaxcred).

    ``fails_at`` is the first layer flag that fails (the later layers and every check fail with it);
    ``failing_checks`` the checks that fail although the signature holds. ``CBOR`` and ``JSON`` always
    agree (``EXPECTEDVALIDJSON``, ``EXPECTEDENCODE``); ``json_valid`` is ``EXPECTEDVALIDOBJECT``;
    ``picture`` says whether ``2DCODE`` is present (``EXPECTEDPICTUREDECODE``).
    """
    assert fails_at is None or fails_at in LAYERS
    assert set(failing_checks) <= set(CHECKS)
    assert fails_at is None or not failing_checks
    flags: dict[str, bool] = {}
    broken = False
    for flag in LAYERS:
        broken = broken or flag == fails_at
        flags[flag] = not broken
    for flag in CHECKS:
        flags[flag] = not broken and flag not in failing_checks
    flags["EXPECTEDVALIDJSON"] = True
    flags["EXPECTEDVALIDOBJECT"] = json_valid
    flags["EXPECTEDENCODE"] = True
    if picture:
        flags["EXPECTEDPICTUREDECODE"] = True
    return flags


# --- deterministic keys -------------------------------------------------------------------------------


def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key whose scalar is SHA-256(LABEL + label) reduced into [1, n-1]."""
    digest = int.from_bytes(hashlib.sha256(LABEL + label.encode()).digest(), "big")
    return ec.derive_private_key(digest % (P256_ORDER - 1) + 1, ec.SECP256R1())


_SMALL_PRIMES = tuple(p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1)))


def _is_probable_prime(n: int) -> bool:
    """Miller-Rabin with the first 40 primes as bases (test material, not an adversarial input)."""
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in _SMALL_PRIMES[:40]:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(label: bytes, bits: int, e: int) -> int:
    """The first probable prime of a SHA-256 counter stream over ``label``: top two bits and bit 0 set."""
    for counter in itertools.count():
        stream = b"".join(
            hashlib.sha256(label + counter.to_bytes(4, "big") + block.to_bytes(2, "big")).digest()
            for block in range((bits + 255) // 256)
        )
        candidate = int.from_bytes(stream, "big") >> (len(stream) * 8 - bits)
        candidate |= (3 << (bits - 2)) | 1
        if (candidate - 1) % e and _is_probable_prime(candidate):
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key (e = 65537) with primes derived from ``label``."""
    e = 65537
    p = _prime(LABEL + label.encode() + b"/p", bits // 2, e)
    q = _prime(LABEL + label.encode() + b"/q", bits // 2, e)
    assert p != q
    p, q = max(p, q), min(p, q)
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e=e, n=p * q),
    )
    key = numbers.private_key()
    assert key.key_size == bits
    return key


# --- deterministic signatures -------------------------------------------------------------------------

_DETERMINISTIC_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range((length + 31) // 32))
    return out[:length]


def pss_sign_deterministic(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSASSA-PSS (RFC 8017 §8.1, SHA-256, MGF1-SHA-256, salt 32) with a salt derived from ``data``.

    Checked against ``cryptography``'s PSS verification before it is returned.
    """
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    m_hash = hashlib.sha256(data).digest()
    salt = hashlib.sha256(LABEL + b"pss-salt/" + data).digest()
    h = hashlib.sha256(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - len(salt) - len(h) - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1(h, len(db)), strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = bytes(masked) + h + b"\xbc"
    signature = pow(int.from_bytes(em, "big"), d, n).to_bytes((n.bit_length() + 7) // 8, "big")
    key.public_key().verify(signature, data, _PSS, hashes.SHA256())
    return signature


@dataclass(frozen=True, slots=True)
class DeterministicSigner:
    """A :class:`vaxcred.crypto.Signer` whose signatures are a function of the signed bytes."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def algorithm(self) -> Algorithm:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return Algorithm.ES256
        return Algorithm.PS256

    @property
    def kid(self) -> bytes:
        return kid_for(self.certificate.public_bytes(serialization.Encoding.DER))

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return der_to_raw(key.sign(data, _DETERMINISTIC_ECDSA), 32)
        return pss_sign_deterministic(key, data)


# --- certificates -------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class Pair:
    """A key, its certificate and the file stem they are written under."""

    stem: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def kid(self) -> bytes:
        return kid_for(self.der)

    def signer(self) -> DeterministicSigner:
        return DeterministicSigner(self.private_key, self.certificate)


def make_csca() -> Pair:
    key = ec_key("csca")
    name = _name("vaxcred TEST CSCA VN")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5643_0001)
        .not_valid_before(CSCA_NOT_BEFORE)
        .not_valid_after(CSCA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return Pair("csca", key, cert)


def make_dsc(
    csca: Pair,
    *,
    stem: str,
    serial: int,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    ekus: Sequence[ObjectIdentifier] = (EKU_VACCINATION,),
    not_after: datetime = DSC_NOT_AFTER,
) -> Pair:
    """A DSC as vaxcred.keys.make_dsc builds one (EKU, privateKeyUsagePeriod), with fixed serial and times."""
    csca_ski = csca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"vaxcred TEST DSC VN {stem}"))
        .issuer_name(csca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(DSC_NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(eku_extension(ekus), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(csca_ski), critical=False
        )
        .add_extension(
            x509.UnrecognizedExtension(PRIVATE_KEY_USAGE_PERIOD, encode_pkup(DSC_NOT_BEFORE, PKUP_END)),
            critical=False,
        )
    )
    assert isinstance(csca.private_key, ec.EllipticCurvePrivateKey)
    cert = builder.sign(csca.private_key, hashes.SHA256(), ecdsa_deterministic=True)
    return Pair(stem, key, cert)


@dataclass(frozen=True, slots=True)
class KeySet:
    csca: Pair
    dsc: Pair  # EC P-256, EKU vaccination: signs most vectors
    dsc_other: Pair  # a second EC DSC: the "wrong kid" vectors
    dsc_rsa: Pair  # RSA-2048, PS256
    dsc_test_eku: Pair  # EC, EKU test only: may not sign vaccinations
    dsc_short: Pair  # EC, notAfter 2025-12-31: expired-DSC and exp-past-DSC vectors

    def all(self) -> tuple[Pair, ...]:
        return (self.csca, self.dsc, self.dsc_other, self.dsc_rsa, self.dsc_test_eku, self.dsc_short)


def make_keys() -> KeySet:
    csca = make_csca()
    return KeySet(
        csca=csca,
        dsc=make_dsc(csca, stem="dsc-ec", serial=0x5644_0001, key=ec_key("dsc-ec")),
        dsc_other=make_dsc(csca, stem="dsc-ec-other", serial=0x5644_0002, key=ec_key("dsc-ec-other")),
        dsc_rsa=make_dsc(csca, stem="dsc-rsa2048", serial=0x5644_0003, key=rsa_key("dsc-rsa2048")),
        dsc_test_eku=make_dsc(
            csca, stem="dsc-ec-test-eku", serial=0x5644_0004, key=ec_key("dsc-ec-test-eku"), ekus=(EKU_TEST,)
        ),
        dsc_short=make_dsc(
            csca,
            stem="dsc-ec-short",
            serial=0x5644_0005,
            key=ec_key("dsc-ec-short"),
            not_after=SHORT_DSC_NOT_AFTER,
        ),
    )


# --- payloads -----------------------------------------------------------------------------------------


def uvci(number: int) -> str:
    body = f"URN:UVCI:01:VN:BYT/TESTVECTOR{number:06d}"
    return f"{body}#{uvci_checksum(body)}"


def person(
    full_name: str,
    dob: str,
    product: str,
    *,
    dn: int,
    sd: int,
    dt: str,
    number: int,
    issuer_text: str = ISSUER_TEXT,
) -> DCC:
    codes = VIETNAM_VACCINES[product]
    return DCC(
        nam=Name.from_vietnamese(full_name),
        dob=DateOfBirth.from_text(dob),
        entry=Vaccination(
            tg="840539006",
            vp=codes.vp,
            mp=codes.mp,
            ma=codes.ma,
            dn=dn,
            sd=sd,
            dt=dt,
            co="VN",
            is_=issuer_text,
            ci=uvci(number),
        ),
    )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def claims_bytes(dcc: Mapping[str, Any], *, iat: datetime = ISSUED_AT, exp: datetime = EXPIRES_AT) -> bytes:
    return cwt.encode_claims(iss="VN", iat=_epoch(iat), exp=_epoch(exp), dcc=dcc)


def sign1(
    signer: DeterministicSigner,
    payload: bytes,
    *,
    protected: bytes | None = None,
    unprotected: Mapping[int, object] | None = None,
    wrap: Callable[[list[object]], object] = lambda item: cbor.Tagged(cose.COSE_SIGN1_TAG, item),
) -> bytes:
    """A COSE_Sign1 built by hand from codec functions (headers, envelope and tags chosen by the caller)."""
    protected = cose.encode_protected(int(signer.algorithm), signer.kid) if protected is None else protected
    signature = signer.sign(cose.sig_structure_for(protected, payload))
    return cbor.dumps(wrap([protected, dict(unprotected or {}), payload, signature]))


# --- vectors ------------------------------------------------------------------------------------------


def _clock_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector:
    name: str
    tests: str  # one line for the README table
    code: str | None  # the failing step code vaxcred reports, None for a valid vector
    description: str
    dcc: Mapping[str, Any]
    certificate: Pair
    clock: datetime
    flags: Mapping[str, bool]
    cose: bytes | None = None  # the COSE_Sign1 (omitted from the file if include_cose is False)
    include_cose: bool = True
    compressed: bytes | None = None  # default: zlib of cose
    base45_text: str | None = None  # default: Base45 of compressed
    picture: bool = True

    def layers(self) -> dict[str, Any]:
        compressed = self.compressed
        if compressed is None:
            assert self.cose is not None
            compressed = compress.compress(self.cose)
        b45 = self.base45_text if self.base45_text is not None else base45.b45encode(compressed)
        hc1 = prefix.add_prefix(b45)
        out: dict[str, Any] = {"JSON": self.dcc, "CBOR": cbor.dumps(dict(self.dcc)).hex()}
        if self.cose is not None and self.include_cose:
            out["COSE"] = self.cose.hex()
        out["COMPRESSED"] = compressed.hex()
        out["BASE45"] = b45
        out["PREFIX"] = hc1
        if self.picture:
            out["2DCODE"] = base64.b64encode(qr.render_png(hc1)).decode("ascii")
        status = f"INVALID [{self.code}]" if self.code else "VALID"
        out["TESTCTX"] = {
            "VERSION": 1,
            "SCHEMA": SCHEMA_VERSION,
            "CERTIFICATE": base64.b64encode(self.certificate.der).decode("ascii"),
            "VALIDATIONCLOCK": _clock_text(self.clock),
            "DESCRIPTION": f"{status}: {self.description}",
            "GATEWAY-ENV": GATEWAY_ENV,
        }
        out["EXPECTEDRESULTS"] = dict(self.flags)
        return out


def _must_refuse(action: Callable[[], object], code: str) -> None:
    """The issuer must refuse what a hand-built vector carries (else the vector would not need building)."""
    try:
        action()
    except (errors.IssuanceError, errors.ModelError, errors.SchemaError) as e:
        if e.code != code:
            raise AssertionError(f"the issuer refused with {e.code}, expected {code}") from e
        return
    raise AssertionError(f"the issuer accepted what it must refuse ({code})")


def build_vectors(keys: KeySet) -> list[Vector]:
    vectors: list[Vector] = []
    dsc_signer = keys.dsc.signer()

    def issued(dcc: DCC, pair: Pair = keys.dsc, policy: IssuancePolicy | None = None) -> bytes:
        passport = issue(dcc, pair.signer(), now=ISSUED_AT, policy=policy)
        return passport.cose

    # -- positives: Vietnamese holders, products, partial dates, PS256, booster ------------------------
    duc = person("Nguyễn Văn Đức", "1990-05-17", "Comirnaty", dn=2, sd=2, dt="2021-09-12", number=1)
    positives = [
        (
            "vn_comirnaty_2_2",
            "Comirnaty 2/2; name with tone marks and Đ",
            "Nguyễn Văn Đức, full dob, Comirnaty dose 2/2, ES256",
            duc,
        ),
        (
            "vn_vaxzevria_dob_year",
            "Vaxzevria 2/2; dob year only",
            "Trần Thị Ánh Tuyết, dob year only (1975), Vaxzevria dose 2/2, ES256",
            person("Trần Thị Ánh Tuyết", "1975", "Vaxzevria", dn=2, sd=2, dt="2021-08-03", number=2),
        ),
        (
            "vn_spikevax_dob_year_month",
            "Spikevax 1/2; dob year-month",
            "Lê Hoàng Phương, dob year-month (1988-11), Spikevax dose 1/2, ES256",
            person("Lê Hoàng Phương", "1988-11", "Spikevax", dn=1, sd=2, dt="2021-10-21", number=3),
        ),
        (
            "vn_bbibp_corv_2_2",
            "BBIBP-CorV (Sinopharm) 2/2",
            "Phạm Đình Dũng, BBIBP-CorV (Vero Cell) dose 2/2, ES256",
            person("Phạm Đình Dũng", "1962-02-28", "BBIBP-CorV", dn=2, sd=2, dt="2021-07-30", number=4),
        ),
        (
            "vn_abdala_3_3",
            "Abdala 3/3 (three-dose primary series); surname Đ",
            "Đặng Ngọc Hải Yến, Abdala dose 3/3, ES256",
            person("Đặng Ngọc Hải Yến", "2001-12-01", "Abdala", dn=3, sd=3, dt="2021-12-20", number=5),
        ),
        (
            "vn_spikevax_booster_3_3",
            "booster: Spikevax 3/3 after two doses",
            "Võ Thị Hồng Nhung, booster Spikevax dose 3/3, ES256",
            person("Võ Thị Hồng Nhung", "1995-07-04", "Spikevax", dn=3, sd=3, dt="2022-01-15", number=6),
        ),
        (
            "vn_dob_unknown",
            "dob empty (unknown, allowed by schema 1.3.0); `is` in Vietnamese",
            "Huỳnh Thị Mỹ Lệ, dob unknown (\"\"), CoronaVac dose 2/2, issuer text 'Bộ Y tế', ES256",
            person(
                "Huỳnh Thị Mỹ Lệ",
                "",
                "CoronaVac",
                dn=2,
                sd=2,
                dt="2021-09-30",
                number=7,
                issuer_text="Bộ Y tế",
            ),
        ),
    ]
    for name, tests, description, dcc in positives:
        vectors.append(
            Vector(
                name=name,
                tests=tests,
                code=None,
                description=description,
                dcc=dcc.to_json(),
                cose=issued(dcc),
                certificate=keys.dsc,
                clock=CLOCK,
                flags=expected_flags(),
            )
        )
    ha = person("Hoàng Thị Thu Hà", "1983-03-08", "Comirnaty", dn=2, sd=2, dt="2021-11-02", number=8)
    vectors.append(
        Vector(
            name="vn_ps256_rsa2048",
            tests="PS256 signature, RSA-2048 DSC",
            code=None,
            description="Hoàng Thị Thu Hà, Comirnaty dose 2/2, PS256 (RSA-2048 DSC, PSS salt 32)",
            dcc=ha.to_json(),
            cose=issued(ha, keys.dsc_rsa),
            certificate=keys.dsc_rsa,
            clock=CLOCK,
            flags=expected_flags(),
        )
    )

    # -- COSE envelope variants that must verify -------------------------------------------------------
    an = person("Ngô Thanh An", "1979-10-10", "Comirnaty", dn=2, sd=2, dt="2021-10-05", number=9)
    an_json = an.to_json()
    an_claims = claims_bytes(an_json)
    vectors += [
        Vector(
            name="cose_kid_unprotected_only",
            tests="kid only in the unprotected header",
            code=None,
            description="protected header {1: -7} only, kid in the unprotected header (allowed; protected wins "
            "when both are present)",
            dcc=an_json,
            cose=sign1(
                dsc_signer,
                an_claims,
                protected=cbor.dumps({1: int(Algorithm.ES256)}),
                unprotected={4: keys.dsc.kid},
            ),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(),
        ),
        Vector(
            name="cose_untagged",
            tests="COSE_Sign1 without tag 18",
            code=None,
            description="untagged COSE_Sign1 array (tag 18 is optional)",
            dcc=an_json,
            cose=sign1(dsc_signer, an_claims, wrap=lambda item: item),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(),
        ),
        Vector(
            name="cose_cwt_tag61",
            tests="CWT tag 61 around tag 18",
            code=None,
            description="COSE_Sign1 tagged 61(18(...)) (CWT tag around the COSE_Sign1 tag)",
            dcc=an_json,
            cose=sign1(
                dsc_signer,
                an_claims,
                wrap=lambda item: cbor.Tagged(cose.CWT_TAG, cbor.Tagged(cose.COSE_SIGN1_TAG, item)),
            ),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(),
        ),
    ]

    # -- time ------------------------------------------------------------------------------------------
    duc_json = duc.to_json()
    duc_cose = issued(duc)
    binh = person("Trương Văn Bình", "1958-01-20", "Vaxzevria", dn=2, sd=2, dt="2021-08-20", number=10)
    binh_json = binh.to_json()
    vectors += [
        Vector(
            name="time_passport_expired",
            tests="VALIDATIONCLOCK after exp",
            code="time.expired",
            description=f"exp {_clock_text(EXPIRES_AT)}, clock one day later (the DSC is still valid)",
            dcc=duc_json,
            cose=duc_cose,
            certificate=keys.dsc,
            clock=EXPIRES_AT + timedelta(days=1),
            flags=expected_flags(failing_checks=("EXPECTEDEXPIRATIONCHECK",)),
        ),
        Vector(
            name="time_not_yet_valid",
            tests="iat after VALIDATIONCLOCK",
            code="time.not_yet_valid",
            description=f"iat {_clock_text(ISSUED_AT)}, clock one day earlier (no clock skew allowed)",
            dcc=duc_json,
            cose=duc_cose,
            certificate=keys.dsc,
            clock=ISSUED_AT - timedelta(days=1),
            flags=expected_flags(failing_checks=("EXPECTEDEXPIRATIONCHECK",)),
        ),
        Vector(
            name="time_dsc_expired",
            tests="VALIDATIONCLOCK after the DSC's notAfter",
            code="time.expired",
            description=f"DSC notAfter {_clock_text(SHORT_DSC_NOT_AFTER)}, passport exp clamped to it "
            "(IssuancePolicy(clamp_to_dsc=True)), clock 2026-01-15",
            dcc=binh_json,
            cose=issued(binh, keys.dsc_short, IssuancePolicy(clamp_to_dsc=True)),
            certificate=keys.dsc_short,
            clock=datetime(2026, 1, 15, tzinfo=UTC),
            flags=expected_flags(failing_checks=("EXPECTEDEXPIRATIONCHECK",)),
        ),
        Vector(
            name="time_exp_after_dsc_not_after",
            tests="exp later than the DSC's notAfter (hand-built)",
            code="time.exp_after_dsc",
            description=f"exp {_clock_text(EXPIRES_AT)} > DSC notAfter {_clock_text(SHORT_DSC_NOT_AFTER)}; "
            "the clock is inside both; the issuer refuses this (issue.exp_past_dsc)",
            dcc=binh_json,
            cose=sign1(keys.dsc_short.signer(), claims_bytes(binh_json)),
            certificate=keys.dsc_short,
            clock=CLOCK,
            flags=expected_flags(failing_checks=("EXPECTEDEXPIRATIONCHECK",)),
        ),
    ]
    _must_refuse(lambda: issue(binh, keys.dsc_short.signer(), now=ISSUED_AT), "issue.exp_past_dsc")

    # -- key usage -------------------------------------------------------------------------------------
    vectors.append(
        Vector(
            name="eku_test_only_signs_vaccination",
            tests="DSC with the test EKU only signs a vaccination (hand-built)",
            code="key_usage.not_allowed",
            description="DSC EKU 1.3.6.1.4.1.1847.2021.1.1 (test) only, payload type v; the issuer refuses "
            "this (issue.key_usage)",
            dcc=duc_json,
            cose=sign1(keys.dsc_test_eku.signer(), claims_bytes(duc_json)),
            certificate=keys.dsc_test_eku,
            clock=CLOCK,
            flags=expected_flags(failing_checks=("EXPECTEDKEYUSAGE",)),
        )
    )
    _must_refuse(lambda: issue(duc, keys.dsc_test_eku.signer(), now=ISSUED_AT), "issue.key_usage")

    # -- schema ----------------------------------------------------------------------------------------
    no_nam = {k: v for k, v in an_json.items() if k != "nam"}
    bad_dob = {**an_json, "dob": "1990-13-45"}
    vectors += [
        Vector(
            name="schema_missing_nam",
            tests="signed payload without `nam` (hand-built)",
            code="schema.invalid",
            description="the DCC has no nam (required); signature and times are fine",
            dcc=no_nam,
            cose=sign1(dsc_signer, claims_bytes(no_nam)),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(failing_checks=("EXPECTEDSCHEMAVALIDATION",), json_valid=False),
        ),
        Vector(
            name="schema_dob_month_13_pattern_only",
            tests="dob 1990-13-45: matches the schema pattern, so the schema step passes (hand-built)",
            code=None,
            description="dob 1990-13-45 matches the 1.3.0 pattern ^((19|20)\\d\\d(-\\d\\d){0,2}){0,1}$; "
            "format is not asserted (DCC.md §2, §8), so the schema step passes; vaxcred's model and issuer "
            "refuse this dob",
            dcc=bad_dob,
            cose=sign1(dsc_signer, claims_bytes(bad_dob)),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(),
        ),
    ]
    _must_refuse(lambda: issue(no_nam, dsc_signer, now=ISSUED_AT), "model.bad_payload")
    _must_refuse(lambda: issue(bad_dob, dsc_signer, now=ISSUED_AT), "model.bad_date")

    # -- signature -------------------------------------------------------------------------------------
    tampered_cose = cose.decode_sign1(duc_cose)
    assert tampered_cose.payload.count(b"1990-05-17") == 1
    tampered_payload = tampered_cose.payload.replace(b"1990-05-17", b"1980-05-17")
    tampered_json = {**duc_json, "dob": "1980-05-17"}
    vectors += [
        Vector(
            name="sig_tampered_payload",
            tests="payload byte changed after signing",
            code="signature.invalid",
            description="dob changed from 1990-05-17 to 1980-05-17 inside the signed payload (JSON and CBOR "
            "show the tampered DCC)",
            dcc=tampered_json,
            cose=cose.encode_sign1(tampered_cose.protected_bytes, tampered_payload, tampered_cose.signature),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDVERIFY"),
        ),
        Vector(
            name="sig_wrong_kid",
            tests="kid of another DSC",
            code="kid.unknown",
            description="signed by the DSC in CERTIFICATE, but the protected kid is another DSC's "
            f"({keys.dsc_other.kid.hex()})",
            dcc=duc_json,
            cose=sign1(
                dsc_signer,
                claims_bytes(duc_json),
                protected=cose.encode_protected(int(Algorithm.ES256), keys.dsc_other.kid),
            ),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDVERIFY"),
        ),
        Vector(
            name="sig_other_key_same_kid",
            tests="kid and CERTIFICATE of one DSC, signature by another key",
            code="signature.invalid",
            description="kid and CERTIFICATE name dsc-ec-other, the signature is dsc-ec's",
            dcc=duc_json,
            cose=sign1(
                dsc_signer,
                claims_bytes(duc_json),
                protected=cose.encode_protected(int(Algorithm.ES256), keys.dsc_other.kid),
            ),
            certificate=keys.dsc_other,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDVERIFY"),
        ),
        Vector(
            name="sig_alg_header_mismatch",
            tests="PS256 in the header, EC P-256 key",
            code="signature.alg_mismatch",
            description="protected alg -37 (PS256) over a valid ECDSA P-256 signature; the key type fixes "
            "the algorithm (ES256), the header must agree",
            dcc=duc_json,
            cose=sign1(
                dsc_signer,
                claims_bytes(duc_json),
                protected=cose.encode_protected(int(Algorithm.PS256), keys.dsc.kid),
            ),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDVERIFY"),
        ),
    ]

    # -- decoding layers -------------------------------------------------------------------------------
    good_b45 = base45.b45encode(compress.compress(duc_cose))
    lower_at = next(i for i, ch in enumerate(good_b45) if ch.isalpha())
    lowercase_b45 = good_b45[:lower_at] + good_b45[lower_at].lower() + good_b45[lower_at + 1 :]
    triplet_b45 = good_b45[:15] + ":::" + good_b45[18:]  # 44 + 44*45 + 44*2025 = 91124 > 65535
    vectors += [
        Vector(
            name="b45_lowercase",
            tests="lower-case character in Base45",
            code="base45.invalid_char",
            description=f"character {lower_at} of BASE45 lower-cased ({good_b45[lower_at]!r} -> "
            f"{lowercase_b45[lower_at]!r}); no 2DCODE (QR alphanumeric mode has no lower case)",
            dcc=duc_json,
            cose=duc_cose,
            base45_text=lowercase_b45,
            picture=False,
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDB45DECODE", picture=False),
        ),
        Vector(
            name="b45_triplet_overflow",
            tests="Base45 triplet above 65535",
            code="base45.overflow",
            description="the sixth triplet of BASE45 replaced with ':::' (91124 > 65535)",
            dcc=duc_json,
            cose=duc_cose,
            base45_text=triplet_b45,
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDB45DECODE"),
        ),
    ]

    # zlib bomb: a correctly signed COSE_Sign1 padded, in its unprotected header, to just over 64 KiB.
    # Deflated with fixed Huffman codes (Z_FIXED): at level 9 with dynamic codes the run deflates to a long
    # run of zero bytes, and python-qrcode 8.2 cannot render a QR block of all-zero data codewords at
    # ECC M/Q/H ("glog(0)", python-qrcode#330, fixed after 8.2).
    padding_size = 64 * 1024 + 1
    bomb_cose = sign1(dsc_signer, claims_bytes(duc_json), unprotected={-65537: bytes(padding_size)})
    deflater = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_FIXED)
    bomb_compressed = deflater.compress(bomb_cose) + deflater.flush()
    assert len(bomb_cose) > compress.MAX_INFLATED
    vectors.append(
        Vector(
            name="zlib_inflates_past_64kib",
            tests="COMPRESSED inflates past the 64 KiB cap",
            code="zlib.too_large",
            description=f"a signed COSE_Sign1 with {padding_size} zero bytes in an unprotected header "
            f"(label -65537) inflates to {len(bomb_cose)} bytes > 65536; COSE omitted from this file "
            "(it would be 130 KB of hex); deflated with fixed Huffman codes",
            dcc=duc_json,
            cose=bomb_cose,
            include_cose=False,
            compressed=bomb_compressed,
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDCOMPRESSION"),
        )
    )

    # duplicate map key in the CWT claims: iat twice, with different values
    hcert = cbor.dumps({-260: {1: dict(duc_json)}})  # a one-entry map: A1 <key> <value>
    dup_claims = b"".join(
        (
            b"\xa5",
            cbor.dumps(1) + cbor.dumps("VN"),
            cbor.dumps(4) + cbor.dumps(_epoch(EXPIRES_AT)),
            cbor.dumps(6) + cbor.dumps(_epoch(ISSUED_AT)),
            cbor.dumps(6) + cbor.dumps(_epoch(ISSUED_AT - timedelta(days=365))),
            hcert[1:],
        )
    )
    vectors.append(
        Vector(
            name="cbor_duplicate_claim_key",
            tests="duplicate key (iat, 6) in the CWT claims map (hand-built CBOR)",
            code="cbor.duplicate_key",
            description="claims map A5 with key 6 (iat) twice, different values; correctly signed; strict "
            "CBOR decoders must reject it (last-wins and first-wins decoders would disagree)",
            dcc=duc_json,
            cose=sign1(dsc_signer, dup_claims),
            certificate=keys.dsc,
            clock=CLOCK,
            flags=expected_flags(fails_at="EXPECTEDDECODE"),
        )
    )

    names = [v.name for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    return vectors


# --- files --------------------------------------------------------------------------------------------

README_TITLE = "# vaxcred test vectors"
KEY_WARNING = (
    "PUBLIC TEST KEY from vaxcred's test_vectors/ - published on purpose, unencrypted.\n"
    "NEVER use it, or trust anything signed with it, outside tests.\n"
)

LICENSE_TEXT = """\
vaxcred test vectors

Copyright the vaxcred authors.

Everything in this folder (the vector JSON files, the README and the test certificates and keys in
keys/) is generated by scripts/make_test_vectors.py and is part of vaxcred. It is licensed under the
Apache License, Version 2.0 (the "License"); you may not use these files except in compliance with the
License. You may obtain a copy of the License at

    https://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and limitations under the License.

The vector format follows eu-digital-green-certificates/dgc-testdata (Apache-2.0); no file of that
project is copied here. The personal data in the vectors is invented.
"""

_SHORT = {
    "EXPECTEDUNPREFIX": "UNPREFIX",
    "EXPECTEDB45DECODE": "B45DECODE",
    "EXPECTEDCOMPRESSION": "COMPRESSION",
    "EXPECTEDDECODE": "DECODE",
    "EXPECTEDVERIFY": "VERIFY",
    "EXPECTEDEXPIRATIONCHECK": "EXPIRATIONCHECK",
    "EXPECTEDKEYUSAGE": "KEYUSAGE",
    "EXPECTEDSCHEMAVALIDATION": "SCHEMAVALIDATION",
    "EXPECTEDVALIDJSON": "VALIDJSON",
    "EXPECTEDVALIDOBJECT": "VALIDOBJECT",
    "EXPECTEDENCODE": "ENCODE",
    "EXPECTEDPICTUREDECODE": "PICTUREDECODE",
}


def _flag_summary(flags: Mapping[str, bool]) -> str:
    false = [_SHORT[f] for f, v in flags.items() if not v]
    true = [_SHORT[f] for f, v in flags.items() if v]
    parts = []
    if false:
        parts.append("**false:** " + ", ".join(false))
    parts.append("true: " + (", ".join(true) if true else "none"))
    return "<br>".join(parts)


def readme(vectors: Sequence[Vector], keys: KeySet) -> str:
    rows = "\n".join(
        f"| `{RAW.as_posix()}/{v.name}.json` | {v.tests} | {'`' + v.code + '`' if v.code else 'valid'} | "
        f"{_flag_summary(v.flags)} |"
        for v in vectors
    )
    key_rows = "\n".join(
        f"| `keys/{p.stem}.pem` | `keys/{p.stem}.TEST-ONLY.key.pem` | {_key_text(p)} | "
        f"{'-' if p.stem == 'csca' else '`' + p.kid.hex() + '`'} |"
        for p in keys.all()
    )
    return f"""\
{README_TITLE}

> **WARNING: `keys/*.TEST-ONLY.key.pem` ARE PUBLIC TEST KEYS.** They are published on purpose, unencrypted,
> so that anyone can re-create and extend these vectors. Never use them for anything but tests, never put
> their certificates in a production trust list, and treat anything signed with them as forged.

HC1 passports in the [dgc-testdata](https://github.com/eu-digital-green-certificates/dgc-testdata) JSON
format (read by `vaxcred.conformance`): one JSON object per file with the layers `JSON`, `CBOR` (hex of the DCC
map), `COSE`, `COMPRESSED`, `BASE45`, `PREFIX`, `2DCODE` (Base64 PNG), a `TESTCTX` (`CERTIFICATE` = Base64
DER of the DSC to trust, `VALIDATIONCLOCK`, `DESCRIPTION`, `SCHEMA` {SCHEMA_VERSION}, `GATEWAY-ENV`
`{GATEWAY_ENV}`) and `EXPECTEDRESULTS`. Flag semantics are upstream's: `false` means the step fails *or an
earlier one did*. `DESCRIPTION` starts with `VALID` or `INVALID [code]`, the step code vaxcred reports.

Generated by `scripts/make_test_vectors.py` (`make vectors`); do not edit by hand.
`tests/conformance/test_own_vectors.py` runs every vector through `vaxcred.conformance.run_vector` and checks
that regenerating gives these files byte for byte.

## Determinism

- Clock: certificates from {_clock_text(DSC_NOT_BEFORE)}, passports issued at {_clock_text(ISSUED_AT)}
  with exp {_clock_text(EXPIRES_AT)}; most vectors validate at {_clock_text(CLOCK)}.
- Keys: EC P-256 scalars are SHA-256 of a fixed label; the RSA-2048 primes come from a SHA-256 counter
  stream. Certificates have fixed serial numbers and times and are signed by the CSCA with RFC 6979
  deterministic ECDSA.
- Signatures: ES256 with RFC 6979 nonces; PS256 with a PSS salt derived from the signed bytes (the
  verifier cannot tell, PSS salts are not checked).
- UVCIs are fixed (`URN:UVCI:01:VN:BYT/TESTVECTOR…` with checksum); all names and dates are invented.
- zlib (level 9) and the PNG encoder come from the installed Python and Pillow: another zlib build
  (e.g. zlib-ng) can change `COMPRESSED`, `BASE45`, `PREFIX` and `2DCODE` bytes, not their meaning.

## Vectors

All under `{RAW.as_posix()}/`; the DSC is `dsc-ec` unless the description says otherwise.

| File | Tests | vaxcred code | Expected flags |
|---|---|---|---|
{rows}

## Keys and certificates (`keys/`)

| Certificate | Private key (TEST ONLY) | What | kid |
|---|---|---|---|
{key_rows}

## License

Apache-2.0, part of vaxcred: see `LICENSE`.
"""


def _key_text(pair: Pair) -> str:
    cert = pair.certificate
    key = "RSA-2048" if isinstance(pair.private_key, rsa.RSAPrivateKey) else "EC P-256"
    if pair.stem == "csca":
        role = "CSCA (self-signed)"
    else:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        role = "DSC, EKU " + ", ".join(oid.dotted_string for oid in eku)
    return (
        f"{role}, {key}, serial {cert.serial_number:#x}, "
        f"{_clock_text(cert.not_valid_before_utc)} - {_clock_text(cert.not_valid_after_utc)}"
    )


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def write_all(out: Path) -> list[Path]:
    """Write the whole folder; returns the files written."""
    keys = make_keys()
    vectors = build_vectors(keys)
    if out.exists():
        readme_path = out / "README.md"
        ours = readme_path.is_file() and readme_path.read_text(encoding="utf-8").startswith(README_TITLE)
        if any(out.iterdir()) and not ours:
            raise SystemExit(f"refusing to replace {out}: not empty and not a test-vector folder")
        shutil.rmtree(out)
    (out / RAW).mkdir(parents=True)
    (out / "keys").mkdir()
    written: list[Path] = []

    def write(path: Path, text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        path.write_bytes(data)
        written.append(path)

    for vector in vectors:
        write(out / RAW / f"{vector.name}.json", _json_text(vector.layers()))
    for pair in keys.all():
        write(out / "keys" / f"{pair.stem}.pem", pair.certificate.public_bytes(serialization.Encoding.PEM))
        pem = pair.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write(out / "keys" / f"{pair.stem}.TEST-ONLY.key.pem", KEY_WARNING.encode() + pem)
    write(out / "README.md", readme(vectors, keys))
    write(out / "LICENSE", LICENSE_TEXT)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (rewritten)")
    args = parser.parse_args(argv)
    written = write_all(args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
