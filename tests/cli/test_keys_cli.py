"""`vaxcred keys` on a SoftHSM2 token and on key files: init, issue, lifecycle commands, trust-list export of a
withdrawn DSC, site revocation, and the key-operations audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import softhsm
from tests.cli.test_cli import PERSON
from vaxcred.cli import main
from vaxcred.keys import PIN_ENV, TokenConfig

AT = "2026-01-01T00:00:00Z"


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def token_chain(softhsm_token: TokenConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A chain made by `vaxcred keys init --pkcs11 MODULE --token LABEL`."""
    folder = tmp_path / "keys"
    code, out = _run(
        capsys,
        [
            "keys",
            "init",
            str(folder),
            "--pkcs11",
            softhsm_token.module,
            "--token",
            softhsm_token.token_label,
            "--operator",
            "custodian-1",
            "--at",
            AT,
        ],
    )
    assert code == 0, out
    assert "token 'vaxcred-test'" in out
    return folder


def test_keys_init_with_token_writes_no_key_file(token_chain: Path) -> None:
    """The token chain folder holds certificates, token.json and the log; no .key file."""
    assert not list(token_chain.rglob("*.key"))
    assert json.loads((token_chain / "token.json").read_text())["token_label"] == softhsm.LABEL


def test_keys_init_pkcs11_without_token_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], softhsm_token: TokenConfig
) -> None:
    """--pkcs11 needs --token (usage error, exit 3)."""
    code, out = _run(capsys, ["keys", "init", str(tmp_path / "k"), "--pkcs11", softhsm_token.module])
    assert code == 3
    assert "--pkcs11 and --token go together" in out


def test_keys_init_with_wrong_pin_fails_with_code(
    softhsm_token: TokenConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong PIN from the environment is [keys.bad_pin], exit 1."""
    monkeypatch.setenv(PIN_ENV, "0000")
    code, out = _run(
        capsys,
        [
            "keys",
            "init",
            str(tmp_path / "k"),
            "--pkcs11",
            softhsm_token.module,
            "--token",
            softhsm_token.token_label,
        ],
    )
    assert code == 1
    assert "[keys.bad_pin]" in out


def test_issue_with_token_chain_verifies(
    token_chain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vaxcred issue --keys` signs on the token; `vaxcred verify` with the exported trust list says VALID."""
    record = tmp_path / "person.json"
    record.write_text(json.dumps(PERSON, ensure_ascii=False), encoding="utf-8")
    hc1 = tmp_path / "hc1.txt"
    code, out = _run(
        capsys,
        ["issue", str(record), "--keys", str(token_chain), "--out", str(hc1), "--at", "2026-01-02T00:00:00Z"],
    )
    assert code == 0, out
    dsc = next(token_chain.glob("dsc-*.pem"))
    code, out = _run(
        capsys, ["verify", str(hc1), "--dsc", str(dsc), "--at", "2026-01-03T00:00:00Z", "--json"]
    )
    assert code == 0, out
    assert json.loads(out)["status"] == "VALID"


def test_withdrawn_dsc_leaves_the_signed_list_and_is_null_in_gateway_export(
    token_chain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """withdraw: the gateway export lists the DSC with rawData null; the new DSC is listed normally."""
    old_kid = next(token_chain.glob("dsc-*.pem")).stem.removeprefix("dsc-")
    assert _run(capsys, ["keys", "dsc", str(token_chain), "--at", "2026-01-05T00:00:00Z"])[0] == 0
    code, out = _run(
        capsys,
        ["keys", "withdraw", str(token_chain), old_kid, "--reason", "drill", "--at", "2026-01-06T00:00:00Z"],
    )
    assert code == 0, out
    code, out = _run(capsys, ["keys", "list", str(token_chain)])
    assert f"DSC {old_kid} withdrawn" in out
    gateway = tmp_path / "gateway.json"
    code, out = _run(
        capsys,
        [
            "trustlist",
            "export",
            "--keys",
            str(token_chain),
            "--format",
            "gateway",
            "--out",
            str(gateway),
            "--at",
            "2026-01-07T00:00:00Z",
        ],
    )
    assert code == 0, out
    dscs = [e for e in json.loads(gateway.read_text()) if e["certificateType"] == "DSC"]
    assert len(dscs) == 2
    withdrawn = [e for e in dscs if e["rawData"] is None]
    assert len(withdrawn) == 1
    assert bytes.fromhex(withdrawn[0]["thumbprint"])[:8].hex() == old_kid
    code, out = _run(
        capsys,
        [
            "trustlist",
            "export",
            "--keys",
            str(token_chain),
            "--out",
            str(tmp_path / "signed.cose"),
            "--at",
            "2026-01-07T00:00:00Z",
        ],
    )
    assert code == 0, out
    assert "(1 DSC, 1 CSCA)" in out
    code, out = _run(
        capsys,
        [
            "trustlist",
            "import",
            str(tmp_path / "signed.cose"),
            "--anchor",
            str(token_chain / "csca.pem"),
            "--at",
            "2026-01-07T00:00:01Z",
        ],
    )
    assert code == 0, out  # the list signed on the token verifies against the (token) CSCA
    assert "1 DSC, 1 CSCA" in out


def test_revoke_site_and_audit(token_chain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """site, revoke-site (CRL written) and audit: every operation listed, chain intact, head printed and checked."""
    assert (
        _run(
            capsys,
            ["keys", "site", str(token_chain), "--site-id", "HN-1", "--site-name", "Trạm y tế", "--at", AT],
        )[0]
        == 0
    )
    code, out = _run(
        capsys, ["keys", "revoke-site", str(token_chain), "--site-id", "HN-1", "--at", "2026-01-02T00:00:00Z"]
    )
    assert code == 0, out
    assert (token_chain / "site-ca.crl").exists()
    code, out = _run(capsys, ["keys", "audit", str(token_chain)])
    assert code == 0, out
    assert "revoke" in out
    assert "by custodian-1" in out
    head = out.rsplit("head ", 1)[1].strip()
    assert _run(capsys, ["keys", "audit", str(token_chain), "--expect-head", head])[0] == 0
    code, out = _run(capsys, ["keys", "audit", str(token_chain), "--expect-head", "0" * 64])
    assert code == 1
    assert "[keys.audit_broken]" in out


def test_audit_of_a_tampered_log_fails(token_chain: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An edited line makes `keys audit` exit 1 with keys.audit_broken."""
    log = token_chain / "key-operations.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"purpose":"csca"', b'"purpose":"dsc-v"', 1))
    code, out = _run(capsys, ["keys", "audit", str(token_chain)])
    assert code == 1
    assert "[keys.audit_broken]" in out


def test_rotate_is_a_no_op_early_and_rotates_near_the_end(
    token_chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotate: nothing to do a week in; a new DSC 5.5 months in."""
    code, out = _run(capsys, ["keys", "rotate", str(token_chain), "--at", "2026-01-08T00:00:00Z"])
    assert code == 0
    assert "no rotation needed" in out
    code, out = _run(capsys, ["keys", "rotate", str(token_chain), "--at", "2026-06-15T00:00:00Z"])
    assert code == 0
    assert "rotated: new DSC kid" in out


def test_weak_passphrase_is_refused_for_a_file_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keys init` with key files refuses a weak passphrase: [keys.weak_passphrase], nothing created."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", "short")
    code, out = _run(capsys, ["keys", "init", str(tmp_path / "k"), "--at", AT])
    assert code == 1
    assert "[keys.weak_passphrase]" in out
    assert not (tmp_path / "k" / "csca.pem").exists()


def test_retire_with_a_bad_kid_is_a_usage_error(
    token_chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kid that is not 16 hex digits is refused before anything is logged."""
    code, out = _run(capsys, ["keys", "retire", str(token_chain), "xyz"])
    assert code == 3
    assert "16 hex digits" in out
