"""CMS SignedData (RFC 5652) verification: just enough for the EU gateway's per-entry signatures.

The gateway's ``signature`` field is a Base64 CMS ``SignedData`` over the certificate DER, made by the
gateway trust anchor (CSCA and UPLOAD entries) or by the country's upload certificate (DSC entries)
(DCC.md §6).  pyca/cryptography can *build* PKCS#7/CMS signatures but not verify them, so this module
reads the structure with a small bounded BER walker and verifies the signature with ``cryptography``.
(asn1crypto, present as a pyhanko dependency, would parse it too; it stays out of the core: the core
depends on cryptography and cbor2 only.)

What :func:`verify_signed_data` accepts:

- ``ContentInfo`` of type ``signedData``; BER (indefinite lengths, constructed OCTET STRINGs: Bouncy
  Castle, which the gateway runs on, writes them) or DER; nesting at most 32 deep, the whole at most
  :data:`MAX_CMS_BYTES`;
- encapsulated content type ``id-data``, either attached (it must then be exactly ``content``) or detached;
- at least one ``SignerInfo`` whose signature verifies with one of the ``signers`` given.  The
  ``sid`` is a hint only, like a kid: every given signer certificate is tried (a handful at most);
- with signed attributes: ``contentType`` = ``id-data`` and ``messageDigest`` = hash of ``content``, the
  signature over their DER as a ``SET OF`` (RFC 5652 §5.4); without, the signature is over ``content``;
- digests SHA-256/384/512 (SHA-1 refused); signatures ECDSA, RSA PKCS#1 v1.5 (RSA >= 2048 bits) and
  RSASSA-PSS with MGF1 of the same hash; the algorithm must fit the key type.

Anything else raises :class:`CmsError` (one message, no foreign exception).  Pure: bytes in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from vaxcred.der import DerError, decode_oid

__all__ = ["MAX_CMS_BYTES", "CmsError", "verify_signed_data"]

MAX_CMS_BYTES: Final = 64 * 1024
_MAX_DEPTH: Final = 32
_MIN_RSA_BITS: Final = 2048

_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_DATA = "1.2.840.113549.1.7.1"
_ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_RSASSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"

_DIGESTS: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_ECDSA_WITH: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
_RSA_WITH: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}

_SEQUENCE, _SET, _INTEGER, _OID, _OCTET_STRING = 0x30, 0x31, 0x02, 0x06, 0x04
_CONSTRUCTED_OCTET_STRING = 0x24
_CTX0, _CTX1, _CTX2 = 0xA0, 0xA1, 0xA2


class CmsError(Exception):
    """The CMS signature is malformed, unsupported or does not verify (the message says which)."""


# --- a bounded BER reader ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """One element of ``buf``: tag, header start, content span, end (after any end-of-contents octets)."""

    buf: bytes
    tag: int
    start: int
    content_start: int
    content_end: int
    end: int
    definite: bool

    @property
    def content(self) -> bytes:
        return self.buf[self.content_start : self.content_end]

    @property
    def encoding(self) -> bytes:
        return self.buf[self.start : self.end]

    def children(self) -> list[_Node]:
        if not self.tag & 0x20:
            raise CmsError(f"element {self.tag:#04x} is not constructed")
        return list(_elements(self.buf, self.content_start, self.content_end, 1))

    def single(self) -> _Node:
        """The one child of an EXPLICIT wrapper."""
        children = self.children()
        if len(children) != 1:
            raise CmsError(f"element {self.tag:#04x} must hold exactly one element")
        return children[0]

    def expect(self, tag: int) -> _Node:
        if self.tag != tag:
            raise CmsError(f"expected tag {tag:#04x}, found {self.tag:#04x}")
        return self


def _read(buf: bytes, pos: int, limit: int, depth: int) -> _Node:
    if depth > _MAX_DEPTH:
        raise CmsError("nested too deeply")
    start = pos
    if pos + 2 > limit:
        raise CmsError("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise CmsError("high tag numbers are not used in CMS SignedData")
    length = buf[pos + 1]
    pos += 2
    if length == 0x80:  # indefinite (BER): constructed only, ends with 00 00
        if not tag & 0x20:
            raise CmsError("indefinite length on a primitive element")
        inner = pos
        while True:
            if inner + 2 > limit:
                raise CmsError("indefinite-length element without end-of-contents")
            if buf[inner] == 0 and buf[inner + 1] == 0:
                return _Node(buf, tag, start, pos, inner, inner + 2, False)
            inner = _read(buf, inner, limit, depth + 1).end
    if length & 0x80:
        count = length & 0x7F
        if count > 4 or pos + count > limit:
            raise CmsError("bad length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > limit:
        raise CmsError("element runs past its container")
    node = _Node(buf, tag, start, pos, pos + length, pos + length, True)
    if tag & 0x20:
        for _ in _elements(buf, node.content_start, node.content_end, depth + 1):
            pass  # validates the whole subtree once, bounded by depth
    return node


def _elements(buf: bytes, pos: int, end: int, depth: int) -> Iterator[_Node]:
    while pos < end:
        node = _read(buf, pos, end, depth)
        yield node
        pos = node.end


def _parse(data: bytes) -> _Node:
    node = _read(data, 0, len(data), 0)
    if node.end != len(data):
        raise CmsError("trailing bytes after the CMS structure")
    return node


def _oid(node: _Node) -> str:
    content = node.expect(_OID).content
    if content[:1] == b"\x80":  # a non-minimal first arc: DER forbids it
        raise CmsError("bad OBJECT IDENTIFIER")
    try:
        return decode_oid(content)
    except DerError:
        raise CmsError("bad OBJECT IDENTIFIER") from None


def _octets(node: _Node, depth: int = 0) -> bytes:
    """An OCTET STRING's value; BER allows a constructed one made of pieces."""
    if depth > _MAX_DEPTH:
        raise CmsError("nested too deeply")
    if node.tag == _OCTET_STRING:
        return node.content
    if node.tag == _CONSTRUCTED_OCTET_STRING:
        return b"".join(_octets(child, depth + 1) for child in node.children())
    raise CmsError(f"expected an OCTET STRING, found tag {node.tag:#04x}")


def _algorithm(node: _Node) -> tuple[str, _Node | None]:
    parts = node.expect(_SEQUENCE).children()
    if not 1 <= len(parts) <= 2:
        raise CmsError("bad AlgorithmIdentifier")
    return _oid(parts[0]), parts[1] if len(parts) == 2 else None


def _version(node: _Node, allowed: tuple[int, ...]) -> None:
    content = node.expect(_INTEGER).content
    if len(content) != 1 or content[0] not in allowed:
        raise CmsError(f"CMS version must be one of {allowed}")


def _digest(oid: str) -> hashes.HashAlgorithm:
    algorithm = _DIGESTS.get(oid)
    if algorithm is None:
        raise CmsError(f"digest algorithm {oid} not accepted (SHA-256/384/512 only)")
    return algorithm()


# --- SignedData ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SignerInfo:
    digest: hashes.HashAlgorithm
    signed_attrs: _Node | None
    signature_algorithm: str
    signature_parameters: _Node | None
    signature: bytes


def _signed_data(data: bytes) -> tuple[bytes | None, list[_SignerInfo]]:
    """(attached content or None, signer infos) of a ContentInfo(signedData)."""
    outer = _parse(data).expect(_SEQUENCE).children()
    if len(outer) != 2 or _oid(outer[0]) != _ID_SIGNED_DATA:
        raise CmsError("not a CMS ContentInfo of type signedData")
    parts = outer[1].expect(_CTX0).single().expect(_SEQUENCE).children()
    if len(parts) < 4:
        raise CmsError("SignedData has too few fields")
    _version(parts[0], (1, 3, 4, 5))
    parts[1].expect(_SET)
    encap = parts[2].expect(_SEQUENCE).children()
    if not encap or _oid(encap[0]) != _ID_DATA:
        raise CmsError("the encapsulated content type is not id-data")
    content: bytes | None = None
    if len(encap) == 2:
        content = _octets(encap[1].expect(_CTX0).single())
    elif len(encap) > 2:
        raise CmsError("bad EncapsulatedContentInfo")
    for optional in parts[3:-1]:
        if optional.tag not in (_CTX0, _CTX1):  # certificates, crls: not used (signers are given)
            raise CmsError(f"unexpected SignedData field {optional.tag:#04x}")
    infos = [_signer_info(node) for node in parts[-1].expect(_SET).children()]
    if not infos:
        raise CmsError("no SignerInfo")
    return content, infos


def _signer_info(node: _Node) -> _SignerInfo:
    parts = node.expect(_SEQUENCE).children()
    if len(parts) < 5:
        raise CmsError("SignerInfo has too few fields")
    _version(parts[0], (1, 3))  # parts[1] is the sid, a hint only
    digest_oid, _ = _algorithm(parts[2])
    rest = parts[3:]
    signed_attrs = None
    if rest[0].tag == _CTX0:
        signed_attrs = rest[0]
        if not signed_attrs.definite:
            raise CmsError("signed attributes must be DER (definite lengths)")
        rest = rest[1:]
    if len(rest) < 2 or len(rest) > 3 or (len(rest) == 3 and rest[2].tag != _CTX1):
        raise CmsError("bad SignerInfo tail")
    sig_oid, sig_params = _algorithm(rest[0])
    return _SignerInfo(
        digest=_digest(digest_oid),
        signed_attrs=signed_attrs,
        signature_algorithm=sig_oid,
        signature_parameters=sig_params,
        signature=_octets(rest[1]),
    )


def _attributes(node: _Node) -> dict[str, list[_Node]]:
    result: dict[str, list[_Node]] = {}
    for attribute in node.children():
        parts = attribute.expect(_SEQUENCE).children()
        if len(parts) != 2:
            raise CmsError("bad Attribute")
        oid = _oid(parts[0])
        if oid in result:
            raise CmsError(f"attribute {oid} repeated")
        result[oid] = parts[1].expect(_SET).children()
    return result


def _signed_bytes(info: _SignerInfo, content: bytes) -> bytes:
    """What the signature covers: the signed attributes as a SET OF, or the content itself."""
    if info.signed_attrs is None:
        return content
    attrs = _attributes(info.signed_attrs)
    content_type = attrs.get(_ATTR_CONTENT_TYPE)
    digest = attrs.get(_ATTR_MESSAGE_DIGEST)
    if content_type is None or len(content_type) != 1 or _oid(content_type[0]) != _ID_DATA:
        raise CmsError("signed attributes lack contentType id-data")
    if digest is None or len(digest) != 1:
        raise CmsError("signed attributes lack messageDigest")
    hasher = hashlib.new(info.digest.name)
    hasher.update(content)
    if _octets(digest[0]) != hasher.digest():
        raise CmsError("messageDigest does not match the certificate")
    encoding = info.signed_attrs.encoding
    return bytes([_SET]) + encoding[1:]


def _pss(params: _Node | None) -> tuple[hashes.HashAlgorithm, int]:
    """RSASSA-PSS-params: hash, MGF1 with the same hash, salt length (defaults, SHA-1, refused)."""
    if params is None:
        raise CmsError("RSASSA-PSS without parameters (SHA-1 defaults) not accepted")
    fields = {child.tag: child for child in params.expect(_SEQUENCE).children()}
    if _CTX0 not in fields or _CTX1 not in fields:
        raise CmsError("RSASSA-PSS parameters must name the hash and MGF (SHA-1 defaults not accepted)")
    hash_alg, mgf = fields[_CTX0].single(), fields[_CTX1].single()
    digest = _digest(_algorithm(hash_alg)[0])
    mgf_oid, mgf_params = _algorithm(mgf)
    if mgf_oid != _MGF1 or mgf_params is None or _digest(_algorithm(mgf_params)[0]).name != digest.name:
        raise CmsError("RSASSA-PSS must use MGF1 with the same hash")
    salt = digest.digest_size
    if _CTX2 in fields:
        salt_node = fields[_CTX2].single()
        if salt_node.tag != _INTEGER or len(salt_node.content) > 2:
            raise CmsError("bad RSASSA-PSS salt length")
        salt = int.from_bytes(salt_node.content, "big")
    return digest, salt


def _verify_one(info: _SignerInfo, signed: bytes, certificate: x509.Certificate) -> None:
    """Raise CmsError unless ``certificate``'s key verifies ``info``'s signature over ``signed``."""
    key = certificate.public_key()
    oid = info.signature_algorithm
    try:
        if oid in _ECDSA_WITH or oid == _ID_EC_PUBLIC_KEY:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise CmsError("an ECDSA signature needs an EC key")
            digest = _ECDSA_WITH[oid]() if oid in _ECDSA_WITH else info.digest
            key.verify(info.signature, signed, ec.ECDSA(digest))
        elif oid in _RSA_WITH or oid in (_RSA_ENCRYPTION, _RSASSA_PSS):
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
                raise CmsError(f"an RSA signature needs an RSA key of at least {_MIN_RSA_BITS} bits")
            if oid == _RSASSA_PSS:
                pss_digest, salt = _pss(info.signature_parameters)
                pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(pss_digest), salt)
                key.verify(info.signature, signed, pad, pss_digest)
            else:
                digest = _RSA_WITH[oid]() if oid in _RSA_WITH else info.digest
                key.verify(info.signature, signed, padding.PKCS1v15(), digest)
        else:
            raise CmsError(f"signature algorithm {oid} not accepted")
    except InvalidSignature as e:
        raise CmsError("the signature does not verify") from e
    except CmsError:
        raise
    except Exception as e:  # never let a library error escape (SECURITY.md pitfall 23)
        raise CmsError(f"the signature cannot be checked: {type(e).__name__}") from e


def verify_signed_data(cms: bytes, content: bytes, signers: Sequence[x509.Certificate]) -> x509.Certificate:
    """Return the certificate among ``signers`` whose signature in ``cms`` covers ``content``.

    Raises :class:`CmsError` when the structure is malformed or unsupported, an attached content differs
    from ``content``, or no signer info verifies with any of ``signers``.
    """
    if not isinstance(cms, bytes | bytearray) or not isinstance(content, bytes | bytearray):
        raise TypeError("cms and content must be bytes")
    cms, content = bytes(cms), bytes(content)
    if len(cms) > MAX_CMS_BYTES:
        raise CmsError(f"CMS signature larger than {MAX_CMS_BYTES} bytes")
    if not signers:
        raise CmsError("no certificate that may sign this entry")
    try:
        attached, infos = _signed_data(cms)
    except (ValueError, IndexError) as e:  # an unpacking or index mistake on odd input: malformed
        raise CmsError(f"malformed CMS: {e}") from e
    if attached is not None and attached != content:
        raise CmsError("the signed content is not this certificate")
    last = CmsError("no signer info verifies")
    for info in infos:
        try:
            signed = _signed_bytes(info, content)
        except CmsError as e:
            last = e
            continue
        for certificate in signers:
            try:
                _verify_one(info, signed, certificate)
            except CmsError as e:
                last = e
                continue
            return certificate
    raise last
