"""vaxcred.pipeline.reports.certificate_pdf: the printable Vietnamese + English vaccination certificate."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vaxcred import keys, qr
from vaxcred.issue import IssuedPassport, issue, vaccination_dcc
from vaxcred.pipeline.reports.certificate_pdf import CertificateDose, render_certificate_pdf

NOW = datetime(2021, 10, 1, 9, 0, tzinfo=UTC)
NAME = "Nguyễn Thị Thu Hương"
SITE = "Trạm Y tế Phường Láng Thượng, Đống Đa"
PDFTOTEXT = shutil.which("pdftotext")
PDFTOPPM = shutil.which("pdftoppm")


@pytest.fixture(scope="module")
def passport() -> IssuedPassport:
    dsc = keys.make_dsc(keys.make_csca(now=NOW), now=NOW)
    dcc = vaccination_dcc(
        name=NAME, dob="1990-05-17", vaccine="Comirnaty", dose=2, doses_total=2, date="2021-09-20"
    )
    return issue(dcc, dsc.signer(), now=NOW)


def _doses() -> list[CertificateDose]:
    return [
        CertificateDose(dose_number=2, date="2021-09-20", vaccine="Comirnaty", lot="FK1234", site=SITE),
        CertificateDose(
            dose_number=1, date="2021-08-30", vaccine="Comirnaty", lot="FG9876", site="BV Đức Giang"
        ),
    ]


def _render(passport: IssuedPassport, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "full_name": NAME,
        "dob": "1990-05-17",
        "doses": _doses(),
        "uvci": passport.uvci,
        "hc1": passport.hc1,
        "issued_at": NOW,
    }
    arguments.update(overrides)
    return render_certificate_pdf(**arguments)


def _to_unicode_targets(pdf: bytes) -> set[str]:
    """Every character the embedded fonts' ToUnicode maps (fpdf2 writes them as uncompressed bfchar lists)."""
    found: set[str] = set()
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", pdf, re.S):
        for target in re.findall(rb"<[0-9A-Fa-f]+> <([0-9A-Fa-f]+)>", block):
            found.add(bytes.fromhex(target.decode()).decode("utf-16-be"))
    return found


@pytest.fixture(scope="module")
def pdf(passport: IssuedPassport) -> bytes:
    return _render(passport)


def test_is_a_pdf_with_the_embedded_dejavu_font(pdf: bytes) -> None:
    """A PDF with DejaVu Sans (regular and bold) embedded as TrueType subsets, the QR as an image."""
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert set(re.findall(rb"/BaseFont /[A-Z]{6}\+(DejaVuSans\w*)", pdf)) == {
        b"DejaVuSansBook",
        b"DejaVuSansBold",
    }
    assert pdf.count(b"/FontFile2") == 2
    assert b"/Subtype /Image" in pdf


def test_vietnamese_glyphs_are_embedded_and_mapped(pdf: bytes) -> None:
    """Every character of the name, title and site has a glyph whose ToUnicode entry gives it back."""
    needed = set(NAME + "GIẤY CHỨNG NHẬN TIÊM CHỦNG" + SITE) - {" "}
    assert needed <= _to_unicode_targets(pdf)


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed")
def test_extracted_text_holds_the_vietnamese_name(
    pdf: bytes, passport: IssuedPassport, tmp_path: Path
) -> None:
    """pdftotext gives back the name with its diacritics, both titles, the UVCI and the doses."""
    path = tmp_path / "certificate.pdf"
    path.write_bytes(pdf)
    assert PDFTOTEXT is not None
    text = subprocess.run([PDFTOTEXT, str(path), "-"], check=True, capture_output=True).stdout.decode("utf-8")
    for expected in (
        NAME,
        "GIẤY CHỨNG NHẬN TIÊM CHỦNG COVID-19",
        "COVID-19 VACCINATION CERTIFICATE",
        passport.uvci,
        "17/05/1990",
        "30/08/2021",
        "FK1234",
        "Bộ Y tế / Ministry of Health of Viet Nam",
    ):
        assert expected in text


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) is not installed")
def test_printed_qr_code_reads_back_as_the_passport(
    pdf: bytes, passport: IssuedPassport, tmp_path: Path
) -> None:
    """Page 1 rendered at 100 dpi: its QR code decodes to the passport's HC1 text."""
    path = tmp_path / "certificate.pdf"
    path.write_bytes(pdf)
    assert PDFTOPPM is not None
    subprocess.run(
        [PDFTOPPM, "-png", "-r", "100", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")], check=True
    )
    (page,) = tmp_path.glob("page*.png")
    assert qr.decode_image(page.read_bytes()) == passport.hc1


def test_output_depends_only_on_the_arguments(passport: IssuedPassport, pdf: bytes) -> None:
    """Same arguments, same bytes; the creation date is the one given, not the clock."""
    assert _render(passport) == pdf
    assert b"/CreationDate (D:20211001090000Z" in pdf
    later = _render(passport, creation_date=datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert b"/CreationDate (D:20220102030405Z" in later
    assert later != pdf


def test_partial_date_of_birth_is_printed_as_recorded(passport: IssuedPassport) -> None:
    """A year-only or year-month date of birth renders (as 1990, 05/1990)."""
    assert _render(passport, dob="1990").startswith(b"%PDF-")
    assert _render(passport, dob="1990-05").startswith(b"%PDF-")


@pytest.mark.parametrize(
    "overrides",
    [
        {"doses": []},
        {"full_name": "   "},
        {"dob": "17/05/1990"},
        {"hc1": "not an hc1 text: lower case"},
        {"issued_at": datetime(2021, 10, 1)},  # naive
    ],
)
def test_bad_arguments_raise_value_error(passport: IssuedPassport, overrides: dict[str, Any]) -> None:
    """No doses, an empty name, a bad date, text a QR cannot carry or a naive time are caller mistakes."""
    with pytest.raises(ValueError):
        _render(passport, **overrides)


@pytest.mark.parametrize(
    "fields",
    [
        {"dose_number": 0},
        {"dose_number": True},
        {"date": "30/08/2021"},
        {"lot": ""},
        {"site": "a\nb"},
    ],
)
def test_certificate_dose_is_validated(fields: dict[str, Any]) -> None:
    """A dose row with a bad number, date or text raises ValueError."""
    values: dict[str, Any] = {
        "dose_number": 1,
        "date": "2021-08-30",
        "vaccine": "Comirnaty",
        "lot": "X1",
        "site": "S",
    }
    values.update(fields)
    with pytest.raises(ValueError):
        CertificateDose(**values)


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed")
def test_widest_uvci_is_printed_on_one_line(passport: IssuedPassport, tmp_path: Path) -> None:
    """A UVCI of the widest letters (W, M) is shrunk to fit, never wrapped (a random UVCI once broke the line)."""
    uvci = "URN:UVCI:01:VN:BYT/WMWMWMWMWMWMWMWM#W"
    path = tmp_path / "certificate.pdf"
    path.write_bytes(_render(passport, uvci=uvci))
    text = subprocess.run([PDFTOTEXT, str(path), "-"], check=True, capture_output=True).stdout.decode("utf-8")
    assert uvci in text
