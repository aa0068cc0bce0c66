"""`vaxcred verify` / `trustlist import` trust options against real files: an unsigned list is never
authenticated trust, freshness and rollback on by default, the trust mode and last update shown, trust
files read under the passport size cap.  Each test names the defect it guards."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import NOW as ISSUED
from tests.interop.payloads import sample_dcc
from tests.trust.certs import (
    DAY,
    GatewayWorld,
    gateway_entry,
    make_ca,
    make_gateway_world,
    make_leaf,
    make_trust_list_cert,
    store_of,
    trusted,
)
from vaxcred.cli import main
from vaxcred.cli._trust import MAX_FILE
from vaxcred.issue import issue
from vaxcred.trust import Environment, RollbackState, TrustMode, TrustStore, sign_trust_list

AT = (ISSUED + DAY).isoformat()


@dataclass(frozen=True, slots=True)
class Files:
    world: GatewayWorld
    folder: Path
    hc1: Path
    rogue_hc1: Path
    anchor: Path  # the gateway trust anchor (PEM)
    csca: Path  # the VN CSCA (PEM), anchor of the national list
    signed_gateway: Path
    unsigned_gateway: Path  # the real list plus a rogue CSCA + DSC, no signatures at all

    def signed_list(self, sequence: int, issued_at: Any, name: str) -> Path:
        store = store_of([trusted(self.world.dsc)], [("VN", self.world.csca)], environment=Environment.PROD)
        signer = make_trust_list_cert(self.world.csca).signer()
        path = self.folder / name
        path.write_bytes(sign_trust_list(store, signer=signer, issued_at=issued_at, sequence=sequence))
        return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("trust-cli")
    world = make_gateway_world()
    rogue_csca = make_ca("VN")
    rogue_dsc = make_leaf(rogue_csca)
    hc1 = folder / "hc1.txt"
    hc1.write_text(issue(sample_dcc(), world.dsc.signer(), now=ISSUED).hc1, encoding="ascii")
    rogue_hc1 = folder / "rogue.txt"
    rogue_hc1.write_text(issue(sample_dcc(), rogue_dsc.signer(), now=ISSUED).hc1, encoding="ascii")
    anchor = folder / "anchor.pem"
    anchor.write_bytes(world.anchor.cert.public_bytes(Encoding.PEM))
    csca = folder / "csca.pem"
    csca.write_bytes(world.csca.cert.public_bytes(Encoding.PEM))
    signed_gateway = folder / "gateway.json"
    signed_gateway.write_text(json.dumps(world.entries()))
    unsigned_gateway = folder / "unsigned.json"
    unsigned_gateway.write_text(
        json.dumps(
            [
                gateway_entry(world.csca, "CSCA"),
                gateway_entry(world.dsc),
                gateway_entry(rogue_csca, "CSCA"),
                gateway_entry(rogue_dsc),
            ]
        )
    )
    return Files(world, folder, hc1, rogue_hc1, anchor, csca, signed_gateway, unsigned_gateway)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code, out, _ = _run([*args, "--json"], capsys)
    return code, json.loads(out) if out.strip() else {}


# --- an unsigned list is never authenticated trust ----------------------------------------------------


def test_unsigned_gateway_list_with_anchor_is_refused(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unsigned gateway JSON + --anchor: refused (exit 3), never VALID for a rogue chain (regression: the
    anchor was silently ignored and the rogue passport verified VALID)."""
    args = [str(files.rogue_hc1), "--trust-list", str(files.unsigned_gateway), "--anchor", str(files.anchor)]
    code, _, err = _run([*args, "--at", AT], capsys)
    assert code == 3
    assert "trust.unauthenticated" in err


def test_unsigned_gateway_list_without_opt_in_is_refused(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unsigned gateway JSON without an anchor and without the opt-in: usage error naming both ways out."""
    code, _, err = _run([str(files.hc1), "--trust-list", str(files.unsigned_gateway), "--at", AT], capsys)
    assert code == 3
    assert "--anchor" in err
    assert "--unsafe-unauthenticated-trust-list" in err


def test_unsafe_opt_in_is_never_valid(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """With --unsafe-unauthenticated-trust-list the rogue passport is NEEDS_CHECK (exit 2), trust mode
    unauthenticated, a notice and a warning on stderr."""
    args = [
        str(files.rogue_hc1),
        "--trust-list",
        str(files.unsigned_gateway),
        "--unsafe-unauthenticated-trust-list",
    ]
    args += ["--trust-list-retrieved-at", AT, "--at", AT]
    code, out, err = _run([*args, "--json"], capsys)
    doc = json.loads(out)
    assert code == 2
    assert doc["status"] == "NEEDS_CHECK"
    assert doc["trust_mode"] == "unauthenticated"
    assert "trust.unauthenticated" in [n["code"] for n in doc["notices"]]
    assert "UNAUTHENTICATED" in err
    code, out, _ = _run(args, capsys)
    assert code == 2
    assert "UNAUTHENTICATED gateway list" in out


def test_unsafe_opt_in_contradicts_an_anchor(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """The opt-in and a pinned anchor together are a usage error (never a silent choice)."""
    args = [str(files.hc1), "--trust-list", str(files.unsigned_gateway), "--anchor", str(files.anchor)]
    code, _, err = _run([*args, "--unsafe-unauthenticated-trust-list", "--at", AT], capsys)
    assert code == 3
    assert "contradicts" in err


def test_signed_gateway_list_with_anchor_is_valid(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """Gateway JSON whose entries carry CMS signatures, checked with --anchor, freshly retrieved: VALID,
    trust mode gateway, last update shown."""
    args = [str(files.hc1), "--trust-list", str(files.signed_gateway), "--anchor", str(files.anchor)]
    args += ["--trust-list-retrieved-at", AT, "--at", AT]
    code, doc = _json(args, capsys)
    assert code == 0, doc
    assert doc["trust_mode"] == "gateway"
    assert doc["trust_updated_at"] == (ISSUED + DAY).isoformat()
    code, out, _ = _run(args, capsys)
    assert "EU gateway list, entry signatures checked" in out
    assert "last update:" in out


def test_signed_gateway_list_of_unknown_age_needs_check(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a retrieval time the gateway list's age is unknown: NEEDS_CHECK with trust.age_unknown."""
    args = [
        str(files.hc1),
        "--trust-list",
        str(files.signed_gateway),
        "--anchor",
        str(files.anchor),
        "--at",
        AT,
    ]
    code, doc = _json(args, capsys)
    assert code == 2
    assert [n["code"] for n in doc["notices"]] == ["trust.age_unknown"]


def test_dsc_and_trust_list_together_refused(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """--dsc beside --trust-list is a usage error (regression: --dsc was silently ignored)."""
    dsc = files.folder / "dsc.pem"
    dsc.write_bytes(files.world.dsc.cert.public_bytes(Encoding.PEM))
    args = [str(files.hc1), "--trust-list", str(files.signed_gateway), "--anchor", str(files.anchor)]
    code, _, err = _run([*args, "--dsc", str(dsc), "--at", AT], capsys)
    assert code == 3
    assert "not both" in err


def test_anchor_without_trust_list_refused(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """--anchor with bare --dsc is a usage error (regression: silently ignored)."""
    dsc = files.folder / "dsc2.pem"
    dsc.write_bytes(files.world.dsc.cert.public_bytes(Encoding.PEM))
    code, _, _ = _run([str(files.hc1), "--dsc", str(dsc), "--anchor", str(files.anchor), "--at", AT], capsys)
    assert code == 3


# --- freshness and rollback by default ------------------------------------------------------------------


def test_old_signed_list_needs_check_by_default(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A national list 100 days old verifies NEEDS_CHECK with no option given, the age in the notice
    (regression: no maximum age by default: VALID)."""
    issued_at = ISSUED + DAY - 100 * DAY
    tl = files.signed_list(1, issued_at, "old.cbor")
    args = [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT]
    args += ["--trust-state", str(tmp_path / "state.json")]
    code, doc = _json(args, capsys)
    assert code == 2
    assert doc["notices"][0]["code"] == "trust.stale"
    assert "100d 0h old" in doc["notices"][0]["message"]
    assert doc["trust_age_seconds"] == 100 * 86400
    code, doc = _json([*args, "--max-trust-age", "101d"], capsys)
    assert code == 0


def test_rollback_refused_and_state_kept(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """After list #5 is accepted, list #4 (published before a DSC was withdrawn) is refused: exit 3,
    trust.rollback; the state file is 0600 and records #5 (regression: no state, replay verified VALID)."""
    state = tmp_path / "nested" / "state.json"
    new = files.signed_list(5, ISSUED, "new.cbor")
    old = files.signed_list(4, ISSUED - DAY, "older.cbor")
    base = [str(files.hc1), "--anchor", str(files.csca), "--at", AT, "--trust-state", str(state)]
    code, out, _ = _run([*base, "--trust-list", str(new)], capsys)
    assert code == 0, out
    assert "signed national trust list" in out
    assert f"last update:   {ISSUED.isoformat()}" in out
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state.parent).st_mode) == 0o700
    assert json.loads(state.read_text())["lists"]["PROD"]["sequence"] == 5
    code, _, err = _run([*base, "--trust-list", str(old)], capsys)
    assert code == 3
    assert "trust.rollback" in err
    assert json.loads(state.read_text())["lists"]["PROD"]["sequence"] == 5


def test_state_is_checked_and_written_under_a_lock(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """While another process holds the state lock, verify waits; it then re-reads the state, so a newer
    sequence recorded meanwhile refuses its older list (no lost update between read and write)."""
    state = tmp_path / "state.json"
    tl = files.signed_list(3, ISSUED, "three.cbor")
    args = [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT]
    results: list[int] = []
    fd = os.open(tmp_path / "state.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        worker = threading.Thread(
            target=lambda: results.append(main(["verify", *args, "--trust-state", str(state)]))
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # blocked on the lock
        newer = RollbackState().accept(
            TrustStore(environment=Environment.PROD, mode=TrustMode.SIGNED_LIST, sequence=4, issued_at=ISSUED)
        )
        state.write_bytes(newer.to_json())
    finally:
        os.close(fd)
    worker.join(30)
    assert results == [3]
    assert "trust.rollback" in capsys.readouterr().err
    assert json.loads(state.read_text())["lists"]["PROD"]["sequence"] == 4


def test_default_state_lives_under_xdg_state_home(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --trust-state the state is $XDG_STATE_HOME/vaxcred/trust-state.json."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    tl = files.signed_list(9, ISSUED, "nine.cbor")
    code, _, _ = _run(
        [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT], capsys
    )
    assert code == 0
    assert (
        json.loads((tmp_path / "vaxcred" / "trust-state.json").read_text())["lists"]["PROD"]["sequence"] == 9
    )


def test_corrupt_state_file_is_a_usage_error(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A state file that does not parse is never silently replaced (that would reset rollback protection)."""
    state = tmp_path / "state.json"
    state.write_text("{not json")
    tl = files.signed_list(1, ISSUED, "one.cbor")
    args = [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT]
    code, _, err = _run([*args, "--trust-state", str(state)], capsys)
    assert code == 3
    assert "trust.bad_state" in err
    assert state.read_text() == "{not json"


@pytest.mark.parametrize("value", ["0h", "abc", "-3d", "72"])
def test_bad_max_trust_age_is_a_usage_error(
    files: Files, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-trust-age takes a positive duration like 72h or 3d."""
    dsc = files.folder / "dsc3.pem"
    dsc.write_bytes(files.world.dsc.cert.public_bytes(Encoding.PEM))
    code, _, _ = _run([str(files.hc1), "--dsc", str(dsc), "--max-trust-age", value], capsys)
    assert code == 3


# --- files under the size cap -----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--trust-list", "--anchor", "--dsc"])
def test_oversized_trust_files_refused(
    files: Files, option: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A trust-list, anchor or DSC file larger than the passport cap is refused unread (regression: read
    whole)."""
    huge = tmp_path / "huge"
    with huge.open("wb") as fh:
        fh.truncate(MAX_FILE + 1)  # sparse: no disk used
    if option == "--trust-list":
        args = ["--trust-list", str(huge), "--anchor", str(files.csca)]
    elif option == "--anchor":
        args = ["--trust-list", str(files.signed_gateway), "--anchor", str(huge)]
    else:
        args = ["--dsc", str(huge)]
    code, _, err = _run([str(files.hc1), *args, "--at", AT], capsys)
    assert code == 3
    assert "larger than" in err


# --- trustlist import ------------------------------------------------------------------------------------


def test_trustlist_import_reports_rejected_and_mode(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """`trustlist import` of gateway JSON with the anchor reports the mode and each rejected entry."""
    mixed = files.folder / "mixed.json"
    mixed.write_text(json.dumps([*files.world.entries(), gateway_entry(make_leaf(files.world.csca))]))
    code = main(["trustlist", "import", str(mixed), "--anchor", str(files.anchor), "--at", AT])
    out = capsys.readouterr().out
    assert code == 0
    assert "rejected entry 3: no CMS signature" in out
    assert "(gateway): 1 DSC, 1 CSCA" in out


def test_trustlist_import_refuses_unsigned_gateway_json(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trustlist import` of gateway JSON without --anchor or the opt-in: usage error."""
    assert main(["trustlist", "import", str(files.unsigned_gateway), "--at", AT]) == 3


# --- found by the merged-product QA pass ----------------------------------------------------------------


def test_a_trust_state_lock_held_for_ever_is_a_usage_error_not_a_hang(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that never releases the state lock (hung, stopped) makes verify give up after
    STATE_LOCK_TIMEOUT with exit 3, instead of blocking every later verifier for ever."""
    monkeypatch.setattr("vaxcred.cli._trust.STATE_LOCK_TIMEOUT", 0.3)
    state = tmp_path / "state.json"
    tl = files.signed_list(3, ISSUED, "three.cbor")
    args = [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT]
    fd = os.open(tmp_path / "state.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    results: list[tuple[int, str, str]] = []
    try:
        worker = threading.Thread(
            target=lambda: results.append(_run([*args, "--trust-state", str(state)], capsys)), daemon=True
        )
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "verify blocked on the lock"
    finally:
        os.close(fd)
    code, _, err = results[0]
    assert code == 3
    assert "locked by another process" in err
    assert not state.exists()


def test_a_fifo_as_trust_state_is_a_usage_error_not_a_hang(
    files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--trust-state naming a FIFO (or anything but a regular file) is refused without reading it."""
    state = tmp_path / "state.json"
    os.mkfifo(state)
    tl = files.signed_list(1, ISSUED, "one.cbor")
    args = [str(files.hc1), "--trust-list", str(tl), "--anchor", str(files.csca), "--at", AT]
    results: list[tuple[int, str, str]] = []
    worker = threading.Thread(
        target=lambda: results.append(_run([*args, "--trust-state", str(state)], capsys)), daemon=True
    )
    worker.start()
    worker.join(10)
    assert results, "verify blocked reading the FIFO"
    code, _, err = results[0]
    assert code == 3
    assert "not a regular file" in err
