"""A synced folder changed on disk after the sync (found by the merged-product QA pass): what was left out must
never let a passport through as VALID, nothing on disk may block the loader, and the next sync repairs it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import NOW, sample_dcc
from tests.sync.conftest import ENV, SYNC_AT, Publisher
from tests.sync.server import ServedFolder
from vaxcred import keys
from vaxcred.cli import main
from vaxcred.issue import issue
from vaxcred.result import Status
from vaxcred.revocation import RevocationList
from vaxcred.rules import RuleSet, vietnam_rules
from vaxcred.sync import HttpLimits, SyncedData, load_folder, load_revocation_files, sync_folder
from vaxcred.sync.freshness import DataKind
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

FAST = HttpLimits(connect=2, read=0.3, deadline=0.8)


def _sync(server: ServedFolder, folder: Path, csca: keys.KeyPair) -> None:
    report = sync_folder(
        server.url, folder, anchor=csca.certificate, environment=ENV, now=SYNC_AT, limits=FAST
    )
    assert report.ok, report


def _load(folder: Path, csca: keys.KeyPair) -> SyncedData:
    return load_folder(folder, anchor=csca.certificate, environment=ENV, now=SYNC_AT)


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s value, or a test failure if it blocks longer than ``seconds``."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"blocked for more than {seconds} s"
    return box[0]


@pytest.fixture
def synced(publisher: Publisher, server: ServedFolder, csca: keys.KeyPair, tmp_path: Path) -> Path:
    publisher.publish(sequence=1)
    folder = tmp_path / "client"
    _sync(server, folder, csca)
    return folder


def _listed(folder: Path, csca: keys.KeyPair, kind: DataKind) -> Path:
    index = _load(folder, csca).index
    assert index is not None
    return folder / next(e for e in index.files if e.kind is kind).path


def _verify(folder: Path, csca: keys.KeyPair, dsc: keys.KeyPair) -> Any:
    data = _load(folder, csca)
    assert data.trust is not None
    passport = issue(sample_dcc(), dsc.signer(), now=NOW)
    return verify(passport.hc1, data.trust, now=SYNC_AT, country="VN", **data.verify_options())


def test_a_revocation_file_changed_on_disk_never_leaves_a_valid(
    synced: Path, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """A tampered batch file is left out: a passport not in the rest is NEEDS_CHECK (revocation.incomplete)."""
    assert _verify(synced, csca, dsc).status is Status.VALID
    path = _listed(synced, csca, DataKind.REVOCATION)
    path.write_bytes(path.read_bytes().replace(b"VN", b"DE"))
    result = _verify(synced, csca, dsc)
    assert result.status is Status.NEEDS_CHECK
    assert result.step("revocation").code == "revocation.incomplete"


def test_a_rule_file_removed_from_disk_never_leaves_a_valid(
    synced: Path, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """A listed rule file gone: the rules that loaded may pass, the verdict is NEEDS_CHECK (rules.incomplete)."""
    _listed(synced, csca, DataKind.RULES).unlink()
    result = _verify(synced, csca, dsc)
    assert result.status is Status.NEEDS_CHECK
    assert result.step("rules").code == "rules.incomplete"


def test_a_value_set_file_changed_on_disk_never_leaves_a_valid(
    synced: Path, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """Value sets feed the rules: one left out makes the rules incomplete too."""
    _listed(synced, csca, DataKind.VALUE_SETS).write_bytes(b"{}")
    result = _verify(synced, csca, dsc)
    assert result.status is Status.NEEDS_CHECK
    assert result.step("rules").code == "rules.incomplete"


def test_a_failing_rule_stays_invalid_when_the_rules_are_incomplete(dsc: keys.KeyPair) -> None:
    """Incomplete rules never soften a failure: a passport failing a rule that did load is INVALID."""
    rules = vietnam_rules()
    partial = RuleSet(rules=rules.rules, value_sets=rules.value_sets, complete=False)
    passport = issue(sample_dcc(dn=1, sd=2), dsc.signer(), now=NOW)  # incomplete course: VR-VN-0002 fails
    store = TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])
    result = verify(passport.hc1, store, now=SYNC_AT, country="VN", rules=partial)
    assert result.status is Status.INVALID
    assert result.step("rules").code == "rules.failed"


@pytest.mark.parametrize("name", ["trust.cbor", "index.cbor", "file"])
def test_a_fifo_in_the_synced_folder_does_not_block_loading(
    synced: Path, csca: keys.KeyPair, name: str
) -> None:
    """A FIFO in place of a document or a listed file is reported (sync.missing), never read (it would block)."""
    path = _listed(synced, csca, DataKind.RULES) if name == "file" else synced / name
    path.unlink()
    os.mkfifo(path)
    data = _within(10, lambda: _load(synced, csca))
    assert "sync.missing" in {p.code for p in data.problems}


def test_a_304_still_repairs_files_changed_on_disk(
    synced: Path, server: ServedFolder, csca: keys.KeyPair
) -> None:
    """The index is not modified, but a listed file was deleted and another changed: the next sync fetches both
    again (before, the folder stayed broken until the ministry published a new index)."""
    rule = _listed(synced, csca, DataKind.RULES)
    batch = _listed(synced, csca, DataKind.REVOCATION)
    rule.unlink()
    batch.write_bytes(b"[]")
    assert len(_load(synced, csca).problems) == 2
    report = sync_folder(
        server.url, synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT, limits=FAST
    )
    assert report.ok, report
    assert (report.index.status, report.index.files_fetched) == ("not_modified", 2)
    assert _load(synced, csca).problems == ()


def test_a_fifo_in_a_rule_folder_is_ignored(tmp_path: Path) -> None:
    """RuleSet.from_path over a folder takes regular *.json files only: a FIFO or a sub-folder named *.json is
    skipped instead of blocking the read or failing the folder."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "VR-VN-0002.json").write_bytes(
        (Path(__file__).parents[2] / "vaxcred/data/rules/VN/VR-VN-0002.json").read_bytes()
    )
    os.mkfifo(rules / "fifo.json")
    (rules / "folder.json").mkdir()
    loaded = _within(10, lambda: RuleSet.from_path(rules))
    assert [r.identifier for r in loaded.rules] == ["VR-VN-0002"]


def test_a_bad_revocation_file_marks_the_list_incomplete(tmp_path: Path) -> None:
    """--revocations with a file that does not load: the rest is used, but a passport missing from it is not
    known to be unrevoked (complete is False); a FIFO in a batch folder is skipped, not read."""
    folder = tmp_path / "batches"
    folder.mkdir()
    (folder / "good.json").write_text("[]")
    os.mkfifo(folder / "fifo.json")
    revocation, problems = _within(10, lambda: load_revocation_files([folder], now=NOW))
    assert isinstance(revocation, RevocationList)
    assert (problems, revocation.complete) == ((), True)
    (folder / "bad.json").write_text("{not json")
    revocation, problems = load_revocation_files([folder], now=NOW)
    assert len(problems) == 1
    assert revocation.complete is False


def test_sync_show_exits_1_when_a_file_is_left_out(
    synced: Path, csca: keys.KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vaxcred sync show` says a folder with a file left out is not in order (exit 1), as for stale data."""
    anchor = tmp_path / "csca.pem"
    anchor.write_bytes(csca.certificate.public_bytes(Encoding.PEM))
    args = [
        "sync",
        "show",
        str(synced),
        "--anchor",
        str(anchor),
        "--environment",
        ENV.value,
        "--at",
        SYNC_AT.isoformat(),
    ]
    assert main(args) == 0
    _listed(synced, csca, DataKind.RULES).unlink()
    assert main(args) == 1
    assert "left out" in capsys.readouterr().err
