"""The printed certificate carries each dose's standalone site-signed record as a QR code (issue 9 review): the
QR images are taken out of the PDF (CCITT G4 streams, wrapped in a TIFF for Pillow), decoded with zxing-cpp, and
each record verifies with :func:`verify_dose` and the site certificate alone; the worst-case record fits a
scannable QR version; page 1 rendered by poppler reads back too."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from tests.pipeline.test_corrections import (
    DUC,
    ISSUED,
    REGISTRY_TYPO,
    Pipeline,
    dsc,  # noqa: F401 (fixture)
    pipeline,  # noqa: F401 (fixture)
    site_ca,  # noqa: F401 (fixture)
    site_keys,  # noqa: F401 (fixture)
)
from vaxcred import keys
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.reports.certificate_data import CertificateData, certificate_data
from vaxcred.pipeline.reports.record_text import RECORD_TEXT_PREFIX, decode_record_text, encode_record_text
from vaxcred.pipeline.reports.site_records import standalone_records
from vaxcred.pipeline.site_signing.batch_codec import encode_batch_record
from vaxcred.pipeline.site_signing.record import verify_dose
from vaxcred.pipeline.site_signing.stage import supersede_signature
from vaxcred.qr.render import _make_qr

PDFTOPPM = shutil.which("pdftoppm")
#: the largest QR version the certificate prints a record at, by site key type (at 48 mm: v26 = 0.37 mm a module
#: with the quiet zone, v29 = 0.35 mm)
MAX_VERSION = {"ec": 26, "rsa": 29}


def _tiff_g4(width: int, height: int, data: bytes, *, black_is_1: bool) -> bytes:
    """A one-strip TIFF around a CCITT G4 stream (as fpdf2 embeds a 1-bit PNG), for Pillow to decode."""
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 1),
        (259, 3, 4),  # CCITT Group 4
        (262, 3, 1 if not black_is_1 else 0),  # BlackIsZero / WhiteIsZero
        (273, 4, 8),  # the strip follows the 8-byte header
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(data)),
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8 + len(data)) + data + ifd


def _pdf_qr_texts(pdf: bytes) -> list[str]:
    """The text of every QR code image embedded in the PDF, in the order they are stored."""
    texts = []
    for match in re.finditer(rb"<<\n((?:/[^\n]*\n)*?/Subtype /Image\n(?:/[^\n]*\n)*?)>>\nstream\n", pdf):
        header = match.group(1).decode("latin-1")
        assert "/Filter /CCITTFaxDecode" in header, header
        width, height, length = (
            int(re.search(rf"/{k} (\d+)", header).group(1)) for k in ("Width", "Height", "Length")
        )
        data = pdf[match.end() : match.end() + length]
        image = Image.open(io.BytesIO(_tiff_g4(width, height, data, black_is_1="/BlackIs1 true" in header)))
        (barcode,) = zxingcpp.read_barcodes(image.convert("L"))
        texts.append(barcode.text)
    return texts


@pytest.fixture
def issued(pipeline: Pipeline) -> tuple[Pipeline, CertificateData]:  # noqa: F811
    """Đức's two doses site-signed (batch records) and his passport issued; his certificate's data."""
    assert pipeline.run_all(REGISTRY_TYPO, ISSUED)
    data = certificate_data(pipeline.db, DUC)
    assert len(data.doses) == 2
    return pipeline, data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_dose_record_on_the_certificate_verifies_with_the_site_certificate(
    issued: tuple[Pipeline, CertificateData],
    site_keys: dict[str, keys.KeyPair],  # noqa: F811
    site_ca: keys.KeyPair,  # noqa: F811
) -> None:
    """The PDF holds the passport's QR and one QR per dose; each dose QR decodes (zxing-cpp) to VXSR1 text whose
    record verifies with the site certificate, the site CA and Đức's ID, and names that dose."""
    _, data = issued
    pdf = data.render(creation_date=ISSUED, site_records=True)
    texts = _pdf_qr_texts(pdf)
    assert texts[0] == data.hc1
    records = texts[1:]
    assert len(records) == len(data.doses)
    for text, dose in zip(records, data.doses, strict=True):
        assert text.startswith(RECORD_TEXT_PREFIX)
        record = decode_record_text(text)
        assert record == dose.site_record
        claims = verify_dose(
            record,
            site_certificate=site_keys["HN-001"].certificate,
            site_ca=site_ca.certificate,
            citizen_id=DUC,
            now=ISSUED + dt.timedelta(days=1),
        )
        assert (claims.dose_number, claims.date, claims.lot) == (dose.dose_number, dose.date, dose.lot)
    assert len(_pdf_qr_texts(data.render(creation_date=ISSUED, site_records=False))) == 1
    assert len(_pdf_qr_texts(data.render(creation_date=ISSUED))) == 1  # off by default (docs/security.md)


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) is not installed")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_printed_page_reads_back_every_code(
    issued: tuple[Pipeline, CertificateData], tmp_path: Path
) -> None:
    """Page 1 rendered at 200 dpi (what a scanner sees): zxing-cpp reads the passport and both dose records."""
    _, data = issued
    path = tmp_path / "certificate.pdf"
    path.write_bytes(data.render(creation_date=ISSUED, site_records=True))
    assert PDFTOPPM is not None
    subprocess.run([PDFTOPPM, "-png", "-r", "200", str(path), str(tmp_path / "page")], check=True)
    read = set()
    for page in sorted(tmp_path.glob("page*.png")):
        read |= {b.text for b in zxingcpp.read_barcodes(Image.open(page).convert("L"))}
    assert read == {data.hc1} | {encode_record_text(d.site_record) for d in data.doses}


@pytest.mark.parametrize("key", ["ec", "rsa"])
def test_the_largest_batch_record_fits_a_scannable_qr_version(site_ca: keys.KeyPair, key: str) -> None:  # noqa: F811
    """A member of the largest batch a site may sign (16 audit-path nodes), a 64-character lot, dose 9: at ECC M
    its text fits QR version 26 with a P-256 site key (the default), 29 with RSA-2048."""
    from vaxcred.pipeline.records.model import DoseRecord
    from vaxcred.pipeline.site_signing.batch import sign_batch

    site = keys.make_site_certificate(site_ca, site_id="HN-001", site_name="HN", now=ISSUED, key=key)
    dose = DoseRecord(
        citizen_id=DUC, vaccine="Comirnaty", lot="L" * 64, date="2021-08-01", dose_number=9, site_id="HN-001"
    )
    signed = sign_batch([dose], signer=site.signer(), now=ISSUED + dt.timedelta(days=1))
    (member,) = signed.outcomes
    assert signed.head is not None
    assert not isinstance(member, Exception)
    worst = encode_batch_record(signed.head, 65_535, [bytes(32)] * 16, member.payload)
    text = encode_record_text(worst)
    assert _make_qr(text, "M", 1, 0).version <= MAX_VERSION[key]


def test_standalone_records_are_the_current_signatures_of_doses_in_force(
    issued: tuple[Pipeline, CertificateData],
    site_keys: dict[str, keys.KeyPair],  # noqa: F811
) -> None:
    """Both backends: a person's export is one verifiable record per signed dose (the certificate's records); a
    superseded signature is not exported but counted; a dose asked for by id that does not exist is refused."""
    pipe, data = issued
    found = standalone_records(pipe.db, citizen_id=DUC)
    assert found.unsigned == 0
    assert [r.record for r in found.records] == [d.site_record for d in data.doses]
    for item in found.records:
        claims = verify_dose(
            item.record, site_certificate=site_keys[item.site_id].certificate, citizen_id=DUC
        )
        assert (claims.dose_number, claims.date) == (item.dose_number, item.date.isoformat())
    first = found.records[0].dose_id
    with pipe.db.begin() as conn:
        assert supersede_signature(conn, first, now=ISSUED + dt.timedelta(days=1))
    again = standalone_records(pipe.db, citizen_id=DUC)
    assert ([r.dose_id for r in again.records], again.unsigned) == ([found.records[1].dose_id], 1)
    assert standalone_records(pipe.db, dose_id=first).records == ()
    with pytest.raises(PipelineError) as raised:
        standalone_records(pipe.db, dose_id=10**9)
    assert raised.value.code == "pipeline.unknown_record"
