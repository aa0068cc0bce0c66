"""Signed printable certificates: PAdES signatures (pyHanko) by the ministry's document-signing key, and their check.

:func:`sign_certificate_pdf` adds one PAdES baseline signature (``ETSI.CAdES.detached``, SHA-256) to a PDF from
:func:`~vaxcred.pipeline.reports.certificate_pdf.render_certificate_pdf`, so any PDF reader shows who signed it
and whether the file changed since. The signature is made by a :class:`vaxcred.crypto.Signer` — a local key
or a token-held key (PKCS#11) alike — never by handing key bytes to pyHanko: ES256 signers give raw ``r‖s``,
written into the CMS as DER; PS256 signers sign RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32).

:func:`verify_certificate_pdf` answers what a reader of a printed-then-scanned-or-mailed PDF asks: is there
exactly one signature, is it intact and cryptographically valid, does its certificate chain to a root the
caller trusts at ``now``, does it cover the whole file, and is the signer a document signer (EKU
``id-kp-documentSigning``). An edited copy — bytes changed inside the signed range, or a revision appended
after signing — fails with a reason.

Time is a parameter: the signing time written into the signature is ``now`` (pyHanko would read the clock).
Requires the ``pdf`` extra (fpdf2, pyHanko).
"""

from __future__ import annotations

__all__ = ["PdfSignatureReport", "sign_certificate_pdf", "verify_certificate_pdf"]

import asyncio
import functools
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.crypto import Algorithm, Signer, raw_to_der
from vaxcred.errors import IssuanceError
from vaxcred.oids import DOCUMENT_SIGNING_EKU
from vaxcred.trust.store import require_utc
from vaxcred.x509util import load_untrusted_certificate

_FIELD = "MinistrySignature"
_MAX_PDF_BYTES = 8 * 1024 * 1024


@functools.cache
def _load_pyhanko() -> None:
    """Import pyHanko once, silencing only cryptography's DSA deprecation that its import triggers (pyHanko
    names DSA types; vaxcred never uses DSA)."""
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning
        )
        import pyhanko.sign
        import pyhanko.sign.validation  # noqa: F401


@dataclass(frozen=True, slots=True, kw_only=True)
class PdfSignatureReport:
    """What :func:`verify_certificate_pdf` found; ``ok`` only when every check holds."""

    ok: bool
    signer: str | None
    signed_at: datetime | None
    intact: bool
    valid: bool
    trusted: bool
    covers_whole_file: bool
    document_signer: bool
    problems: tuple[str, ...]


def _asn1_certificate(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _mechanism(algorithm: Algorithm) -> Any:
    from asn1crypto import algos

    if algorithm is Algorithm.ES256:
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": algos.RSASSAPSSParams(
                {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "mask_gen_algorithm": algos.MaskGenAlgorithm(
                        {
                            "algorithm": "mgf1",
                            "parameters": algos.DigestAlgorithm({"algorithm": "sha256"}),
                        }
                    ),
                    "salt_length": 32,
                    "trailer_field": "trailer_field_bc",
                }
            ),
        }
    )


def _cms_signer(signer: Signer, chain: Sequence[x509.Certificate]) -> Any:
    """A pyHanko ``Signer`` whose raw signatures come from ``signer`` (so a token-held key works too)."""
    _load_pyhanko()
    from pyhanko.sign.signers.pdf_cms import Signer as HankoSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    class _VaxcredCmsSigner(HankoSigner):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if digest_algorithm != "sha256":
                raise IssuanceError(
                    f"digest {digest_algorithm} refused: SHA-256 only", code="issue.pdf_signature"
                )
            raw = signer.sign(data)
            return raw_to_der(raw) if signer.algorithm is Algorithm.ES256 else raw

    registry = SimpleCertificateStore.from_certs([_asn1_certificate(c) for c in chain])  # type: ignore[no-untyped-call]
    return _VaxcredCmsSigner(
        signing_cert=_asn1_certificate(signer.certificate),
        cert_registry=registry,
        signature_mechanism=_mechanism(signer.algorithm),
        embed_roots=True,
    )


def sign_certificate_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    now: datetime,
    chain: Sequence[x509.Certificate] = (),
    reason: str = "Bộ Y tế xác nhận / Certified by the Ministry of Health",
    location: str = "Viet Nam",
) -> bytes:
    """``pdf`` with a PAdES signature by ``signer`` (a document signer) at ``now``; ``chain``: the CSCA etc."""
    _load_pyhanko()
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.sign import fields, signers

    when = require_utc(now, "now")
    if not _has_document_signing_eku(signer.certificate):
        raise IssuanceError(
            "the signing certificate is not a document signer (EKU id-kp-documentSigning)",
            code="issue.wrong_key",
        )
    meta = signers.PdfSignatureMetadata(
        field_name=_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )

    class _FixedTimePdfSigner(signers.PdfSigner):
        """Writes ``now`` as the signing time instead of reading the clock."""

        def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
            session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
            session.system_time = when
            return session

    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
    except (PdfReadError, ValueError) as e:
        raise IssuanceError(f"not a readable PDF: {e}", code="issue.pdf_signature") from e
    pdf_signer = _FixedTimePdfSigner(meta, signer=_cms_signer(signer, chain))
    out = io.BytesIO()
    asyncio.run(pdf_signer.async_sign_pdf(writer, output=out))
    return out.getvalue()


def _has_document_signing_eku(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return DOCUMENT_SIGNING_EKU in eku


def verify_certificate_pdf(
    pdf: bytes, *, trust_roots: Sequence[x509.Certificate], now: datetime
) -> PdfSignatureReport:
    """Check the one signature of a signed certificate PDF against ``trust_roots`` at ``now``; never raises on
    a bad file (the report says what is wrong)."""
    _load_pyhanko()
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.general import SigningError
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko_certvalidator import ValidationContext

    when = require_utc(now, "now")

    def failed(problem: str) -> PdfSignatureReport:
        return PdfSignatureReport(
            ok=False,
            signer=None,
            signed_at=None,
            intact=False,
            valid=False,
            trusted=False,
            covers_whole_file=False,
            document_signer=False,
            problems=(problem,),
        )

    if not isinstance(pdf, bytes) or len(pdf) > _MAX_PDF_BYTES:
        return failed(f"not a PDF of at most {_MAX_PDF_BYTES} bytes")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as e:
        return failed(f"unreadable PDF: {e}")
    if len(signatures) != 1:
        return failed(f"expected exactly one signature, found {len(signatures)}")
    embedded = signatures[0]
    context = ValidationContext(
        trust_roots=[_asn1_certificate(c) for c in trust_roots],
        moment=when,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    try:
        status = validate_pdf_signature(embedded, context)
    except (SignatureValidationError, SigningError, PdfError, ValueError, KeyError, TypeError) as e:
        return failed(f"signature cannot be validated: {e}")
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    try:  # pyhanko's parser (asn1crypto) reads what cryptography's may refuse: an unreadable signer is a failure
        signer_cert = load_untrusted_certificate(status.signing_cert.dump())
    except (ValueError, x509.InvalidVersion) as e:
        return failed(f"the signer's certificate is not readable: {e}")
    document_signer = _has_document_signing_eku(signer_cert)
    covers = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    problems = []
    if not status.intact:
        problems.append("the signed bytes changed after signing")
    if not status.valid:
        problems.append("the signature does not verify")
    if not status.trusted:
        problems.append("the signer does not chain to a trusted root at this time")
    if not covers:
        problems.append("content was added after the signature (it does not cover the whole file)")
    if not document_signer:
        problems.append("the signer is not a document signer (EKU id-kp-documentSigning)")
    return PdfSignatureReport(
        ok=not problems,
        signer=signer_cert.subject.rfc4514_string(),
        signed_at=status.signer_reported_dt,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        covers_whole_file=covers,
        document_signer=document_signer,
        problems=tuple(problems),
    )
