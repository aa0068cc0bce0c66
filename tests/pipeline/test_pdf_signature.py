"""vaxcred.pipeline.reports.pdf_signature: PAdES-signed printable certificates and their check."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vaxcred import keys
from vaxcred.errors import IssuanceError
from vaxcred.issue import issue, vaccination_dcc
from vaxcred.keys.purpose_signers import make_document_signer
from vaxcred.pipeline.reports import CertificateDose, pdf_signature, render_certificate_pdf
from vaxcred.pipeline.reports.pdf_signature import sign_certificate_pdf, verify_certificate_pdf

NOW = datetime(2021, 10, 1, 9, 0, tzinfo=UTC)
PDFSIG = shutil.which("pdfsig")


@pytest.fixture(scope="module", params=["ec", "rsa"])
def chain(request: pytest.FixtureRequest) -> tuple[keys.KeyPair, keys.KeyPair]:
    csca = keys.make_csca(now=NOW)
    return csca, make_document_signer(csca, now=NOW, key=request.param)


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    csca = keys.make_csca(now=NOW)
    passport = issue(
        vaccination_dcc(
            name="Trần Thị Hương",
            dob="1985-03-02",
            vaccine="Comirnaty",
            dose=2,
            doses_total=2,
            date="2021-09-20",
        ),
        keys.make_dsc(csca, now=NOW).signer(),
        now=NOW,
    )
    return render_certificate_pdf(
        full_name="Trần Thị Hương",
        dob="1985-03-02",
        doses=[
            CertificateDose(
                dose_number=2, date="2021-09-20", vaccine="Comirnaty", lot="FK1234", site="BV Bạch Mai"
            )
        ],
        uvci=passport.uvci,
        hc1=passport.hc1,
        issued_at=NOW,
    )


@pytest.fixture(scope="module")
def signed(unsigned: bytes, chain: tuple[keys.KeyPair, keys.KeyPair]) -> bytes:
    csca, document = chain
    return sign_certificate_pdf(unsigned, document.signer(), now=NOW, chain=[csca.certificate])


def test_signed_pdf_verifies_against_the_csca(
    signed: bytes, chain: tuple[keys.KeyPair, keys.KeyPair]
) -> None:
    """A freshly signed certificate is intact, valid, trusted, covers the file and names the document signer."""
    report = verify_certificate_pdf(signed, trust_roots=[chain[0].certificate], now=NOW + timedelta(days=1))
    assert report.ok, report.problems
    assert report.signer is not None
    assert "Document signer VN" in report.signer
    assert report.signed_at == NOW


def test_signing_time_is_the_given_now_not_the_clock(signed: bytes) -> None:
    """The /M date in the signature dictionary is ``now`` (2021), whatever today's date is."""
    assert re.search(rb"/M \(D(:|\\072)20211001090000Z\)", signed)  # pyHanko escapes the colon as \072


def test_a_signer_certificate_cryptography_cannot_read_is_a_report(
    signed: bytes, chain: tuple[keys.KeyPair, keys.KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyHanko's parser reads certificates cryptography's refuses (a serial number that is not positive, say):
    such a signer is a failed report naming it, never an exception."""

    def unreadable(der: bytes) -> None:
        raise ValueError("not an RFC 5280 certificate")

    monkeypatch.setattr(pdf_signature, "load_untrusted_certificate", unreadable)
    report = verify_certificate_pdf(signed, trust_roots=[chain[0].certificate], now=NOW + timedelta(days=1))
    assert not report.ok
    assert any("not readable" in problem for problem in report.problems), report.problems


def test_untrusted_root_is_reported(signed: bytes) -> None:
    """Against another CSCA the signature is valid but not trusted: not ok."""
    other = keys.make_csca(now=NOW)
    report = verify_certificate_pdf(signed, trust_roots=[other.certificate], now=NOW)
    assert report.valid
    assert not report.trusted
    assert not report.ok


def test_a_byte_changed_in_the_signed_range_is_detected(
    signed: bytes, chain: tuple[keys.KeyPair, keys.KeyPair]
) -> None:
    """An edited copy (one byte of the page content changed) is not intact."""
    edited = bytearray(signed)
    position = signed.index(b"/Producer")
    edited[position + 2] ^= 0x01
    report = verify_certificate_pdf(bytes(edited), trust_roots=[chain[0].certificate], now=NOW)
    assert not report.ok
    assert (
        not report.intact or "unreadable" in report.problems[0] or "cannot be validated" in report.problems[0]
    )


def test_a_revision_appended_after_signing_is_detected(
    signed: bytes, chain: tuple[keys.KeyPair, keys.KeyPair]
) -> None:
    """A second revision that changes the document catalogue leaves the signature short of the whole file."""
    from pyhanko.pdf_utils.generic import NameObject, TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root[NameObject("/Lang")] = TextStringObject("en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    report = verify_certificate_pdf(out.getvalue(), trust_roots=[chain[0].certificate], now=NOW)
    assert report.intact
    assert not report.covers_whole_file
    assert not report.ok


def test_garbage_and_unsigned_files_are_reports_not_exceptions(unsigned: bytes) -> None:
    """Random bytes, an unsigned PDF and an oversized blob each give ok=False with a reason."""
    for data in (b"%PDF-1.7\n garbage", unsigned, b"\x00" * 10, b"%PDF" + b"A" * (9 * 1024 * 1024)):
        report = verify_certificate_pdf(data, trust_roots=[], now=NOW)
        assert not report.ok
        assert report.problems


def test_only_a_document_signer_may_sign(unsigned: bytes) -> None:
    """A DSC (passport key) is refused: one key, one purpose."""
    csca = keys.make_csca(now=NOW)
    with pytest.raises(IssuanceError) as e:
        sign_certificate_pdf(unsigned, keys.make_dsc(csca, now=NOW).signer(), now=NOW)
    assert e.value.code == "issue.wrong_key"


def test_document_signer_carries_only_the_document_signing_purpose(
    chain: tuple[keys.KeyPair, keys.KeyPair],
) -> None:
    """EKU is exactly id-kp-documentSigning; it is no CA; it never outlives the CSCA."""
    from cryptography import x509

    from vaxcred.oids import DOCUMENT_SIGNING_EKU

    cert = chain[1].certificate
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        DOCUMENT_SIGNING_EKU
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc <= chain[0].certificate.not_valid_after_utc


@pytest.mark.skipif(PDFSIG is None, reason="pdfsig (poppler-utils) is not installed")
def test_an_independent_reader_shows_the_signer_and_a_valid_signature(signed: bytes, tmp_path: Path) -> None:
    """poppler's pdfsig (a reader that is not pyHanko) names the signer and finds the signature valid."""
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    out = subprocess.run([PDFSIG, str(path)], capture_output=True, text=True, check=False).stdout
    assert "Document signer VN" in out
    assert "Signature is Valid" in out


@pytest.mark.skipif(PDFSIG is None, reason="pdfsig (poppler-utils) is not installed")
def test_an_independent_reader_rejects_an_edited_copy(signed: bytes, tmp_path: Path) -> None:
    """pdfsig reports an edited copy's signature as invalid (digest mismatch)."""
    edited = bytearray(signed)
    position = signed.index(b"/Producer")
    edited[position + 2] ^= 0x01
    path = tmp_path / "edited.pdf"
    path.write_bytes(bytes(edited))
    out = subprocess.run([PDFSIG, str(path)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid" not in out
