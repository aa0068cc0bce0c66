"""The national pipeline through `vaxcred` commands: db init → import → registry check → site signing → issuance →
report, corrections, revocation export, the certificate PDF; and the demo's pipeline part end to end."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from vaxcred import demo
from vaxcred.cli import main
from vaxcred.pipeline.records.model import OPTIONAL_FIELDS, ROW_FIELDS
from vaxcred.pipeline.registry.lookup import RegistryEntry, write_registry_csv
from vaxcred.pipeline.reports.chart import chart_size
from vaxcred.pipeline.synthetic import default_sites, generate_people
from vaxcred.revocation import RevocationBatch

PASSPHRASE = "pipeline cli test passphrase"
KEYS_AT = "2026-01-01T00:00:00Z"
AT = "2026-01-02T08:00:00Z"
VERIFY_AT = "2026-03-01T00:00:00Z"
PROVINCES = ("001", "079")
SITES = default_sites(PROVINCES, per_province=2)
PEOPLE = 100
#: rows the import must reject: a dose number out of range, a vaccine not used in Viet Nam
BAD_ROWS = ({"dose_number": "12"}, {"vaccine": "Vắc xin lạ"})


def run(args: list[str]) -> tuple[int, str]:
    """``main(args)`` with stdout and stderr captured together."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(args)
    return code, buffer.getvalue()


def count(output: str, label: str) -> int:
    """The number after ``label`` on its line (``issued:   1,234`` → 1234)."""
    for line in output.splitlines():
        if line.startswith(label):
            return int(line[len(label) :].split()[0].replace(",", ""))
    raise AssertionError(f"{label!r} not in {output!r}")


@dataclass
class Flow:
    """One run of the pipeline commands on a small synthetic set, and what they printed."""

    folder: Path
    keys: Path
    db_path: Path
    registry: Path
    entries: list[RegistryEntry]
    rows: int
    outputs: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def db(self) -> str:
        return f"sqlite:///{self.db_path}"

    def step(self, name: str, args: list[str]) -> tuple[int, str]:
        result = run(args)
        self.outputs[name] = result
        return result

    def passport_hc1s(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            return [
                r[0] for r in conn.execute("SELECT hc1 FROM passports WHERE status = 'active' ORDER BY id")
            ]


def _write_doses(path: Path) -> tuple[list[RegistryEntry], int]:
    entries: list[RegistryEntry] = []
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=(*ROW_FIELDS, *OPTIONAL_FIELDS), restval="")
        writer.writeheader()
        first: dict[str, str] = {}
        for person in generate_people(PEOPLE, seed=4, sites=SITES, provinces=PROVINCES):
            for row in person.rows:
                first = first or row.to_fields()
                writer.writerow(row.to_fields())
                rows += 1
            if person.entry is not None:
                entries.append(person.entry)
        for bad in BAD_ROWS:
            writer.writerow({**first, **bad})
            rows += 1
    return entries, rows


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    folder = tmp_path_factory.mktemp("pipeline-cli")
    entries, rows = _write_doses(folder / "doses.csv")
    write_registry_csv(folder / "registry.csv", entries)
    f = Flow(
        folder=folder,
        keys=folder / "keys",
        db_path=folder / "vaxcred.db",
        registry=folder / "registry.csv",
        entries=entries,
        rows=rows,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
        mp.delenv("VAXCRED_DB", raising=False)
        assert main(["keys", "init", str(f.keys), "--at", KEYS_AT]) == 0
        for site in SITES:
            assert (
                main(
                    [
                        "keys",
                        "site",
                        str(f.keys),
                        "--site-id",
                        site,
                        "--site-name",
                        f"Trạm {site}",
                        "--at",
                        KEYS_AT,
                    ]
                )
                == 0
            )
        db = ["--db", f.db]
        f.step("db init", ["db", "init", *db])
        f.step(
            "import",
            ["import", str(folder / "doses.csv"), "--rejects", str(folder / "rejects.csv"), *db, "--at", AT],
        )
        f.step("reimport", ["import", str(folder / "doses.csv"), *db, "--at", AT])
        f.step(
            "registry-check",
            ["registry-check", "--registry", str(f.registry), *db, "--at", AT, "--workers", "2"],
        )
        f.step("sign-sites", ["sign-sites", "--keys", str(f.keys), *db, "--at", AT, "--workers", "2"])
        _copy_sqlite(f.db_path, folder / "before-issuance.db")
        f.step("issue-batch", ["issue-batch", "--keys", str(f.keys), *db, "--at", AT])
        f.step("issue-batch again", ["issue-batch", "--keys", str(f.keys), *db, "--at", AT])
        yield f


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("VAXCRED_DB", raising=False)


def _copy_sqlite(source: Path, target: Path) -> None:
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


@pytest.fixture
def db_copy(flow: Flow, tmp_path: Path) -> str:
    """A copy of the flow's database, for tests that change it."""
    _copy_sqlite(flow.db_path, tmp_path / "copy.db")
    return f"sqlite:///{tmp_path / 'copy.db'}"


def test_every_stage_exits_zero(flow: Flow) -> None:
    """db init, import, registry check, site signing and issuance all succeed."""
    assert {name: code for name, (code, _) in flow.outputs.items()} == dict.fromkeys(flow.outputs, 0)


def test_db_init_is_idempotent(flow: Flow) -> None:
    """Running `db init` on a migrated database changes nothing and succeeds."""
    code, out = run(["db", "init", "--db", flow.db])
    assert code == 0
    assert "at schema" in out


def test_commands_refuse_a_database_never_initialised(tmp_path: Path) -> None:
    """Using a database before `db init` is a usage error (exit 3) that names the fix."""
    code, out = run(["report", "--db", f"sqlite:///{tmp_path / 'new.db'}"])
    assert code == 3
    assert "vaxcred db init" in out


def test_import_counts_and_writes_the_rejects(flow: Flow) -> None:
    """Good rows land, bad rows are counted and written to --rejects with line, field and code."""
    out = flow.outputs["import"][1]
    assert count(out, "rows read:") == flow.rows
    assert count(out, "rejected:") == len(BAD_ROWS)
    assert count(out, "doses imported:") == flow.rows - len(BAD_ROWS)
    with (flow.folder / "rejects.csv").open(encoding="utf-8", newline="") as stream:
        rejects = list(csv.DictReader(stream))
    assert [(r["field"], r["code"]) for r in rejects] == [
        ("dose_number", "pipeline.bad_row"),
        ("vaccine", "pipeline.bad_row"),
    ]
    assert [int(r["line"]) for r in rejects] == [flow.rows, flow.rows + 1]  # header = line 1
    assert "pipeline.bad_row (vaccine)" in out


def test_import_again_stores_nothing_twice(flow: Flow) -> None:
    """Re-importing the same file adds no dose: every good row is counted as already stored."""
    out = flow.outputs["reimport"][1]
    assert count(out, "doses imported:") == 0
    assert count(out, "already stored:") == flow.rows - len(BAD_ROWS)
    assert "--rejects FILE" in out


def test_import_strict_exits_1_on_rejects(flow: Flow, db_copy: str) -> None:
    """--strict turns rejected rows into exit 1 (the good rows are still stored)."""
    code, _ = run(["import", str(flow.folder / "doses.csv"), "--strict", "--db", db_copy, "--at", AT])
    assert code == 1


def test_registry_check_classifies_every_person(flow: Flow) -> None:
    """Every person is checked once (two worker processes); the mix is the seeds' (most verified, about a fifth
    failing)."""
    out = flow.outputs["registry-check"][1]
    assert f"checked {PEOPLE} persons" in out
    verified = int(out.split(" verified")[0].rsplit(" ", 1)[1])
    assert 0.6 * PEOPLE < verified < 0.95 * PEOPLE


def test_registry_check_refuses_a_missing_registry_file(flow: Flow) -> None:
    """A registry that is neither a file nor a URL is a usage error."""
    code, _ = run(["registry-check", "--registry", str(flow.folder / "nope.csv"), "--db", flow.db])
    assert code == 3


def test_report_formats_parse(flow: Flow, tmp_path: Path) -> None:
    """text, CSV and JSON agree on the national counts; the chart is a PNG of the documented size."""
    code, text = run(["report", "--db", flow.db, "--at", AT])
    assert code == 0
    assert "Dose data quality" in text
    code, out = run(["report", "--format", "csv", "--db", flow.db, "--at", AT])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    national = next(r for r in rows if r["scope"] == "national")
    assert int(national["doses"]) == flow.rows - len(BAD_ROWS)
    assert int(national["unchecked"]) == 0
    assert {r["key"] for r in rows if r["scope"] == "site"} == set(SITES)
    chart = tmp_path / "chart.png"
    code, _ = run(
        [
            "report",
            "--format",
            "json",
            "--out",
            str(tmp_path / "r.json"),
            "--chart",
            str(chart),
            "--by",
            "site",
            "--db",
            flow.db,
            "--at",
            AT,
        ]
    )
    assert code == 0
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert document["national"] == {
        k: int(v) for k, v in national.items() if k not in ("scope", "key", "name")
    }
    with Image.open(chart) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == chart_size(len(SITES))


def test_sign_sites_signs_the_verified_doses(flow: Flow) -> None:
    """Each site signs its own doses of verified persons (two signing processes, --workers 2); the report then
    counts them signed."""
    out = flow.outputs["sign-sites"][1]
    assert f"{len(SITES)} site keys" in out
    signed = int(out.split(" doses signed")[0].rsplit(" ", 1)[1].replace(",", ""))
    _, report = run(["report", "--format", "json", "--db", flow.db, "--at", AT])
    national = json.loads(report)["national"]
    assert signed == national["signed"] == national["verified"] > 0


def test_issue_batch_issues_once_per_verified_person(flow: Flow) -> None:
    """One passport per verified person; the second run issues none."""
    first, again = flow.outputs["issue-batch"][1], flow.outputs["issue-batch again"][1]
    verified = int(flow.outputs["registry-check"][1].split(" verified")[0].rsplit(" ", 1)[1])
    assert count(first, "issued:") == verified
    assert count(first, "failed (retry):") == 0
    assert count(again, "issued:") == 0
    assert count(again, "held one already:") == verified
    assert len(flow.passport_hc1s()) == verified


def test_issued_passports_verify_valid(flow: Flow, tmp_path: Path, passphrase: None) -> None:
    """`vaxcred verify` accepts a batch-issued passport against the signed national trust list."""
    trust_list = tmp_path / "tl.cbor"
    assert (
        run(["trustlist", "export", "--keys", str(flow.keys), "--out", str(trust_list), "--at", AT])[0] == 0
    )
    hc1 = tmp_path / "hc1.txt"
    hc1.write_text(flow.passport_hc1s()[0], encoding="ascii")
    anchor = flow.keys / "csca.pem"
    code, out = run(
        [
            "verify",
            str(hc1),
            "--trust-list",
            str(trust_list),
            "--anchor",
            str(anchor),
            "--at",
            VERIFY_AT,
            "--max-trust-age",
            "90d",  # the list was exported at AT, two months before VERIFY_AT
            "--json",
        ]
    )
    assert code == 0, out
    assert json.loads(out)["status"] == "VALID"


def test_issue_batch_with_workers_needs_the_passphrase_variable(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes read the passphrase from the environment: without it, a usage error."""
    monkeypatch.delenv("VAXCRED_PASSPHRASE", raising=False)
    code, out = run(["issue-batch", "--keys", str(flow.keys), "--workers", "2", "--db", flow.db])
    assert code == 3
    assert "VAXCRED_PASSPHRASE" in out


def test_issue_batch_with_two_workers_issues_the_same_passports(
    flow: Flow, tmp_path: Path, passphrase: None
) -> None:
    """Two worker processes (the picklable key-chain factory, passphrase from the environment) issue one
    passport per verified person, like one process did."""
    _copy_sqlite(flow.folder / "before-issuance.db", tmp_path / "workers.db")
    db = f"sqlite:///{tmp_path / 'workers.db'}"
    code, out = run(["issue-batch", "--keys", str(flow.keys), "--workers", "2", "--db", db, "--at", AT])
    assert code == 0, out
    assert count(out, "issued:") == count(flow.outputs["issue-batch"][1], "issued:")
    assert count(out, "failed (retry):") == 0
    again = run(["issue-batch", "--keys", str(flow.keys), "--db", db, "--at", AT])[1]
    assert count(again, "issued:") == 0


def _first_holder(db_path: Path) -> tuple[str, int, str]:
    """(citizen ID, newest dose id, that dose's site) of the first person holding an active passport."""
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute(
            "SELECT p.citizen_id, MAX(d.id) FROM persons p JOIN passports x ON x.person_id = p.id "
            "JOIN doses d ON d.person_id = p.id WHERE x.status = 'active' GROUP BY p.id ORDER BY p.id LIMIT 1"
        ).fetchone()
        site = conn.execute("SELECT site_id FROM doses WHERE id = ?", (row[1],)).fetchone()[0]
    return str(row[0]), int(row[1]), str(site)


def test_correction_resolved_with_reissue_and_revocation_export(
    flow: Flow, db_copy: str, tmp_path: Path, passphrase: None
) -> None:
    """A corrected lot: the passport is revoked (UCI + signature hash), re-issued, and the export lists it."""
    citizen_id, dose_id, site = _first_holder(Path(db_copy.removeprefix("sqlite:///")))
    db = ["--db", db_copy]
    code, out = run(
        [
            "corrections",
            "file",
            "--citizen-id",
            citizen_id,
            "--dose-id",
            str(dose_id),
            "--field",
            "lot",
            "--value",
            "FK-FIXED-1",
            *db,
            "--at",
            AT,
        ]
    )
    assert code == 0, out
    assert f"site {site}" in out
    correction_id = out.split("correction ")[1].split(":")[0]
    code, out = run(
        [
            "corrections",
            "resolve",
            correction_id,
            "--registry",
            str(flow.registry),
            "--keys",
            str(flow.keys),
            *db,
            "--at",
            "2026-01-02T10:00:00Z",
        ]
    )
    assert code == 0, out
    assert "revoked" in out
    assert "re-issued: 1 new passport" in out
    export = tmp_path / "revocations.json"
    code, out = run(["revocations", "export", "--out", str(export), *db, "--at", "2026-01-02T10:00:00Z"])
    assert code == 0
    batches = [RevocationBatch.from_json(json.dumps(b).encode()) for b in json.loads(export.read_bytes())]
    assert sorted(b.hash_type.value for b in batches) == ["SIGNATURE", "UCI"]
    assert all(len(b.entries) == 1 for b in batches)
    assert "2 batches, 2 hashes" in out
    # closing it twice is refused
    code, out = run(["corrections", "reject", correction_id, "--note", "duplicate", *db])
    assert code == 1
    assert "pipeline.correction_closed" in out


def test_overdue_lists_the_late_site(flow: Flow, db_copy: str) -> None:
    """An unanswered correction shows up in the overdue report after 48 hours, not before."""
    citizen_id, dose_id, site = _first_holder(Path(db_copy.removeprefix("sqlite:///")))
    db = ["--db", db_copy]
    code, out = run(
        [
            "corrections",
            "file",
            "--citizen-id",
            citizen_id,
            "--dose-id",
            str(dose_id),
            "--field",
            "full_name",
            "--value",
            "Nguyễn Văn Sửa",
            *db,
            "--at",
            AT,
        ]
    )
    assert code == 0, out
    assert (
        run(["corrections", "overdue", *db, "--at", "2026-01-03T08:00:00Z"])[1] == "no overdue corrections\n"
    )
    code, out = run(["corrections", "overdue", *db, "--at", "2026-01-05T00:00:00Z"])
    assert code == 0
    assert out.splitlines()[1].split()[:2] == [site, "1"]
    code, out = run(["corrections", "list", "--site", site, *db, "--at", "2026-01-05T00:00:00Z"])
    assert "OVERDUE" in out
    assert "Nguyễn Văn Sửa" not in out  # a proposed name is masked unless --reveal
    assert "N***** V** S**" in out


def test_certificate_pdf_goes_to_the_file_only(flow: Flow, tmp_path: Path) -> None:
    """The PDF is written (mode 0600); the terminal gets neither the name nor the citizen ID."""
    citizen_id, _, _ = _first_holder(flow.db_path)
    pdf = tmp_path / "certificate.pdf"
    code, out = run(["certificate-pdf", "--citizen-id", citizen_id, "--out", str(pdf), "--db", flow.db])
    assert code == 0, out
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert pdf.stat().st_mode & 0o777 == 0o600
    assert citizen_id not in out
    code, out = run(["certificate-pdf", "--citizen-id", "000000000", "--out", str(pdf), "--db", flow.db])
    assert code == 1
    assert "pipeline.unknown_record" in out


def test_no_personal_data_on_the_terminal(flow: Flow) -> None:
    """No stage prints a citizen ID or a full name."""
    printed = "\n".join(out for _, out in flow.outputs.values())
    for entry in flow.entries:
        assert entry.citizen_id not in printed
        assert entry.full_name not in printed


def test_demo_runs_the_national_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m vaxcred.demo --people 200`: passport part and pipeline part, every output written."""
    assert demo.main(["--out", str(tmp_path), "--people", "200"]) == 0
    out = capsys.readouterr().out
    assert "border check of passport.png: VALID" in out
    assert "Dose data quality" in out
    assert "1 passport re-issued" in out
    for name in (
        "pipeline.db",
        "report.csv",
        "report.json",
        "report.png",
        "revocations.json",
        "certificate.pdf",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["national"]["doses"] > 200


def test_log_key_head_audit_and_proof_through_the_cli(
    flow: Flow, db_copy: str, tmp_path: Path, passphrase: None
) -> None:
    """`vaxcred log`: init-key, sign-head, audit (exit 0), prove; then a passport row altered → audit exit 1."""
    keys_copy = tmp_path / "keys"
    shutil.copytree(flow.keys, keys_copy)
    assert run(["log", "init-key", "--keys", str(keys_copy), "--at", KEYS_AT])[0] == 0
    code, out = run(["log", "sign-head", "--keys", str(keys_copy), "--db", db_copy, "--at", AT])
    assert code == 0, out
    assert "tree head: size" in out
    cert = str(keys_copy / "log-signer.pem")
    code, out = run(["log", "audit", "--db", db_copy, "--log-cert", cert, "--json"])
    report = json.loads(out)
    assert (code, report["intact"], report["uncovered"]) == (0, True, 0)
    assert report["entries"] > 0
    path = Path(db_copy.removeprefix("sqlite:///"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        uvci = conn.execute("SELECT uvci FROM passports ORDER BY id LIMIT 1").fetchone()[0]
    code, out = run(["log", "prove", "--db", db_copy, "--uvci", uvci])
    assert code == 0, out
    assert set(json.loads(out)) == {"entry", "leaf_index", "path", "tree_head"}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE passports SET issued_at = '2025-01-01 00:00:00.000000' WHERE id = 1")
        conn.commit()
    code, out = run(["log", "audit", "--db", db_copy, "--log-cert", cert])
    assert code == 1
    assert "[log.object_altered] passport 1" in out
    code, out = run(["log", "anomalies", "--db", db_copy, "--json"])
    assert code == 0, out
    assert json.loads(out)["passports_without_verified_registry"] == 0
    assert run(["log", "anomalies", "--db", db_copy, "--opening", "19-7"])[0] == 3
