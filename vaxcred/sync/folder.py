"""Loading verifier data from disk: a synced folder (:func:`load_folder`) or revocation batch files.

:func:`load_folder` re-verifies what :func:`~vaxcred.sync.client.sync_folder` installed — the trust list
and the index against the pinned anchor, each listed file against its size and SHA-256 — so a file
changed on disk is reported and left out, never used.  Revocation batches are read into one
:class:`~vaxcred.revocation.RevocationList` aged by the index's ``issued_at``; rule and value-set files
are handed over as bytes (their format is the rules engine's business) with the same age.

:func:`load_revocation_files` reads batch files as published — a gateway batch per file, or the JSON
array ``vaxcred revocations export`` writes — from files or folders (``*.json``).  A bad file, or a bad
batch inside an array, is reported as a :class:`FileProblem` and skipped; the good ones are kept.

Reads files; ``now`` is a parameter.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from vaxcred.errors import SyncError, TrustStoreError, VaxcredError
from vaxcred.revocation import (
    DEFAULT_MAX_ENTRIES,
    RevocationBatch,
    RevocationList,
    RevocationListBuilder,
    read_batches,
)
from vaxcred.rules import RuleSet
from vaxcred.rules.ruleset import parse_json
from vaxcred.sync.freshness import DataFreshnessPolicy, DataKind
from vaxcred.sync.index import SyncIndex, load_signed_index
from vaxcred.sync.state import FILES, INDEX, TRUST
from vaxcred.trust import Environment, TrustStore, load_signed_trust_list
from vaxcred.trust.store import require_utc

__all__ = ["DataFile", "FileProblem", "SyncedData", "load_folder", "load_revocation_files"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileProblem:
    """A file (or one batch in it, ``batch`` its position) that was left out, and why."""

    path: str
    code: str
    message: str
    batch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFile:
    """A rule or value-set file as listed in the index."""

    kind: DataKind
    name: str
    data: bytes

    def __repr__(self) -> str:
        return f"DataFile(kind={self.kind.value}, name={self.name!r}, bytes={len(self.data)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncedData:
    """What a synced folder holds, verified, with its ages (``None`` where a part is missing or bad)."""

    trust: TrustStore | None
    index: SyncIndex | None
    rules: tuple[DataFile, ...]
    value_sets: tuple[DataFile, ...]
    revocation: RevocationList | None
    policy: DataFreshnessPolicy
    problems: tuple[FileProblem, ...]

    def issued_at(self, kind: DataKind) -> datetime | None:
        """When the data of ``kind`` was current (the trust list's or the index's signed time)."""
        if kind is DataKind.TRUST:
            return self.trust.issued_at if self.trust is not None else None
        return self.index.issued_at if self.index is not None else None

    def is_fresh(self, kind: DataKind, now: datetime) -> bool:
        """Whether ``kind`` is present and within its maximum age at ``now``."""
        issued_at = self.issued_at(kind)
        return issued_at is not None and self.policy.is_fresh(kind, issued_at, now)

    def rule_set(self) -> RuleSet | None:
        """The folder's business rules as one :class:`~vaxcred.rules.RuleSet` (``None`` when it lists none);
        :class:`~vaxcred.errors.RulesError` names a rule file that does not parse or validate."""
        if not self.rules:
            return None
        documents = [parse_json(f.data, what=f"rule file {f.name}") for f in self.rules]
        return RuleSet.from_documents(documents)

    def stale(self, now: datetime) -> tuple[DataKind, ...]:
        """The kinds missing or past their maximum age at ``now`` (a verifier answers NEEDS_CHECK)."""
        return tuple(kind for kind in DataKind if not self.is_fresh(kind, now))


def _read_into(
    builder: RevocationListBuilder, stream: BinaryIO, path: str, problems: list[FileProblem]
) -> None:
    """Add one file's batches; a file that breaks half-way is undone entirely."""
    mark = builder.checkpoint()
    bad: list[FileProblem] = []
    try:
        for position, item in enumerate(read_batches(stream)):
            if isinstance(item, RevocationBatch):
                builder.add(item)
            else:
                bad.append(FileProblem(path=path, code=item.code, message=item.message, batch=position))
    except TrustStoreError as e:
        builder.rollback(mark)
        problems.append(FileProblem(path=path, code=e.code, message=e.message))
        return
    problems.extend(bad)


def _batch_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return files


def load_revocation_files(
    paths: Iterable[Path],
    *,
    now: datetime,
    issued_at: datetime | None = None,
    max_age: timedelta | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> tuple[RevocationList, tuple[FileProblem, ...]]:
    """One list from batch files and folders of them (see the module docstring), and what was skipped."""
    builder = RevocationListBuilder(now=now, max_entries=max_entries)
    problems: list[FileProblem] = []
    for path in _batch_files(paths):
        try:
            with path.open("rb") as fh:
                _read_into(builder, fh, str(path), problems)
        except OSError as e:
            problems.append(FileProblem(path=str(path), code="sync.io", message=e.strerror or str(e)))
    return builder.build(issued_at=issued_at, max_age=max_age), tuple(problems)


def _verified_file(folder: Path, digest: bytes, size: int) -> bytes:
    path = folder / FILES / digest.hex()
    try:
        with path.open("rb") as fh:
            data = fh.read(size + 1)
    except OSError as e:
        raise SyncError(f"missing: {e.strerror}", code="sync.missing") from e
    if len(data) != size or hashlib.sha256(data).digest() != digest:
        raise SyncError("does not match the index (changed on disk?)", code="sync.hash_mismatch")
    return data


def load_folder(
    folder: Path,
    *,
    anchor: x509.Certificate,
    environment: Environment,
    now: datetime,
    policy: DataFreshnessPolicy | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> SyncedData:
    """The verified content of a synced folder (see the module docstring).

    Nothing raises for what is on disk: a missing or bad trust list or index leaves that part ``None``,
    with the reason in ``problems``.
    """
    now = require_utc(now)
    policy = policy or DataFreshnessPolicy()
    problems: list[FileProblem] = []
    trust: TrustStore | None = None
    index: SyncIndex | None = None
    try:
        trust = load_signed_trust_list(
            (folder / TRUST).read_bytes(),
            anchor=anchor,
            environment=environment,
            now=now,
            max_age=policy.trust,
        )
    except OSError as e:
        problems.append(FileProblem(path=TRUST, code="sync.missing", message=e.strerror or str(e)))
    except VaxcredError as e:
        problems.append(FileProblem(path=TRUST, code=e.code, message=e.message))
    try:
        index = load_signed_index(
            (folder / INDEX).read_bytes(), anchor=anchor, environment=environment, now=now
        )
    except OSError as e:
        problems.append(FileProblem(path=INDEX, code="sync.missing", message=e.strerror or str(e)))
    except VaxcredError as e:
        problems.append(FileProblem(path=INDEX, code=e.code, message=e.message))

    files: dict[DataKind, list[DataFile]] = {DataKind.RULES: [], DataKind.VALUE_SETS: []}
    revocation: RevocationList | None = None
    if index is not None:
        builder = RevocationListBuilder(now=now, max_entries=max_entries)
        for entry in index.files:
            try:
                data = _verified_file(folder, entry.sha256, entry.size)
            except VaxcredError as e:
                problems.append(FileProblem(path=entry.name, code=e.code, message=e.message))
                continue
            if entry.kind is DataKind.REVOCATION:
                _read_into(builder, io.BytesIO(data), entry.name, problems)
            else:
                files[entry.kind].append(DataFile(kind=entry.kind, name=entry.name, data=data))
        revocation = builder.build(issued_at=index.issued_at, max_age=policy.revocation)
    return SyncedData(
        trust=trust,
        index=index,
        rules=tuple(files[DataKind.RULES]),
        value_sets=tuple(files[DataKind.VALUE_SETS]),
        revocation=revocation,
        policy=policy,
        problems=tuple(problems),
    )
