"""`vaxcred sync` end to end: publish a folder with the key chain, serve it on loopback, pull it, verify
with `--data` (a revoked passport is INVALID), show ages; `verify --revocations` with an export file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import test_cli as cli_flow
from tests.sync.server import serve
from vaxcred.cli import main
from vaxcred.pipeline.reports.revocation_export import decode_passport
from vaxcred.revocation import HashType, batches_for, revocation_entries

chain = cli_flow.chain
passphrase = cli_flow.passphrase
hc1_file = cli_flow.hc1_file

PUBLISHED = datetime(2026, 3, 1, tzinfo=UTC)
AT = (PUBLISHED + timedelta(hours=1)).isoformat()
LATER = (PUBLISHED + timedelta(days=3)).isoformat()


def _export_revoking(hc1_file: Path, out: Path) -> None:
    """What `vaxcred revocations export` writes, listing this passport by its UCI hash."""
    passport = decode_passport(hc1_file.read_text().strip())
    entries = revocation_entries(
        kid=passport.kid,
        uvci=passport.uvci,
        country=passport.country,
        signature=passport.signature,
        alg=passport.alg,
        expires=passport.exp,
        hash_types=(HashType.UCI,),
    )
    batches = batches_for(entries, country="VN")
    out.write_bytes(b"[" + b",\n".join(b.to_json() for b in batches) + b"]\n")


@pytest.fixture
def published(chain: Path, hc1_file: Path, tmp_path: Path, passphrase: None) -> Path:
    """The folder a ministry serves: signed trust list (sequence 1), the revocation export, a rule file."""
    trust = tmp_path / "trust.cbor"
    at = ["--at", PUBLISHED.isoformat()]
    assert (
        main(["trustlist", "export", "--keys", str(chain), "--out", str(trust), "--sequence", "1", *at]) == 0
    )
    revocations = tmp_path / "revocations.json"
    _export_revoking(hc1_file, revocations)
    rules = tmp_path / "VN.json"
    rules.write_text("[]")
    out = tmp_path / "served"
    args = [
        "--keys",
        str(chain),
        "--out",
        str(out),
        "--trust-list",
        str(trust),
        "--revocations",
        str(revocations),
    ]
    assert main(["sync", "publish", *args, "--rules", str(rules), "--sequence", "1", *at]) == 0
    return out


def test_pull_then_verify_with_data_finds_the_revoked_passport(
    published: Path,
    chain: Path,
    hc1_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """sync URL --into DIR (exit 0), verify --data DIR (INVALID, revocation.revoked); show: stale after 3 days."""
    data = tmp_path / "data"
    anchor = str(chain / "csca.pem")
    with serve(published) as server:
        assert main(["sync", server.url, "--into", str(data), "--anchor", anchor, "--at", AT]) == 0
        assert "index.cbor: updated (sequence 1), 2 file(s) fetched" in capsys.readouterr().out
        assert main(["sync", server.url, "--into", str(data), "--anchor", anchor, "--at", AT]) == 0
        assert "trust.cbor: not_modified" in capsys.readouterr().out

    code = main(["verify", str(hc1_file), "--data", str(data), "--anchor", anchor, "--at", AT, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert document["steps"]["revocation"]["code"] == "revocation.revoked"
    assert document["steps"]["chain"]["result"] == "pass"

    assert main(["sync", "show", str(data), "--anchor", anchor, "--at", AT]) == 0
    assert main(["sync", "show", str(data), "--anchor", anchor, "--at", LATER]) == 1
    assert "revocation  1 hash(es)" in capsys.readouterr().out


def test_pull_from_a_dead_server_exits_1_and_keeps_nothing_new(chain: Path, tmp_path: Path) -> None:
    """Nothing listening: exit 1, no documents installed."""
    data = tmp_path / "data"
    code = main(["sync", "http://127.0.0.1:1", "--into", str(data), "--anchor", str(chain / "csca.pem")])
    assert code == 1
    assert not (data / "trust.cbor").exists()


def test_verify_with_an_export_file(
    chain: Path, hc1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify --revocations FILE takes the pipeline's export as it is."""
    revocations = tmp_path / "revocations.json"
    _export_revoking(hc1_file, revocations)
    dsc = str(next(chain.glob("dsc-*.pem")))
    args = [str(hc1_file), "--dsc", dsc, "--revocations", str(revocations), "--at", AT]
    assert main(["verify", *args]) == 1
    assert "revocation.revoked" in capsys.readouterr().out


def test_serve_loads_a_synced_folder(published: Path, chain: Path, tmp_path: Path) -> None:
    """`vaxcred serve --data DIR`'s loader: the folder's trust list, verify options and one data set per kind."""
    from vaxcred.cli.serve import _load_data

    data = tmp_path / "data"
    anchor = chain / "csca.pem"
    with serve(published) as server:
        assert main(["sync", server.url, "--into", str(data), "--anchor", str(anchor), "--at", AT]) == 0
    trust, options, datasets = _load_data(data, anchor, "PROD", datetime.fromisoformat(AT))
    assert trust is not None
    assert trust.sequence == 1
    assert sorted(options) == ["revocation", "rules", "rules_stale_after"]
    assert {d.name: d.count for d in datasets} == {"rules": 0, "revocation": 1}


def test_verify_data_refuses_an_older_trust_list_put_back_on_disk(
    published: Path, chain: Path, hc1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older signed trust.cbor copied back into a synced folder passes every check of the folder itself; the
    verifier's rollback state ($XDG_STATE_HOME, --trust-state) refuses it (exit 3, trust.rollback), as it
    does for --trust-list (found by the merged-product QA pass: --data never consulted the state)."""
    data = tmp_path / "data"
    anchor = str(chain / "csca.pem")
    state = tmp_path / "state.json"
    with serve(published) as server:
        assert main(["sync", server.url, "--into", str(data), "--anchor", anchor, "--at", AT]) == 0
    first = (data / "trust.cbor").read_bytes()
    newer = tmp_path / "trust2.cbor"
    at = ["--at", PUBLISHED.isoformat()]
    assert (
        main(["trustlist", "export", "--keys", str(chain), "--out", str(newer), "--sequence", "2", *at]) == 0
    )
    (data / "trust.cbor").write_bytes(newer.read_bytes())  # as a sync of publication 2 would install it
    verify = [
        "verify",
        str(hc1_file),
        "--data",
        str(data),
        "--anchor",
        anchor,
        "--at",
        AT,
        "--trust-state",
        str(state),
    ]
    assert main(verify) == 1  # revoked, with the newer list
    assert json.loads(state.read_text())["lists"]["PROD"]["sequence"] == 2
    capsys.readouterr()
    (data / "trust.cbor").write_bytes(first)
    assert main(verify) == 3
    assert "trust.rollback" in capsys.readouterr().err
