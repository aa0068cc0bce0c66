"""The printable vaccination certificate for the citizen: one A4 page, Vietnamese and English, with its QR.

GIẤY CHỨNG NHẬN TIÊM CHỦNG COVID-19 / COVID-19 VACCINATION CERTIFICATE: the holder's name and date of
birth, a table of the doses (dose number, date, vaccine, lot, vaccination site), the UVCI, the passport's
QR code (:func:`vaxcred.qr.render_png` of the HC1 text) and the issuer line.  Minimal disclosure
(SECURITY.md §4): no citizen ID, no gender, nothing the QR does not already carry besides lots and sites.

Below them, one smaller QR code per dose that has one (:attr:`CertificateDose.site_record`): the dose's standalone
site-signed record as text (``VXSR1:`` + Base45, :mod:`vaxcred.pipeline.reports.record_text`), alphanumeric
mode, ECC level M, 48 mm wide, three to a row, continued on a second page when twenty doses need it. A verifier
scans one and checks it with the site's certificate alone (``vaxcred records verify``), without the database or
the passport. The record carries the salted hash of the citizen ID, not the ID (see docs/security.md, "Standalone
site records on paper"): they are printed only when asked for (``site_records=True``).

The text is set in DejaVu Sans (regular and bold), vendored in ``vaxcred/data/fonts/`` with its licence
(Bitstream Vera licence; Debian ``fonts-dejavu-core`` 2.37) because PDF core fonts have no Vietnamese
glyphs; fpdf2 embeds a subset with a ToUnicode map, so the text stays searchable and copyable.

The output depends only on the arguments: the PDF creation date (and the file identifier fpdf2 derives
from it) is ``creation_date``, never the clock.  Rendering reads the package's font files and nothing else.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ISSUER", "CertificateDose", "render_certificate_pdf"]

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Final

from vaxcred._extras import requires_extra
from vaxcred.pipeline.reports.certificate_data import CertificateDose
from vaxcred.pipeline.reports.certificate_data import check_text as _check_text
from vaxcred.pipeline.reports.record_text import encode_record_text
from vaxcred.qr import render_png
from vaxcred.trust.store import require_utc

with requires_extra("pdf", feature="the certificate PDF"):
    from fpdf import FPDF
    from fpdf.enums import Align, TableBordersLayout, XPos, YPos
    from fpdf.fonts import FontFace

#: the issuer line printed when none is given
DEFAULT_ISSUER: Final = "Bộ Y tế / Ministry of Health of Viet Nam"

_FONT_FAMILY: Final = "DejaVuSans"
_FONT_FILES: Final = (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf"))
_TITLE_VI: Final = "GIẤY CHỨNG NHẬN TIÊM CHỦNG COVID-19"
_TITLE_EN: Final = "COVID-19 VACCINATION CERTIFICATE"
_MAX_DOSES: Final = 20
_DATE_RE: Final = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_QR_SIZE_MM: Final = 62.0
#: a site record's QR code: ECC level M holds the largest batch record (16 audit-path nodes, a 64-character lot)
#: in version 26 with a P-256 site key (121 modules + the 4-module quiet zone each side: 0.37 mm a module at
#: 48 mm), 29 with RSA-2048 (0.35 mm); a member of the default batch of 500 in version 20 (0.46 mm)
_RECORD_QR_MM: Final = 48.0
_RECORD_QR_ECC: Final = "M"
_RECORDS_PER_ROW: Final = 3
_MARGIN_MM: Final = 18.0


def _vietnamese_date(value: str) -> str:
    """``1990-05-17`` → ``17/05/1990``; partial dates ``1990-05`` → ``05/1990``, ``1990`` → ``1990``."""
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise ValueError("dates must be YYYY, YYYY-MM or YYYY-MM-DD")
    return "/".join(part for part in reversed(match.groups()) if part)


@contextmanager
def _font_paths() -> Iterator[list[tuple[str, Path]]]:
    folder = resources.files("vaxcred").joinpath("data", "fonts")
    with ExitStack() as stack:
        yield [
            (style, stack.enter_context(resources.as_file(folder.joinpath(name))))
            for style, name in _FONT_FILES
        ]


class _Certificate(FPDF):
    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(_FONT_FAMILY, "", 7.5)
        self.set_text_color(90)
        text = (
            "Mã QR là hộ chiếu vắc xin theo chuẩn EU DCC; quét mã để kiểm tra. / "
            "The QR code is an EU DCC vaccine passport; scan it to verify."
            if self.page_no() == 1
            else "Các mã QR trên trang này là bản ghi mũi tiêm của cơ sở, không phải hộ chiếu vắc xin. / "
            "The QR codes on this page are site records of doses, not vaccine passports."
        )
        self.cell(0, 4, text, align=Align.C)


def render_certificate_pdf(
    *,
    full_name: str,
    dob: str,
    doses: Sequence[CertificateDose],
    uvci: str,
    hc1: str,
    issued_at: datetime,
    issuer: str = DEFAULT_ISSUER,
    creation_date: datetime | None = None,
    site_records: bool = False,
) -> bytes:
    """Render the certificate as PDF bytes (A4; one page, a second when many doses carry site records).

    ``full_name`` as recorded (Vietnamese, normalised to NFC); ``dob`` ``YYYY[-MM[-DD]]``; ``doses`` 1-20
    rows, printed in dose-number order; ``hc1`` the passport text for the QR; ``issued_at`` (aware) printed as
    the issue date; ``creation_date`` (aware) the PDF's metadata date, ``issued_at`` when omitted;
    ``site_records``: print each dose's standalone site record (when it has one) as a QR code.
    Bad arguments raise ``ValueError`` / ``TypeError``.
    """
    name = _check_text("full_name", full_name)
    dob_text = _vietnamese_date(dob) if dob else "—"
    uvci_text = _check_text("uvci", uvci)
    issuer_text = _check_text("issuer", issuer)
    issued = require_utc(issued_at, "issued_at")
    created = require_utc(creation_date if creation_date is not None else issued_at, "creation_date")
    rows = sorted(doses, key=lambda d: (d.dose_number, d.date))
    if not 1 <= len(rows) <= _MAX_DOSES:
        raise ValueError(f"a certificate lists 1 to {_MAX_DOSES} doses")
    if not all(isinstance(d, CertificateDose) for d in rows):
        raise TypeError("doses must be CertificateDose values")
    qr_png = render_png(hc1, ecc="Q", box_size=6, border=2)  # ValueError for text that is not HC1-shaped
    record_codes = [
        (dose.dose_number, render_png(encode_record_text(dose.site_record), ecc=_RECORD_QR_ECC, box_size=4))
        for dose in rows
        if site_records and dose.site_record
    ]

    pdf = _Certificate(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(created.astimezone(UTC))
    pdf.set_title(f"{_TITLE_VI} / {_TITLE_EN}")
    pdf.set_creator("vaxcred")
    pdf.set_lang("vi")
    pdf.set_margins(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM)
    pdf.set_auto_page_break(auto=True, margin=20)
    with _font_paths() as fonts:
        for style, path in fonts:
            pdf.add_font(_FONT_FAMILY, style, path)
        pdf.add_page()
        _draw(pdf, name, dob_text, rows, uvci_text, issuer_text, issued, qr_png)
        if record_codes:
            _draw_site_records(pdf, record_codes)
        return bytes(pdf.output())


def _draw(
    pdf: FPDF,
    name: str,
    dob_text: str,
    rows: Sequence[CertificateDose],
    uvci: str,
    issuer: str,
    issued: datetime,
    qr_png: bytes,
) -> None:
    width = pdf.epw
    # issuer block and national heading
    pdf.set_font(_FONT_FAMILY, "B", 9)
    pdf.set_text_color(0)
    top = pdf.get_y()
    pdf.multi_cell(width * 0.42, 4.5, "BỘ Y TẾ\nMINISTRY OF HEALTH", align=Align.C)
    pdf.set_xy(pdf.l_margin + width * 0.42, top)
    pdf.multi_cell(
        width * 0.58,
        4.5,
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc",
        align=Align.C,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(10)

    # title
    pdf.set_font(_FONT_FAMILY, "B", 16)
    pdf.set_text_color(160, 20, 20)
    pdf.cell(0, 9, _TITLE_VI, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT_FAMILY, "B", 11.5)
    pdf.set_text_color(60)
    pdf.cell(0, 7, _TITLE_EN, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.ln(8)

    # holder (left) and QR (right)
    block_top = pdf.get_y()
    text_width = width - _QR_SIZE_MM - 6
    for label_vi, label_en, value in (
        ("Họ và tên", "Full name", name),
        ("Ngày sinh", "Date of birth", dob_text),
        ("Mã chứng nhận", "Certificate identifier (UVCI)", uvci),
    ):
        pdf.set_font(_FONT_FAMILY, "", 8.5)
        pdf.set_text_color(90)
        pdf.cell(text_width, 4.5, f"{label_vi} / {label_en}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0)
        size = 13.0 if value is name else 11.0
        pdf.set_font(_FONT_FAMILY, "B", size)
        if value is uvci:
            # an identifier must never wrap (a reader copies it whole): shrink wide ones (W, M) to fit
            while pdf.get_string_width(value) > text_width - 2 and size > 6:
                size -= 0.5
                pdf.set_font(_FONT_FAMILY, "B", size)
        pdf.multi_cell(text_width, 6.5, value, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)
    pdf.image(io.BytesIO(qr_png), x=pdf.l_margin + width - _QR_SIZE_MM, y=block_top - 2, w=_QR_SIZE_MM)
    pdf.set_y(max(pdf.get_y(), block_top + _QR_SIZE_MM) + 6)

    # doses
    pdf.set_font(_FONT_FAMILY, "B", 11)
    pdf.cell(0, 7, "Các mũi đã tiêm / Doses received", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.set_font(_FONT_FAMILY, "", 9)
    headings = FontFace(emphasis="BOLD", fill_color=(232, 236, 242))
    with pdf.table(
        col_widths=(14, 26, 44, 26, 64),
        text_align=("CENTER", "CENTER", "LEFT", "LEFT", "LEFT"),
        headings_style=headings,
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        line_height=5.2,
        padding=1.4,
    ) as table:
        heading = table.row()
        for text in (
            "Mũi\nDose",
            "Ngày tiêm\nDate",
            "Vắc xin\nVaccine",
            "Số lô\nLot",
            "Nơi tiêm\nVaccination site",
        ):
            heading.cell(text)
        for dose in rows:
            row = table.row()
            row.cell(str(dose.dose_number))
            row.cell(_vietnamese_date(dose.date))
            row.cell(dose.vaccine)
            row.cell(dose.lot)
            row.cell(dose.site)
    pdf.ln(8)

    # issuer line
    pdf.set_font(_FONT_FAMILY, "", 9.5)
    pdf.multi_cell(
        0,
        5.5,
        f"Cơ quan cấp / Issued by: {issuer}\nNgày cấp / Date of issue: {_vietnamese_date(issued.date().isoformat())}",
        align=Align.L,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


def _draw_site_records(pdf: FPDF, codes: Sequence[tuple[int, bytes]]) -> None:
    """The per-dose site records: a heading, one line on what they are, then the QR codes, labelled."""
    label_mm = 5.0
    row_mm = _RECORD_QR_MM + label_mm + 3
    if pdf.get_y() + 22 + row_mm > pdf.page_break_trigger:  # the heading never ends a page alone
        pdf.add_page()
    pdf.ln(6)
    pdf.set_font(_FONT_FAMILY, "B", 11)
    pdf.cell(
        0,
        7,
        "Bản ghi mũi tiêm có chữ ký của cơ sở / Site-signed dose records",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_font(_FONT_FAMILY, "", 7.5)
    pdf.set_text_color(90)
    pdf.multi_cell(
        0,
        3.8,
        "Mỗi mã là bản ghi một mũi tiêm do cơ sở tiêm ký, kiểm tra được chỉ với chứng thư của cơ sở (không phải hộ "
        "chiếu vắc xin). / Each code is one dose's record signed by its vaccination site, verifiable with the "
        "site's certificate alone (not a vaccine passport): vaxcred records verify.",
        align=Align.L,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(0)
    pdf.ln(2)
    gap = (pdf.epw - _RECORDS_PER_ROW * _RECORD_QR_MM) / (_RECORDS_PER_ROW - 1)
    for start in range(0, len(codes), _RECORDS_PER_ROW):
        if pdf.get_y() + row_mm > pdf.page_break_trigger:
            pdf.add_page()
        top = pdf.get_y()
        for column, (dose_number, png) in enumerate(codes[start : start + _RECORDS_PER_ROW]):
            x = pdf.l_margin + column * (_RECORD_QR_MM + gap)
            pdf.image(io.BytesIO(png), x=x, y=top, w=_RECORD_QR_MM)
            pdf.set_xy(x, top + _RECORD_QR_MM)
            pdf.set_font(_FONT_FAMILY, "", 8.5)
            pdf.cell(_RECORD_QR_MM, label_mm, f"Mũi / Dose {dose_number}", align=Align.C)
        pdf.set_xy(pdf.l_margin, top + row_mm)
