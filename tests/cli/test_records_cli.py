"""`vaxcred records export` / `records verify` on the pipeline CLI's database: every form of a record (text, binary,
QR image, stdin) verifies offline with the site certificate; tampered, foreign and malformed records are INVALID
with their codes; the terminal never shows the citizen ID. In process (main) and as a real subprocess."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cli.test_pipeline_cli import VERIFY_AT, Flow, _first_holder, db_copy, flow, run  # noqa: F401 (fixtures)
from vaxcred import qr
from vaxcred.cli._common import EXIT_INVALID, EXIT_NEEDS_CHECK, EXIT_USAGE, EXIT_VALID
from vaxcred.codec import base45
from vaxcred.pipeline.reports.record_text import RECORD_TEXT_PREFIX, decode_record_text


def _holder_doses(flow: Flow, citizen_id: str) -> list[tuple[int, str]]:  # noqa: F811
    """(dose id, site) of the holder's doses in force, in the export's order."""
    with contextlib.closing(sqlite3.connect(flow.db_path)) as conn:
        rows = conn.execute(
            "SELECT d.id, d.site_id FROM doses d JOIN persons p ON p.id = d.person_id "
            "WHERE p.citizen_id = ? AND d.withdrawn_at IS NULL ORDER BY d.dose_number, d.date, d.id",
            (citizen_id,),
        ).fetchall()
    return [(int(i), str(s)) for i, s in rows]


def _verify(flow: Flow, path: str, site: str, *extra: str) -> tuple[int, str]:  # noqa: F811
    return run(
        [
            "records",
            "verify",
            path,
            "--site-cert",
            str(flow.keys / "sites" / f"{site}.pem"),
            "--at",
            VERIFY_AT,
            *extra,
        ]
    )


def test_export_prints_one_text_record_per_dose_and_each_verifies(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """stdout: one VXSR1 line per dose in force; each verifies VALID with its site certificate, the site CA and
    the citizen ID; nothing on the terminal names the person."""
    citizen_id, _, _ = _first_holder(flow.db_path)
    doses = _holder_doses(flow, citizen_id)
    code, out = run(["records", "export", "--citizen-id", citizen_id, "--db", flow.db])
    assert code == EXIT_VALID, out
    lines = [line for line in out.splitlines() if line.startswith(RECORD_TEXT_PREFIX)]
    assert len(lines) == len(doses) >= 1
    assert f"exported {len(doses)} site records" in out
    for line, (_, site) in zip(lines, doses, strict=True):
        path = tmp_path / "record.txt"
        path.write_text(line + "\n", encoding="ascii")
        code, out = _verify(
            flow, str(path), site, "--site-ca", str(flow.keys / "site-ca.pem"), "--citizen-id", citizen_id
        )
        assert code == EXIT_VALID, out
        assert out.startswith("VALID site-signed dose record (batch)")
        assert "the record is for the given ID" in out
        assert citizen_id not in out


def test_export_to_files_text_and_binary_for_one_dose(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """--dose-id with --out: dose-<id>.txt (the text line) or, --binary, dose-<id>.cbor (the bytes), mode 0600;
    both verify, the binary one read from stdin too."""
    _, dose_id, site = _first_holder(flow.db_path)
    text_dir, binary_dir = tmp_path / "text", tmp_path / "binary"
    assert (
        run(["records", "export", "--dose-id", str(dose_id), "--out", str(text_dir), "--db", flow.db])[0] == 0
    )
    code, out = run(
        [
            "records",
            "export",
            "--dose-id",
            str(dose_id),
            "--out",
            str(binary_dir),
            "--binary",
            "--db",
            flow.db,
        ]
    )
    assert code == 0, out
    text_file, binary_file = text_dir / f"dose-{dose_id}.txt", binary_dir / f"dose-{dose_id}.cbor"
    assert [p.name for p in text_dir.iterdir()] == [text_file.name]
    assert text_file.stat().st_mode & 0o777 == binary_file.stat().st_mode & 0o777 == 0o600
    assert decode_record_text(text_file.read_text(encoding="ascii")) == binary_file.read_bytes()
    for path in (text_file, binary_file):
        code, out = _verify(flow, str(path), site, "--site-ca", str(flow.keys / "site-ca.pem"))
        assert code == EXIT_VALID, out
        assert "citizen:  not checked" in out


def test_a_qr_image_of_a_record_verifies(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """A PNG of the record's QR code (what the certificate prints) is decoded in the isolated child and verifies."""
    _, dose_id, site = _first_holder(flow.db_path)
    code, out = run(["records", "export", "--dose-id", str(dose_id), "--db", flow.db])
    assert code == 0, out
    (line,) = [x for x in out.splitlines() if x.startswith(RECORD_TEXT_PREFIX)]
    image = tmp_path / "record.png"
    image.write_bytes(qr.render_png(line, ecc="M", box_size=4))
    code, out = _verify(flow, str(image), site, "--site-ca", str(flow.keys / "site-ca.pem"), "--json")
    assert code == EXIT_VALID, out
    result = json.loads(out)
    assert result["status"] == "VALID"
    assert result["record"]["site"] == site
    assert result["checked"] == {"chain": True, "citizen": False}


def test_without_the_site_ca_the_result_needs_a_check(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """The signature holds but the certificate itself was not checked: NEEDS_CHECK, exit 2."""
    _, dose_id, site = _first_holder(flow.db_path)
    out_dir = tmp_path / "r"
    assert (
        run(["records", "export", "--dose-id", str(dose_id), "--out", str(out_dir), "--db", flow.db])[0] == 0
    )
    code, out = _verify(flow, str(out_dir / f"dose-{dose_id}.txt"), site)
    assert code == EXIT_NEEDS_CHECK, out
    assert out.startswith("NEEDS_CHECK")
    assert "NOT checked (give --site-ca)" in out


def test_bad_records_are_invalid_with_their_codes(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """Another person's ID, another site's certificate, a flipped payload byte (no longer in the signed batch), a bad prefix, bad Base45: exit 1, coded."""
    _, dose_id, site = _first_holder(flow.db_path)
    out_dir = tmp_path / "r"
    assert (
        run(
            [
                "records",
                "export",
                "--dose-id",
                str(dose_id),
                "--out",
                str(out_dir),
                "--binary",
                "--db",
                flow.db,
            ]
        )[0]
        == 0
    )
    record = (out_dir / f"dose-{dose_id}.cbor").read_bytes()
    other_site = next(p.stem for p in (flow.keys / "sites").glob("*.pem") if p.stem != site)
    flipped = bytearray(record)
    flipped[-5] ^= 0x01
    cases = {
        "wrong-citizen": (record, site, ["--citizen-id", "001099999999"], "sitesign.citizen_mismatch"),
        "wrong-site": (record, other_site, [], "sitesign.kid_mismatch"),
        "flipped": (bytes(flipped), site, [], "sitesign.not_in_batch"),
        "prefix": (b"HC1:" + base45.b45encode(record).encode(), site, [], "sitesign.bad_prefix"),
        "base45": (RECORD_TEXT_PREFIX.encode() + b"AB~", site, [], "base45."),
        "empty": (b"", site, [], "sitesign.bad_prefix"),
        "garbage": (bytes(range(128, 192)), site, [], "sitesign.bad_prefix"),
    }
    for name, (data, cert_site, extra, expected) in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        code, out = _verify(flow, str(path), cert_site, *extra)
        assert code == EXIT_INVALID, (name, out)
        assert out.startswith(f"INVALID site record: [{expected}"), (name, out)
        assert "Traceback" not in out
        assert "001099999999" not in out


def test_export_refusals_are_typed(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """No such person or dose: exit 1 pipeline.unknown_record; both or neither selector, --binary to the
    terminal: usage errors (exit 3)."""
    code, out = run(["records", "export", "--citizen-id", "000000000", "--db", flow.db])
    assert (code, "pipeline.unknown_record" in out) == (EXIT_INVALID, True)
    code, out = run(["records", "export", "--dose-id", str(10**12), "--db", flow.db])
    assert (code, "pipeline.unknown_record" in out) == (EXIT_INVALID, True)
    assert run(["records", "export", "--db", flow.db])[0] == EXIT_USAGE
    assert run(["records", "export", "--dose-id", "1", "--citizen-id", "x", "--db", flow.db])[0] == EXIT_USAGE
    assert run(["records", "export", "--dose-id", "1", "--binary", "--db", flow.db])[0] == EXIT_USAGE


def test_a_withdrawn_dose_is_refused_by_id_and_left_out_of_the_person(flow: Flow, db_copy: str) -> None:  # noqa: F811
    """A dose withdrawn (set here directly in the copy): by id, pipeline.dose_withdrawn; the person's export has
    one record fewer."""
    citizen_id, dose_id, _ = _first_holder(flow.db_path)
    before = run(["records", "export", "--citizen-id", citizen_id, "--db", db_copy])[1].count(
        RECORD_TEXT_PREFIX
    )
    with contextlib.closing(sqlite3.connect(db_copy.removeprefix("sqlite:///"))) as conn:
        conn.execute("UPDATE doses SET withdrawn_at = '2026-01-03 00:00:00.000000' WHERE id = ?", (dose_id,))
        conn.commit()
    code, out = run(["records", "export", "--dose-id", str(dose_id), "--db", db_copy])
    assert (code, "pipeline.dose_withdrawn" in out) == (EXIT_INVALID, True), out
    code, out = run(["records", "export", "--citizen-id", citizen_id, "--db", db_copy])
    assert out.count(RECORD_TEXT_PREFIX) == before - 1


def test_records_verify_in_a_real_process_from_stdin(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """`python -m vaxcred records verify -` in a subprocess: the text on stdin, exit 0 and VALID on stdout."""
    citizen_id, dose_id, site = _first_holder(flow.db_path)
    exported = subprocess.run(
        [sys.executable, "-m", "vaxcred", "records", "export", "--dose-id", str(dose_id), "--db", flow.db],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(RECORD_TEXT_PREFIX)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaxcred",
            "records",
            "verify",
            "-",
            "--site-cert",
            str(flow.keys / "sites" / f"{site}.pem"),
            "--site-ca",
            str(flow.keys / "site-ca.pem"),
            "--citizen-id",
            citizen_id,
            "--at",
            VERIFY_AT,
        ],
        input=exported.stdout,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("VALID")
    assert citizen_id not in done.stdout + done.stderr


def test_certificate_pdf_prints_a_code_per_dose_only_when_asked(flow: Flow, tmp_path: Path) -> None:  # noqa: F811
    """`certificate-pdf` embeds only the passport's QR by default and with --no-site-records (a record's salted
    citizen-ID hash would disclose the ID to whoever scans the paper); --site-records adds one per signed dose."""
    citizen_id, _, _ = _first_holder(flow.db_path)
    doses = len(_holder_doses(flow, citizen_id))
    for flags, images in ((["--site-records"], 1 + doses), (["--no-site-records"], 1), ([], 1)):
        pdf = tmp_path / f"{'-'.join(flags) or 'default'}.pdf"
        code, out = run(
            ["certificate-pdf", "--citizen-id", citizen_id, "--out", str(pdf), *flags, "--db", flow.db]
        )
        assert code == 0, out
        assert pdf.read_bytes().count(b"/Subtype /Image") == images


def test_a_person_with_no_signed_dose_has_nothing_to_export(tmp_path: Path) -> None:
    """Imported and checked but not site-signed: exit 1, pipeline.no_site_record, the unsigned doses counted."""
    from tests.cli.test_corrections_duplicate_cli import CITIZEN, _database

    db, _ = _database(tmp_path)
    code, out = run(["records", "export", "--citizen-id", CITIZEN, "--db", db])
    assert code == EXIT_INVALID, out
    assert "[pipeline.no_site_record] no dose in force has a current site signature (3 unsigned)" in out
    assert CITIZEN not in out
