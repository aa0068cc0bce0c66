"""Custody of the paper and of the log through `vaxcred` commands: the document signer, the signed certificate
PDF (`certificate-pdf --keys`, `pdf verify`, poppler's pdfsig) and `verify --log-proof` on a real key chain and
pipeline database (the `flow` fixture of test_pipeline_cli)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import test_keys_cli as keys_cli
from tests.cli import test_pipeline_cli as pipeline_cli
from tests.cli.test_pipeline_cli import AT, KEYS_AT, VERIFY_AT, Flow, _copy_sqlite, _first_holder, run
from vaxcred.pipeline.log import PassportProof
from vaxcred.qr import render_png

#: the pipeline's fixtures: a key chain and a database with issued passports; the passphrase in the environment
flow = pipeline_cli.flow
passphrase = pipeline_cli.passphrase
#: a key chain made by `vaxcred keys init --pkcs11 … --token …` on the SoftHSM2 test token
token_chain = keys_cli.token_chain


@dataclass(frozen=True)
class Custody:
    """A copy of the flow's key chain with a document signer and a log signer, and of its database with a
    signed tree head."""

    keys: Path
    db: str
    db_path: Path


@pytest.fixture(scope="module")
def custody(flow: Flow, tmp_path_factory: pytest.TempPathFactory) -> Custody:
    folder = tmp_path_factory.mktemp("custody")
    keys = folder / "keys"
    shutil.copytree(flow.keys, keys)
    _copy_sqlite(flow.db_path, folder / "copy.db")
    db = f"sqlite:///{folder / 'copy.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAXCRED_PASSPHRASE", "pipeline cli test passphrase")
        code, out = run(["keys", "document-signer", str(keys), "--at", KEYS_AT, "--operator", "tester"])
        assert code == 0, out
        assert run(["log", "init-key", "--keys", str(keys), "--at", KEYS_AT])[0] == 0
        code, out = run(["log", "sign-head", "--keys", str(keys), "--db", db, "--at", AT])
        assert code == 0, out
    return Custody(keys=keys, db=db, db_path=folder / "copy.db")


def test_document_signer_is_logged_and_refused_twice(custody: Custody, passphrase: None) -> None:
    """`keys document-signer` writes the signer once, logs the operator; a second run is refused (exit 1)."""
    assert (custody.keys / "document-signer.pem").exists()
    code, out = run(["keys", "audit", str(custody.keys)])
    assert code == 0, out
    code, out = run(["keys", "document-signer", str(custody.keys), "--at", KEYS_AT])
    assert code == 1
    assert "keys.exists" in out


def _signed_pdf(flow: Flow, custody: Custody, target: Path) -> str:
    citizen_id, _, _ = _first_holder(flow.db_path)
    args = ["certificate-pdf", "--citizen-id", citizen_id, "--out", str(target), "--db", custody.db]
    code, out = run([*args, "--keys", str(custody.keys), "--at", AT])
    assert code == 0, out
    return out


def test_signed_certificate_pdf_verifies(
    flow: Flow, custody: Custody, tmp_path: Path, passphrase: None
) -> None:
    """certificate-pdf --keys signs with the document signer; `pdf verify` names it and exits 0."""
    pdf = tmp_path / "signed.pdf"
    out = _signed_pdf(flow, custody, pdf)
    assert "signed by document signer" in out
    assert "NOT signed" not in out
    code, out = run(
        ["pdf", "verify", str(pdf), "--anchor", str(custody.keys / "csca.pem"), "--at", VERIFY_AT]
    )
    assert code == 0, out
    assert "SIGNATURE VALID" in out
    assert "signer:    CN=" in out
    assert "2026-01-02T08:00:00+00:00" in out


def test_edited_signed_pdf_fails(flow: Flow, custody: Custody, tmp_path: Path, passphrase: None) -> None:
    """A byte changed inside the signed range, or bytes appended: `pdf verify` exits 1 and says why."""
    pdf = tmp_path / "signed.pdf"
    _signed_pdf(flow, custody, pdf)
    data = bytearray(pdf.read_bytes())
    anchor = ["--anchor", str(custody.keys / "csca.pem"), "--at", VERIFY_AT]
    changed = tmp_path / "changed.pdf"
    at = data.index(b"/Producer")  # document metadata, inside the signed range
    data[at + 1 : at + 2] = b"Q"
    changed.write_bytes(bytes(data))
    code, out = run(["pdf", "verify", str(changed), *anchor])
    assert code == 1, out
    assert "SIGNATURE NOT VALID" in out
    appended = tmp_path / "appended.pdf"
    appended.write_bytes(pdf.read_bytes() + b"\n% appended after signing\n")
    code, out = run(["pdf", "verify", str(appended), *anchor])
    assert code == 1, out
    assert "does not cover the whole file" in out


def test_pdf_signed_by_another_chain_is_not_trusted(
    flow: Flow, custody: Custody, tmp_path: Path, passphrase: None
) -> None:
    """Anchored at another CSCA, the signature is intact but not trusted: exit 1."""
    other = tmp_path / "other"
    assert run(["keys", "init", str(other), "--at", KEYS_AT])[0] == 0
    pdf = tmp_path / "signed.pdf"
    _signed_pdf(flow, custody, pdf)
    code, out = run(["pdf", "verify", str(pdf), "--anchor", str(other / "csca.pem"), "--at", VERIFY_AT])
    assert code == 1
    assert "does not chain to a trusted root" in out


def test_unsigned_certificate_pdf_says_so(flow: Flow, custody: Custody, tmp_path: Path) -> None:
    """Without --keys the PDF is written unsigned, stderr says so, and `pdf verify` finds no signature."""
    citizen_id, _, _ = _first_holder(flow.db_path)
    pdf = tmp_path / "plain.pdf"
    code, out = run(["certificate-pdf", "--citizen-id", citizen_id, "--out", str(pdf), "--db", custody.db])
    assert code == 0, out
    assert "NOT signed" in out
    code, out = run(["pdf", "verify", str(pdf), "--anchor", str(custody.keys / "csca.pem")])
    assert code == 1
    assert "found 0" in out


def test_certificate_pdf_keys_without_document_signer_is_a_usage_error(
    flow: Flow, tmp_path: Path, passphrase: None
) -> None:
    """--keys on a chain without a document signer: exit 3 naming `vaxcred keys document-signer`."""
    citizen_id, _, _ = _first_holder(flow.db_path)
    args = ["certificate-pdf", "--citizen-id", citizen_id, "--out", str(tmp_path / "x.pdf"), "--db", flow.db]
    code, out = run([*args, "--keys", str(flow.keys)])
    assert code == 3
    assert "vaxcred keys document-signer" in out
    assert not (tmp_path / "x.pdf").exists()


def test_token_chain_document_signer_signs_the_pdf(flow: Flow, token_chain: Path, tmp_path: Path) -> None:
    """On a token chain the document signer's key is made on the token and signs the PDF there: it verifies."""
    code, out = run(["keys", "document-signer", str(token_chain), "--at", KEYS_AT])
    assert code == 0, out
    assert not (token_chain / "document-signer.key").exists()
    citizen_id, _, _ = _first_holder(flow.db_path)
    pdf = tmp_path / "signed.pdf"
    args = ["certificate-pdf", "--citizen-id", citizen_id, "--out", str(pdf), "--db", flow.db]
    code, out = run([*args, "--keys", str(token_chain), "--at", AT])
    assert code == 0, out
    code, out = run(["pdf", "verify", str(pdf), "--anchor", str(token_chain / "csca.pem"), "--at", VERIFY_AT])
    assert code == 0, out


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) not installed")
def test_pdfsig_names_the_signer(flow: Flow, custody: Custody, tmp_path: Path, passphrase: None) -> None:
    """poppler's pdfsig, an independent reader, finds one signature and names the document signer."""
    pdf = tmp_path / "signed.pdf"
    _signed_pdf(flow, custody, pdf)
    done = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, timeout=60, check=False)
    assert "Signature #1" in done.stdout, done.stdout + done.stderr
    assert "Signature #2" not in done.stdout
    assert "Signer Certificate Common Name:" in done.stdout
    assert "Signature is Valid" in done.stdout


# --- verify --log-proof -----------------------------------------------------------------------------------


def _passports(custody: Custody) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(custody.db_path)) as conn:
        return [
            (str(r[0]), str(r[1]))
            for r in conn.execute(
                "SELECT uvci, hc1 FROM passports WHERE status = 'active' ORDER BY id LIMIT 2"
            )
        ]


def _proof(custody: Custody, uvci: str, target: Path) -> Path:
    code, out = run(["log", "prove", "--db", custody.db, "--uvci", uvci])
    assert code == 0, out
    target.write_text(out, encoding="utf-8")
    return target


def _verify_args(custody: Custody, proof: Path) -> list[str]:
    dsc = sorted(custody.keys.glob("dsc-*.pem"))[0]
    return [
        "--dsc",
        str(dsc),
        "--at",
        VERIFY_AT,
        "--log-proof",
        str(proof),
        "--log-cert",
        str(custody.keys / "log-signer.pem"),
    ]


def test_verify_with_a_valid_log_proof(custody: Custody, tmp_path: Path) -> None:
    """The passport's own proof: VALID, exit 0, and the line naming its index and the head's size."""
    (uvci, hc1), _ = _passports(custody)
    proof = _proof(custody, uvci, tmp_path / "proof.json")
    index = json.loads(proof.read_text(encoding="utf-8"))["leaf_index"]
    code, out = run(["verify", hc1, *_verify_args(custody, proof)])
    assert code == 0, out
    assert f"log proof: included at index {index} under tree head of size " in out
    code, out = run(["verify", hc1, *_verify_args(custody, proof), "--json"])
    assert code == 0, out
    report = json.loads(out)
    assert report["status"] == "VALID"
    assert report["log_proof"]["included"] is True
    assert report["log_proof"]["leaf_index"] == index


def test_verify_with_another_passports_proof_is_invalid(custody: Custody, tmp_path: Path) -> None:
    """A genuine proof of a different passport does not vouch for this one: INVALID, exit 1."""
    (_, hc1), (other_uvci, _) = _passports(custody)
    proof = _proof(custody, other_uvci, tmp_path / "proof.json")
    code, out = run(["verify", hc1, *_verify_args(custody, proof)])
    assert code == 1, out
    assert "INVALID" in out
    assert "log proof: NOT VALID — [log.not_included]" in out
    code, out = run(["verify", hc1, *_verify_args(custody, proof), "--json"])
    report = json.loads(out)
    assert (code, report["status"], report["log_proof"]["code"]) == (1, "INVALID", "log.not_included")


def _flip_last_byte(hex_text: str) -> str:
    """``hex_text`` with its last byte's lowest bit flipped: always a change (overwriting the byte with ``00``
    changed nothing when the signature already ended in 00, one run in 256: a flaky VALID)."""
    return hex_text[:-2] + f"{int(hex_text[-2:], 16) ^ 1:02x}"


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda p: p.update(leaf_index=p["leaf_index"] + 1), "log.not_included"),
        (lambda p: p.update(leaf_index="1"), "log.malformed_proof"),
        (lambda p: p.update(path=["zz"]), "log.malformed_proof"),
        (lambda p: p.update(extra=1), "log.malformed_proof"),
        (lambda p: p.update(tree_head=_flip_last_byte(p["tree_head"])), "log.bad_signature"),
    ],
    ids=["index", "index-type", "path-hex", "extra-key", "head-signature"],
)
def test_verify_with_a_tampered_proof_is_invalid(
    custody: Custody, tmp_path: Path, edit: object, code: str
) -> None:
    """A proof edited in any way: INVALID, exit 1, with the typed code of what is wrong."""
    (uvci, hc1), _ = _passports(custody)
    proof = _proof(custody, uvci, tmp_path / "proof.json")
    data = json.loads(proof.read_text(encoding="utf-8"))
    edit(data)  # type: ignore[operator]
    proof.write_text(json.dumps(data), encoding="utf-8")
    status, out = run(["verify", hc1, *_verify_args(custody, proof)])
    assert status == 1, out
    assert f"log proof: NOT VALID — [{code}]" in out


def test_verify_an_image_with_a_log_proof(custody: Custody, tmp_path: Path) -> None:
    """The QR image's decoded text is what the proof is checked against: own proof exit 0, another's exit 1."""
    (uvci, hc1), (other_uvci, _) = _passports(custody)
    image = tmp_path / "passport.png"
    image.write_bytes(render_png(hc1))
    proof = _proof(custody, uvci, tmp_path / "proof.json")
    code, out = run(["verify", str(image), *_verify_args(custody, proof)])
    assert code == 0, out
    assert "log proof: included at index" in out
    other = _proof(custody, other_uvci, tmp_path / "other.json")
    code, out = run(["verify", str(image), *_verify_args(custody, other)])
    assert code == 1, out


def test_log_proof_needs_log_cert(custody: Custody, tmp_path: Path) -> None:
    """--log-proof without --log-cert is a usage error (exit 3)."""
    (uvci, hc1), _ = _passports(custody)
    proof = _proof(custody, uvci, tmp_path / "proof.json")
    dsc = sorted(custody.keys.glob("dsc-*.pem"))[0]
    code, out = run(["verify", hc1, "--dsc", str(dsc), "--log-proof", str(proof)])
    assert code == 3
    assert "--log-cert" in out


def test_passport_proof_json_round_trip(custody: Custody, tmp_path: Path) -> None:
    """from_json(to_json(p)) == p, from the object and from its text."""
    (uvci, _), _ = _passports(custody)
    text = _proof(custody, uvci, tmp_path / "proof.json").read_text(encoding="utf-8")
    proof = PassportProof.from_json(text)
    assert PassportProof.from_json(proof.to_json()) == proof
    assert json.loads(text) == proof.to_json()
