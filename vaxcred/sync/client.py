"""``vaxcred sync URL --into DIR``: pull the signed trust list, the signed index and the files it lists.

::

    URL/trust.cbor ──GET (If-None-Match / If-Modified-Since)──▶ verify with the pinned anchor, environment,
        │                                                         sequence >= last, not stale ──▶ DIR/trust.cbor
    URL/index.cbor ──GET (conditional)──▶ verify (same key), sequence >= last, not stale
        │
        └─▶ for each listed file not held yet: GET URL/files/<sha256> ──▶ size and SHA-256 match ──▶ DIR/files/
            all present ──▶ DIR/index.cbor (atomic) ──▶ unlisted files removed ──▶ DIR/state.json

Guarantees, and what enforces them:

- *A failed, truncated, tampered, stale or rolled-back download never replaces the last good copy*: every
  document is verified in memory before :func:`~vaxcred.sync.state.write_atomic` renames it into place;
  the index is installed only once every file it lists is present and matches its hash.
- *No rollback*: a trust list or index with a lower sequence than the one installed is refused
  (``trust.rollback`` / ``sync.rollback``), as is one signed earlier than it; the same sequence is
  accepted only with the same bytes; the floor is the highest of ``state.json`` and the installed document.
- *Nothing already stale is installed*: a trust list older than the trust maximum age, an index older than
  the longest maximum age of what it lists, is refused (``sync.stale``): it would only replace fresher
  data, or hand a verifier data it must not use.
- *Bounded*: every response has a size cap and a total deadline (:mod:`vaxcred.sync.http`).

The trust list and the index are independent: one can update while the other fails.  ``now`` is a
parameter (the CLI reads the clock).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from vaxcred.errors import SyncError, VaxcredError
from vaxcred.sync.freshness import DataFreshnessPolicy, DataKind
from vaxcred.sync.http import Fetched, HttpLimits, fetch
from vaxcred.sync.index import MAX_INDEX_BYTES, SyncIndex, load_signed_index
from vaxcred.sync.state import FILES, INDEX, STATE, TRUST, DocumentState, SyncState, write_atomic
from vaxcred.trust import Environment, TrustStore, load_signed_trust_list
from vaxcred.trust.signed import MAX_SIGNED_LIST_BYTES
from vaxcred.trust.store import require_utc

__all__ = ["PartOutcome", "SyncReport", "sync_folder"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartOutcome:
    """What happened to one document: ``updated``, ``not_modified``, ``unchanged`` or ``failed`` (+ code)."""

    name: str
    status: str
    code: str | None = None
    message: str = ""
    sequence: int | None = None
    files_fetched: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    """The outcome of one :func:`sync_folder` run."""

    trust: PartOutcome
    index: PartOutcome

    @property
    def ok(self) -> bool:
        return self.trust.status != "failed" and self.index.status != "failed"


def _url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _installed(folder: Path, name: str) -> bytes | None:
    path = folder / name
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    base: str
    folder: Path
    anchor: x509.Certificate
    environment: Environment
    now: datetime
    policy: DataFreshnessPolicy
    limits: HttpLimits


def _floor(state: DocumentState | None, installed_sequence: int | None) -> int | None:
    values = [v for v in (state.sequence if state else None, installed_sequence) if v is not None]
    return max(values) if values else None


def _sync_document(
    ctx: _Context,
    state: SyncState,
    name: str,
    max_bytes: int,
    load: Callable[[bytes, int | None], tuple[int, datetime, object]],
    prepare: Callable[[object], int] | None = None,
) -> tuple[PartOutcome, SyncState, object]:
    """Fetch, verify and install one signed document.

    ``load(body, floor)`` verifies a body and returns (sequence, issued_at, what it holds); ``prepare`` is
    called with what a new download holds before it is installed (the index: fetch its files) and returns
    the number of files fetched; whatever either raises refuses the download.
    """
    remembered = state.get(name)
    installed = _installed(ctx.folder, name)
    installed_sequence = None
    if installed is not None and (remembered is None or remembered.sha256 != _sha256(installed)):
        try:  # no trustworthy state for what is installed: its own signed sequence is the floor
            installed_sequence = load(installed, None)[0]
        except VaxcredError:
            installed_sequence = None
    floor = _floor(remembered, installed_sequence)
    conditional = installed is not None and remembered is not None and remembered.sha256 == _sha256(installed)
    fetched_files = 0
    try:
        fetched: Fetched = fetch(
            _url(ctx.base, name),
            max_bytes=max_bytes,
            limits=ctx.limits,
            etag=remembered.etag if conditional and remembered else None,
            last_modified=remembered.last_modified if conditional and remembered else None,
        )
        if fetched.not_modified:
            return PartOutcome(name=name, status="not_modified", sequence=floor), state, None
        sequence, issued_at, content = load(fetched.body, floor)
        if floor is not None and sequence == floor and installed is not None and fetched.body != installed:
            raise SyncError(f"sequence {sequence} again with different content", code="sync.rollback")
        if remembered is not None and issued_at < datetime.fromisoformat(remembered.issued_at):
            raise SyncError("signed earlier than the copy installed", code="sync.rollback")
        if prepare is not None:
            fetched_files = prepare(content)
    except VaxcredError as e:
        failed = PartOutcome(name=name, status="failed", code=e.code, message=e.message, sequence=floor)
        return failed, state, None
    unchanged = installed == fetched.body
    if not unchanged:
        write_atomic(ctx.folder / name, fetched.body)
    document = DocumentState(
        sequence=sequence,
        issued_at=issued_at.isoformat(),
        sha256=_sha256(fetched.body),
        synced_at=ctx.now.isoformat(),
        etag=fetched.etag,
        last_modified=fetched.last_modified,
    )
    outcome = PartOutcome(
        name=name,
        status="unchanged" if unchanged else "updated",
        sequence=sequence,
        files_fetched=fetched_files,
    )
    return outcome, state.with_document(name, document), content


def _load_trust(ctx: _Context) -> Callable[[bytes, int | None], tuple[int, datetime, object]]:
    def load(body: bytes, floor: int | None) -> tuple[int, datetime, object]:
        store: TrustStore = load_signed_trust_list(
            body,
            anchor=ctx.anchor,
            environment=ctx.environment,
            now=ctx.now,
            min_sequence=floor,
            max_age=ctx.policy.trust,
        )
        assert store.sequence is not None  # a signed list has both
        assert store.issued_at is not None
        if not store.is_fresh(ctx.now):
            raise SyncError(
                f"trust list issued {store.issued_at.isoformat()} is past its maximum age", code="sync.stale"
            )
        return store.sequence, store.issued_at, store

    return load


def _load_index(ctx: _Context) -> Callable[[bytes, int | None], tuple[int, datetime, object]]:
    longest = max(ctx.policy.max_age(k) for k in (DataKind.RULES, DataKind.VALUE_SETS, DataKind.REVOCATION))

    def load(body: bytes, floor: int | None) -> tuple[int, datetime, object]:
        index = load_signed_index(
            body, anchor=ctx.anchor, environment=ctx.environment, now=ctx.now, min_sequence=floor
        )
        if ctx.now - index.issued_at > longest:
            raise SyncError(
                f"index issued {index.issued_at.isoformat()} is past every maximum age", code="sync.stale"
            )
        return index.sequence, index.issued_at, index

    return load


def _fetch_files(ctx: _Context, index: object) -> int:
    """Fetch every listed file not held yet (checked by size and hash); the number fetched."""
    assert isinstance(index, SyncIndex)
    folder = ctx.folder / FILES
    folder.mkdir(exist_ok=True)
    fetched = 0
    for entry in index.files:
        path = folder / entry.sha256.hex()
        if _holds(path, entry.size, entry.sha256):
            continue
        body = fetch(_url(ctx.base, entry.path), max_bytes=entry.size, limits=ctx.limits).body
        if len(body) != entry.size or hashlib.sha256(body).digest() != entry.sha256:
            raise SyncError(
                f"{entry.path} does not match the index ({entry.name})", code="sync.hash_mismatch"
            )
        write_atomic(path, body)
        fetched += 1
    return fetched


def _repair_files(ctx: _Context, outcome: PartOutcome) -> tuple[PartOutcome, SyncIndex | None]:
    """A 304 says the index is current, not that its files on disk still are: fetch again any listed file
    missing or changed since (else ``load_folder`` leaves it out for good); a failure fails the index part."""
    installed = _installed(ctx.folder, INDEX)
    if installed is None:
        return outcome, None
    try:
        index = load_signed_index(installed, anchor=ctx.anchor, environment=ctx.environment, now=ctx.now)
        fetched = _fetch_files(ctx, index)
    except VaxcredError as e:
        failed = PartOutcome(
            name=INDEX, status="failed", code=e.code, message=e.message, sequence=outcome.sequence
        )
        return failed, None
    return dataclasses.replace(outcome, files_fetched=fetched), index


def _holds(path: Path, size: int, sha256: bytes) -> bool:
    try:
        return path.stat().st_size == size and hashlib.sha256(path.read_bytes()).digest() == sha256
    except OSError:
        return False


def _remove_unlisted(ctx: _Context, index: SyncIndex) -> None:
    folder = ctx.folder / FILES
    keep = {entry.sha256.hex() for entry in index.files}
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.name not in keep:
            path.unlink(missing_ok=True)


def sync_folder(
    base_url: str,
    folder: Path,
    *,
    anchor: x509.Certificate,
    environment: Environment,
    now: datetime,
    policy: DataFreshnessPolicy | None = None,
    limits: HttpLimits | None = None,
) -> SyncReport:
    """Bring ``folder`` up to date from ``base_url`` (see the module docstring); never raises for what the
    server sends — each part's outcome is in the report.  Local I/O errors (a full disk) do raise."""
    if not isinstance(anchor, x509.Certificate):
        raise TypeError("anchor must be an x509.Certificate")
    ctx = _Context(
        base=base_url,
        folder=folder,
        anchor=anchor,
        environment=environment,
        now=require_utc(now),
        policy=policy or DataFreshnessPolicy(),
        limits=limits or HttpLimits(),
    )
    folder.mkdir(parents=True, exist_ok=True)
    state = SyncState.read(folder)
    trust, state, _ = _sync_document(ctx, state, TRUST, MAX_SIGNED_LIST_BYTES, _load_trust(ctx))
    write_atomic(folder / STATE, state.to_json())
    index, state, content = _sync_document(
        ctx, state, INDEX, MAX_INDEX_BYTES, _load_index(ctx), lambda c: _fetch_files(ctx, c)
    )
    if index.status == "not_modified":
        index, content = _repair_files(ctx, index)
    if isinstance(content, SyncIndex):
        _remove_unlisted(ctx, content)
    write_atomic(folder / STATE, state.to_json())
    return SyncReport(trust=trust, index=index)
