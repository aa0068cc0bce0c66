"""vaxcred.sync against a real HTTP server on loopback: good, 304, stale, rolled back, tampered, slow, huge,
failing responses — and the last good copy kept every time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.interop.payloads import DAY, NOW, sample_dcc
from tests.sync.conftest import ENV, RULES, SYNC_AT, Publisher, batch
from tests.sync.server import ServedFolder
from vaxcred import keys
from vaxcred.issue import issue
from vaxcred.result import Status
from vaxcred.revocation import HashType
from vaxcred.sync import HttpLimits, SyncReport, load_folder, sync_folder
from vaxcred.sync.state import SyncState
from vaxcred.trust import Environment
from vaxcred.verify import verify

FAST = HttpLimits(connect=2, read=0.3, deadline=0.8)
#: for a sync whose point is not the deadline (a loaded 2-core CI run took over 0.8 s for a good one)
ROOMY = HttpLimits(connect=5, read=5, deadline=20)


def _sync(server: ServedFolder, folder: Path, csca: keys.KeyPair, **options: object) -> SyncReport:
    args: dict[str, object] = {"anchor": csca.certificate, "environment": ENV, "now": SYNC_AT, "limits": FAST}
    args.update(options)
    return sync_folder(server.url, folder, **args)  # type: ignore[arg-type]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _installed(folder: Path) -> dict[str, bytes]:
    """The installed documents and files (state.json aside: it may record a failed attempt's nothing)."""
    return {k: v for k, v in _snapshot(folder).items() if k != "state.json"}


@pytest.fixture
def synced(publisher: Publisher, server: ServedFolder, csca: keys.KeyPair, tmp_path: Path) -> Path:
    """A folder after one good sync of publication 1."""
    publisher.publish(sequence=1)
    folder = tmp_path / "client"
    report = _sync(server, folder, csca)
    assert report.ok, report
    return folder


def test_first_sync_installs_everything_and_loads(
    publisher: Publisher, synced: Path, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """Trust list, index and the 4 listed files arrive; load_folder re-verifies them and finds the data."""
    assert sorted(_installed(synced)) == sorted(_installed(publisher.root))
    data = load_folder(synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert data.problems == ()
    assert data.trust is not None
    assert data.trust.sequence == 1
    assert [f.name for f in data.rule_files] == ["rules/GR-VN-0001.json"]
    assert [f.name for f in data.value_set_files] == ["valuesets/vaccines.json"]
    # the synced value set reaches the rules, replacing the vendored one of the same id
    assert data.rules is not None
    assert data.rules.value_sets is not None
    assert sorted(data.rules.value_sets["vaccines-covid-19-names"]) == ["EU/1/20/1507", "EU/1/20/1528"]
    assert data.revocation is not None
    assert data.revocation.hashes(dsc.kid, HashType.UCI) == {(1).to_bytes(16, "big")}
    assert data.revocation.hashes(None, HashType.SIGNATURE) == {(2).to_bytes(16, "big")}
    assert data.revocation.issued_at == NOW
    assert data.stale(SYNC_AT) == ()
    state = SyncState.read(synced)
    assert {name: doc.sequence for name, doc in state.documents.items()} == {"trust.cbor": 1, "index.cbor": 1}


def test_second_sync_asks_conditionally_and_gets_304(
    synced: Path, server: ServedFolder, csca: keys.KeyPair
) -> None:
    """Unchanged documents: If-None-Match / If-Modified-Since sent, 304 back, no file fetched again."""
    server.requests.clear()
    report = _sync(server, synced, csca)
    assert (report.trust.status, report.index.status) == ("not_modified", "not_modified")
    assert server.paths_requested() == ["trust.cbor", "index.cbor"]
    for _, headers in server.requests:
        assert headers["If-None-Match"].startswith('"')
        assert "If-Modified-Since" in headers


def test_a_new_publication_fetches_only_new_files_and_drops_unlisted(
    publisher: Publisher, synced: Path, server: ServedFolder, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """Publication 2 lists one new batch and drops one: one file fetched, the dropped one removed."""
    index = publisher.publish(sequence=2, issued_at=NOW + DAY / 2, batches=(batch(3, kid=dsc.kid),))
    server.requests.clear()
    report = _sync(server, synced, csca)
    assert (report.trust.status, report.index.status) == ("updated", "updated")
    assert report.index.files_fetched == 1
    assert sorted(p.name for p in (synced / "files").iterdir()) == sorted(e.sha256.hex() for e in index.files)
    data = load_folder(synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert data.revocation is not None
    assert data.revocation.hashes(dsc.kid, HashType.UCI) == {(3).to_bytes(16, "big")}
    assert len(data.revocation) == 1


def _part(folder: Path, part: str) -> dict[str, bytes]:
    """What one part installed: the trust list, or the index and the files it lists."""
    if part == "trust":
        return {k: v for k, v in _installed(folder).items() if k == "trust.cbor"}
    return {k: v for k, v in _installed(folder).items() if k != "trust.cbor"}


def _refused(server: ServedFolder, folder: Path, csca: keys.KeyPair, part: str, **options: object) -> str:
    before = _part(folder, part)
    report = _sync(server, folder, csca, **options)
    outcome = getattr(report, part)
    assert outcome.status == "failed", report
    assert not report.ok
    assert _part(folder, part) == before, "the last good copy was replaced"
    assert outcome.code is not None
    return outcome.code


def test_a_stale_publication_is_not_installed(
    publisher: Publisher, server: ServedFolder, csca: keys.KeyPair, tmp_path: Path
) -> None:
    """Signed 40 days ago: past every maximum age, so a new client installs neither document."""
    publisher.publish(sequence=1, issued_at=NOW - 40 * DAY)
    folder = tmp_path / "new-client"
    report = _sync(server, folder, csca)
    assert (report.trust.code, report.index.code) == ("sync.stale", "sync.stale")
    assert not (folder / "trust.cbor").exists()
    assert not (folder / "index.cbor").exists()


def test_older_or_conflicting_publications_are_refused(
    publisher: Publisher, synced: Path, server: ServedFolder, csca: keys.KeyPair
) -> None:
    """A higher sequence signed 10 days ago (stale trust list, index older than the installed one), a lower
    sequence (rollback), the same sequence with other content: all refused, the last good copy kept."""
    publisher.publish(sequence=5, issued_at=NOW - 10 * DAY)
    assert _refused(server, synced, csca, "trust") == "sync.stale"
    assert _refused(server, synced, csca, "index") == "sync.rollback"

    publisher.publish(sequence=3, issued_at=NOW + DAY / 2)
    assert _sync(server, synced, csca).ok
    publisher.publish(sequence=2, issued_at=NOW + DAY / 2)
    assert _refused(server, synced, csca, "trust") == "trust.rollback"
    assert _refused(server, synced, csca, "index") == "sync.rollback"
    publisher.publish(sequence=3, issued_at=NOW + DAY / 2, batches=(batch(9, kid=None),))
    assert _refused(server, synced, csca, "index") == "sync.rollback"


@pytest.mark.parametrize(
    ("path", "trick", "code"),
    [
        ("trust.cbor", ("flip", -5), "trust.bad_signature"),
        ("index.cbor", ("flip", -5), "sync.bad_signature"),
        ("trust.cbor", ("short", None), "sync.truncated"),
        ("index.cbor", ("lying_length", None), "sync.malformed"),
        ("trust.cbor", ("status", 500), "sync.http_status"),
        ("index.cbor", ("status", 404), "sync.http_status"),
        ("trust.cbor", ("huge_announced", 10**12), "sync.too_large"),
        ("trust.cbor", ("sleep", 1.0), "sync.timeout"),
        ("index.cbor", ("trickle", 0.05), "sync.timeout"),
    ],
)
def test_a_bad_response_never_replaces_the_last_good_copy(
    publisher: Publisher,
    synced: Path,
    server: ServedFolder,
    csca: keys.KeyPair,
    path: str,
    trick: tuple[str, object],
    code: str,
) -> None:
    """Each misbehaviour of a new publication fails with its code; the installed copy stays as it was."""
    publisher.publish(sequence=2, issued_at=NOW + DAY / 2)
    server.tricks[path] = trick
    started = time.monotonic()
    assert _refused(server, synced, csca, "trust" if path == "trust.cbor" else "index") == code
    assert time.monotonic() - started < 3 * FAST.deadline + 1  # the deadline holds, slow loris included
    server.tricks.clear()
    assert _sync(server, synced, csca, limits=ROOMY).ok  # and the next good response is taken


def test_a_listed_file_that_does_not_match_refuses_the_index(
    publisher: Publisher, synced: Path, server: ServedFolder, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """A file whose bytes differ from its hash, or that is larger than listed, keeps the old index."""
    index = publisher.publish(sequence=2, issued_at=NOW + DAY / 2, batches=(batch(7, kid=dsc.kid),))
    (new,) = [e for e in index.files if e.kind.value == "revocation"]
    server.tricks[new.path] = ("flip", 3)
    assert _refused(server, synced, csca, "index") == "sync.hash_mismatch"
    server.tricks[new.path] = ("huge_body", 10 * 1024 * 1024)
    assert _refused(server, synced, csca, "index") == "sync.too_large"


def test_wrong_anchor_or_environment_is_refused(
    publisher: Publisher, synced: Path, server: ServedFolder, csca: keys.KeyPair
) -> None:
    """Signed under another CSCA, or for another environment: refused, nothing replaced."""
    other = keys.make_csca(now=NOW - 60 * DAY)
    publisher.publish(sequence=2, issued_at=NOW + DAY / 2)
    assert _refused(server, synced, csca, "trust", anchor=other.certificate) == "trust.untrusted_signer"
    assert _refused(server, synced, csca, "index", anchor=other.certificate) == "sync.untrusted_signer"
    assert _refused(server, synced, csca, "index", environment=Environment.ACC) == "sync.wrong_environment"


def test_an_unreachable_server_keeps_everything(synced: Path, csca: keys.KeyPair) -> None:
    """Nothing listening on the port: sync.connection, folder untouched."""
    before = _installed(synced)
    closed = ServedFolder(root=synced, port=1)
    report = _sync(closed, synced, csca)
    assert (report.trust.code, report.index.code) == ("sync.connection", "sync.connection")
    assert _installed(synced) == before


def test_a_file_changed_on_disk_is_reported_and_left_out(synced: Path, csca: keys.KeyPair) -> None:
    """load_folder re-checks every file: a tampered batch file is a problem, the rest still loads."""
    data = load_folder(synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert data.index is not None
    victim = next(e for e in data.index.files if e.kind.value == "revocation")
    path = synced / victim.path
    path.write_bytes(path.read_bytes().replace(b"VN", b"DE"))
    again = load_folder(synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert [(p.path, p.code) for p in again.problems] == [(victim.name, "sync.hash_mismatch")]
    assert again.revocation is not None
    assert len(again.revocation) == 1


def test_ages_follow_the_policy(synced: Path, csca: keys.KeyPair) -> None:
    """Three days on, revocation (2 days) is stale while rules (7) and value sets (30) are not."""
    later = NOW + 3 * DAY
    data = load_folder(synced, anchor=csca.certificate, environment=ENV, now=later)
    assert [k.value for k in data.stale(later)] == ["revocation"]
    assert data.revocation is not None
    assert not data.revocation.is_fresh(later)
    assert data.trust is not None
    assert data.trust.is_fresh(later)


def test_the_folder_feeds_verify_rules_and_revocation_with_their_ages(
    synced: Path, csca: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """verify_options(): the synced rule runs (pass), revocation is checked; 8 days on, both are stale:
    rules.stale and revocation.stale, NEEDS_CHECK."""
    passport = issue(sample_dcc(), dsc.signer(), now=NOW)
    data = load_folder(synced, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert data.rules is not None
    assert [r.identifier for r in data.rules.rules] == ["GR-VN-0001"]
    assert data.trust is not None
    result = verify(passport.hc1, data.trust, now=SYNC_AT, country="VN", **data.verify_options())
    assert result.status is Status.VALID, result.failures
    assert (result.step("rules").code, result.step("revocation").code) == ("rules.ok", "revocation.ok")

    later = NOW + 8 * DAY
    stale = verify(passport.hc1, data.trust, now=later, country="VN", **data.verify_options())
    assert stale.status is Status.NEEDS_CHECK
    assert (stale.step("rules").code, stale.step("revocation").code) == ("rules.stale", "revocation.stale")


def test_a_rule_file_that_does_not_parse_is_reported_and_left_out(
    publisher: Publisher, server: ServedFolder, csca: keys.KeyPair, tmp_path: Path
) -> None:
    """A listed rule file that is no rule: a problem with the rules' code; the other rules still load."""
    publisher.publish(sequence=1, rules=[*RULES, ("rules/broken.json", b'{"Identifier": 1}')])
    folder = tmp_path / "client"
    assert _sync(server, folder, csca).ok
    data = load_folder(folder, anchor=csca.certificate, environment=ENV, now=SYNC_AT)
    assert [(p.path, p.code.split(".")[0]) for p in data.problems] == [("rules/broken.json", "rules")]
    assert data.rules is not None
    assert [r.identifier for r in data.rules.rules] == ["GR-VN-0001"]


def test_a_corrupt_state_file_is_ignored_not_fatal(
    synced: Path, server: ServedFolder, csca: keys.KeyPair
) -> None:
    """Garbage or a naive time in state.json: no conditional request, the installed documents' sequences
    stay the floor, the sync succeeds."""
    state = synced / "state.json"
    for garbage in (b"{not json", state.read_bytes().replace(b"+00:00", b"")):
        state.write_bytes(garbage)
        server.requests.clear()
        report = _sync(server, synced, csca)
        assert (report.trust.status, report.index.status) == ("unchanged", "unchanged")
        assert all("If-None-Match" not in headers for _, headers in server.requests)
