"""The `vaxcred` command line: the verify contract (JSON shape, exit codes) and the key/issue/trust flow."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vaxcred.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
STEPS = [
    "prefix",
    "base45",
    "zlib",
    "cose",
    "kid",
    "signature",
    "chain",
    "time",
    "key_usage",
    "schema",
    "revocation",
    "rules",
]
PERSON = {
    "name": "Trần Thị Thu Hương",
    "dob": "1985-11",
    "vaccine": "Vaxzevria",
    "dose": 2,
    "doses_total": 2,
    "date": "2021-10-04",
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key chain made through the CLI at a fixed time."""
    folder = tmp_path_factory.mktemp("cli") / "keys"
    mp = pytest.MonkeyPatch()
    mp.setenv("VAXCRED_PASSPHRASE", "cli test passphrase")
    try:
        assert main(["keys", "init", str(folder), "--at", "2026-01-01T00:00:00Z"]) == 0
    finally:
        mp.undo()
    return folder


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAXCRED_PASSPHRASE", "cli test passphrase")


@pytest.fixture
def hc1_file(chain: Path, tmp_path: Path, passphrase: None) -> Path:
    """A passport issued through `vaxcred issue` from a person/dose record."""
    record = tmp_path / "person.json"
    record.write_text(json.dumps(PERSON, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "hc1.txt"
    png = tmp_path / "qr.png"
    code = main(
        [
            "issue",
            str(record),
            "--keys",
            str(chain),
            "--out",
            str(out),
            "--png",
            str(png),
            "--at",
            "2026-01-02T00:00:00Z",
        ]
    )
    assert code == 0
    return out


def _verify_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["verify", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_verify_json_has_the_contract_shape(
    hc1_file: Path, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints status, every step by name with result/code/message, holder and certificate."""
    dsc = next(chain.glob("dsc-*.pem"))
    code, doc = _verify_json([str(hc1_file), "--dsc", str(dsc), "--at", "2026-03-01T00:00:00Z"], capsys)
    assert code == 0
    assert doc["status"] == "VALID"
    steps = doc["steps"]
    assert isinstance(steps, dict)
    assert list(steps) == STEPS
    assert steps["chain"]["result"] == "skip"
    assert steps["revocation"]["code"] == "revocation.not_configured"
    assert all(set(s) == {"result", "code", "message"} for s in steps.values())
    assert doc["holder"] == {
        "fn": "Trần",
        "gn": "Thị Thu Hương",
        "fnt": "TRAN",
        "gnt": "THI<THU<HUONG",
        "dob": "1985-11",
    }
    cert = doc["certificate"]
    assert isinstance(cert, dict)
    assert cert["v"][0]["mp"] == "EU/1/21/1529"


def test_verify_with_signed_trust_list_checks_the_chain(
    hc1_file: Path, chain: Path, tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signed national trust list anchored at the CSCA gives a passing chain step."""
    tl = tmp_path / "tl.cbor"
    assert (
        main(["trustlist", "export", "--keys", str(chain), "--out", str(tl), "--at", "2026-01-02T00:00:00Z"])
        == 0
    )
    capsys.readouterr()
    code, doc = _verify_json(
        [
            str(hc1_file),
            "--trust-list",
            str(tl),
            "--anchor",
            str(chain / "csca.pem"),
            "--at",
            "2026-03-01T00:00:00Z",
            "--max-trust-age",
            "90d",  # exported two months before the verification time
        ],
        capsys,
    )
    assert code == 0
    assert doc["steps"]["chain"]["result"] == "pass"  # type: ignore[index]
    assert doc["trust_mode"] == "signed_list"


def test_verify_expired_exits_1(hc1_file: Path, chain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After exp the status is INVALID, exit code 1, and the time step says why."""
    dsc = next(chain.glob("dsc-*.pem"))
    code, doc = _verify_json([str(hc1_file), "--dsc", str(dsc), "--at", "2027-06-01T00:00:00Z"], capsys)
    assert code == 1
    assert doc["status"] == "INVALID"
    assert doc["steps"]["time"]["code"] == "time.expired"  # type: ignore[index]


def test_verify_without_trust_is_a_usage_error(hc1_file: Path) -> None:
    """No --dsc and no --trust-list: usage error, exit 3."""
    assert main(["verify", str(hc1_file)]) == 3


def test_unknown_option_is_a_usage_error() -> None:
    """click usage errors exit 3, not click's 2 (2 means NEEDS_CHECK)."""
    assert main(["verify", "--no-such-option"]) == 3


def test_verify_reads_the_qr_image(hc1_file: Path, chain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """INPUT may be a PNG of the QR code."""
    dsc = next(chain.glob("dsc-*.pem"))
    code, doc = _verify_json(
        [str(hc1_file.parent / "qr.png"), "--dsc", str(dsc), "--at", "2026-03-01"], capsys
    )
    assert (code, doc["status"]) == (0, "VALID")


def test_dsc_accepts_pem_der_and_base64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dsc takes PEM, DER or base64 DER; an EU vector verifies at its VALIDATIONCLOCK with each."""
    vector = json.loads((DATA / "dgc-testdata/AT/2DCode/raw/1.json").read_text())
    der = base64.b64decode(vector["TESTCTX"]["CERTIFICATE"])
    b64 = base64.b64encode(der).decode()
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    pem += "\n-----END CERTIFICATE-----\n"
    forms = {"c.der": der, "c.b64": b64.encode(), "c.pem": pem.encode()}
    for name, content in forms.items():
        (tmp_path / name).write_bytes(content)
        _, doc = _verify_json(
            [vector["PREFIX"], "--dsc", str(tmp_path / name), "--at", vector["TESTCTX"]["VALIDATIONCLOCK"]],
            capsys,
        )
        assert doc["steps"]["signature"]["result"] == "pass", name  # type: ignore[index]


def test_issue_refuses_unknown_vaccine(chain: Path, tmp_path: Path, passphrase: None) -> None:
    """An unknown product is refused with exit 1 (typed error, stable code)."""
    record = tmp_path / "p.json"
    record.write_text(json.dumps({**PERSON, "vaccine": "Snake oil"}), encoding="utf-8")
    assert main(["issue", str(record), "--keys", str(chain), "--at", "2026-01-02T00:00:00Z"]) == 1


def test_console_script_runs_in_a_subprocess(hc1_file: Path, chain: Path) -> None:
    """`python -m vaxcred verify` as an outside tool calls it: exit code and one JSON object on stdout."""
    dsc = next(chain.glob("dsc-*.pem"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaxcred",
            "verify",
            hc1_file.read_text().strip(),
            "--dsc",
            str(dsc),
            "--at",
            "2026-03-01T00:00:00Z",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "VALID"


def test_human_output_strips_terminal_escapes(
    tmp_path: Path, passphrase: None, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control characters in a (signed) name never reach the terminal: they are shown as visible escapes."""
    from vaxcred.cli._common import safe

    assert safe("A\x1b[31mB\u202eC") == "A\\x1b[31mB\\u202eC"


def test_non_hc1_text_is_invalid_not_a_usage_error(chain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Text that is neither HC1 nor a file (e.g. an HC2: code) is bad QR content: INVALID, exit 1."""
    dsc = next(chain.glob("dsc-*.pem"))
    code, doc = _verify_json(["HC2:6BFOXN", "--dsc", str(dsc), "--at", "2026-03-01T00:00:00Z"], capsys)
    assert code == 1
    assert doc["steps"]["prefix"]["code"] == "prefix.missing"  # type: ignore[index]
