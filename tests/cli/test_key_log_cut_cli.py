"""The key-operations log cut, emptied or deleted on a SoftHSM2 token chain made by `vaxcred keys init --pkcs11`:
`keys audit` exits 1, and a withdrawn DSC whose withdrawal was lost never returns to a trust list."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import test_keys_cli as keys_cli
from tests.cli.test_keys_cli import AT, _run

token_chain = keys_cli.token_chain


def _withdrawn(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Withdraw the chain's DSC; its kid."""
    (dsc,) = folder.glob("dsc-*.pem")
    kid = dsc.stem.removeprefix("dsc-")
    code, out = _run(capsys, ["keys", "withdraw", str(folder), kid, "--reason", "compromise", "--at", AT])
    assert code == 0, out
    return kid


@pytest.mark.parametrize("cut", ["deleted", "emptied", "cut to the first line"])
def test_key_operations_log_cut_fails_the_audit_and_the_trust_list_export(
    token_chain: Path, capsys: pytest.CaptureFixture[str], cut: str
) -> None:
    """With the log deleted, emptied or cut (a valid but shorter chain), the withdrawn DSC would replay as
    active: `keys audit` exits 1 naming the unlogged certificates, `trustlist export` refuses."""
    kid = _withdrawn(token_chain, capsys)
    log = token_chain / "key-operations.jsonl"
    assert _run(capsys, ["keys", "audit", str(token_chain)])[0] == 0
    if cut == "deleted":
        log.unlink()
    elif cut == "emptied":
        log.write_bytes(b"")
    else:
        log.write_bytes(log.read_bytes().splitlines(keepends=True)[0])
    code, out = _run(capsys, ["keys", "audit", str(token_chain)])
    assert code == 1, out
    assert "[keys.audit_broken]" in out
    assert f"dsc-{kid}.pem" in out
    code, out = _run(
        capsys, ["trustlist", "export", "--keys", str(token_chain), "--out", str(token_chain / "tl")]
    )
    assert code == 1, out
    assert "[keys.audit_broken]" in out
    assert not (token_chain / "tl").exists()


def test_sites_register_on_a_file_chain_logs_each_site_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sites register --keys` on a key-file chain logs a `generate site` line per certificate (as `keys site`
    and a token chain do), so `keys audit` stays intact and names them."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", "sites test passphrase")
    keys = tmp_path / "keys"
    assert _run(capsys, ["keys", "init", str(keys), "--at", AT])[0] == 0
    db = f"sqlite:///{tmp_path / 'sites.db'}"
    assert _run(capsys, ["db", "init", "--db", db])[0] == 0
    table = tmp_path / "sites.csv"
    table.write_text("site_id,name,province\nVN001-S01,Trạm Phúc Xá,001\nVN079-S07,Bệnh viện Quận 7,079\n")
    code, out = _run(capsys, ["sites", "register", str(table), "--keys", str(keys), "--db", db, "--at", AT])
    assert code == 0, out
    code, out = _run(capsys, ["keys", "audit", str(keys)])
    assert code == 0, out
    assert out.count("generate site ") == 2
