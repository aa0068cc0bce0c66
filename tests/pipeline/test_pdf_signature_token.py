"""A printable certificate signed by a document signer whose key (and whose CSCA's key) is on the SoftHSM2 token."""

from __future__ import annotations

from datetime import timedelta

from tests.pipeline.test_pdf_signature import NOW, unsigned
from vaxcred import keys
from vaxcred.crypto import ExternalSigner
from vaxcred.keys.purpose_signers import make_document_signer
from vaxcred.pipeline.reports.pdf_signature import sign_certificate_pdf, verify_certificate_pdf

__all__ = ["unsigned"]  # the fixture, shared with the file-key tests


def test_a_token_document_signer_signs_a_pdf_that_verifies(token: keys.Pkcs11Token, unsigned: bytes) -> None:
    """PAdES through the Signer protocol with the key on the token: intact, valid, trusted to the token CSCA."""
    csca = keys.make_csca(now=NOW, private_key=token.generate("ec", label="pdf csca"))
    document = make_document_signer(
        csca, now=NOW, private_key=token.generate("ec", label="pdf document signer")
    )
    signer = document.signer()
    assert isinstance(signer, ExternalSigner)
    signed = sign_certificate_pdf(unsigned, signer, now=NOW, chain=[csca.certificate])
    report = verify_certificate_pdf(signed, trust_roots=[csca.certificate], now=NOW + timedelta(days=1))
    assert report.ok, report.problems
    assert report.document_signer
