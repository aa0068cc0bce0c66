"""Loading verifier data from disk: a synced folder (:func:`load_folder`) or revocation batch files.

:func:`load_folder` re-verifies what :func:`~vaxcred.sync.client.sync_folder` installed — the trust list
and the index against the pinned anchor, each listed file against its size and SHA-256 — so a file
changed on disk is reported and left out, never used, and the data of its kind is marked incomplete
(``RevocationList.complete`` / ``RuleSet.complete`` false: ``verify`` answers NEEDS_CHECK where it would have
said VALID, ``revocation.incomplete`` / ``rules.incomplete``).  Revocation batches are read into one
:class:`~vaxcred.revocation.RevocationList` aged by the index's ``issued_at``; rule files are parsed into
one :class:`~vaxcred.rules.RuleSet` (a file that does not parse is reported and left out), and rule and
value-set files are also handed over as bytes; :meth:`SyncedData.verify_options` gives what
:func:`vaxcred.verify` takes (``revocation``, ``rules``, ``rules_stale_after``).

:func:`load_revocation_files` reads batch files as published — a gateway batch per file, or the JSON
array ``vaxcred revocations export`` writes — from files or folders (``*.json``).  A bad file, or a bad
batch inside an array, is reported as a :class:`FileProblem` and skipped; the good ones are kept, in a list
marked incomplete.

Reads files; ``now`` is a parameter.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cryptography import x509

from vaxcred.errors import RulesError, SyncError, TrustStoreError, VaxcredError
from vaxcred.revocation import (
    DEFAULT_MAX_ENTRIES,
    RevocationBatch,
    RevocationList,
    RevocationListBuilder,
    read_batches,
)
from vaxcred.rules import RuleSet, parse_json
from vaxcred.sync.freshness import DataFreshnessPolicy, DataKind
from vaxcred.sync.index import MAX_INDEX_BYTES, SyncIndex, load_signed_index
from vaxcred.sync.state import FILES, INDEX, TRUST
from vaxcred.trust import Environment, TrustStore, load_signed_trust_list
from vaxcred.trust.signed import MAX_SIGNED_LIST_BYTES
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
    rule_files: tuple[DataFile, ...]
    value_set_files: tuple[DataFile, ...]
    #: the rule files parsed into one :class:`~vaxcred.rules.RuleSet` (``None`` without an index)
    rules: RuleSet | None
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

    @property
    def rules_stale_after(self) -> datetime | None:
        """When the rules stop being fresh: the sooner of the rules' and the value sets' maximum ages."""
        if self.index is None:
            return None
        return self.index.issued_at + min(self.policy.rules, self.policy.value_sets)

    def verify_options(self) -> dict[str, Any]:
        """The :func:`vaxcred.verify` keyword arguments this folder provides (revocation, rules and their age)."""
        options: dict[str, Any] = {}
        if self.revocation is not None:
            options["revocation"] = self.revocation
        if self.rules is not None:
            options["rules"] = self.rules
            options["rules_stale_after"] = self.rules_stale_after
        return options

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
        # in a folder only regular files: a FIFO named *.json would block the read forever
        files.extend(sorted(p for p in path.glob("*.json") if p.is_file()) if path.is_dir() else [path])
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
    # a file or batch left out: a passport missing from the rest is not known to be unrevoked
    return builder.build(issued_at=issued_at, max_age=max_age, complete=not problems), tuple(problems)


def _rule_set(files: list[DataFile], problems: list[FileProblem]) -> RuleSet:
    """The rule files as one rule set; a file that does not parse is reported and left out."""
    documents: list[Any] = []
    for file in files:
        try:
            document = parse_json(file.data, what=file.name)
            RuleSet.from_documents([document])  # each file valid on its own
        except RulesError as e:
            problems.append(FileProblem(path=file.name, code=e.code, message=e.message))
            continue
        documents.append(document)
    try:
        return RuleSet.from_documents(documents)
    except RulesError as e:  # files that clash with each other (the same rule twice, too many rules)
        problems.append(FileProblem(path="rules", code=e.code, message=e.message))
        return RuleSet.from_documents([])


def _with_value_sets(rules: RuleSet, files: list[DataFile], problems: list[FileProblem]) -> RuleSet:
    """The rules evaluated against the folder's value sets (they replace the vendored ones id by id); a value-set
    file that does not parse is reported and left out."""
    documents: list[Any] = []
    for file in files:
        try:
            document = parse_json(file.data, what=file.name)
            RuleSet.from_documents([]).with_value_sets([document])  # each file valid on its own
        except RulesError as e:
            problems.append(FileProblem(path=file.name, code=e.code, message=e.message))
            continue
        documents.append(document)
    return rules.with_value_sets(documents) if documents else rules


def _read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path``: a FIFO, device or folder put in its place is
    refused without blocking (``OSError``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return fh.read(limit + 1)


def _verified_file(folder: Path, digest: bytes, size: int) -> bytes:
    path = folder / FILES / digest.hex()
    try:
        data = _read_regular(path, size)
    except OSError as e:
        raise SyncError(f"missing: {e.strerror or e}", code="sync.missing") from e
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
            _read_regular(folder / TRUST, MAX_SIGNED_LIST_BYTES),
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
            _read_regular(folder / INDEX, MAX_INDEX_BYTES), anchor=anchor, environment=environment, now=now
        )
    except OSError as e:
        problems.append(FileProblem(path=INDEX, code="sync.missing", message=e.strerror or str(e)))
    except VaxcredError as e:
        problems.append(FileProblem(path=INDEX, code=e.code, message=e.message))

    files: dict[DataKind, list[DataFile]] = {DataKind.RULES: [], DataKind.VALUE_SETS: []}
    revocation: RevocationList | None = None
    rules: RuleSet | None = None
    if index is not None:
        builder = RevocationListBuilder(now=now, max_entries=max_entries)
        complete = {DataKind.REVOCATION: True, DataKind.RULES: True, DataKind.VALUE_SETS: True}
        for entry in index.files:
            before = len(problems)
            try:
                data = _verified_file(folder, entry.sha256, entry.size)
            except VaxcredError as e:
                problems.append(FileProblem(path=entry.name, code=e.code, message=e.message))
            else:
                if entry.kind is DataKind.REVOCATION:
                    _read_into(builder, io.BytesIO(data), entry.name, problems)
                else:
                    files[entry.kind].append(DataFile(kind=entry.kind, name=entry.name, data=data))
            if len(problems) > before:
                complete[entry.kind] = False
        revocation = builder.build(
            issued_at=index.issued_at, max_age=policy.revocation, complete=complete[DataKind.REVOCATION]
        )
        before = len(problems)
        rules = _with_value_sets(
            _rule_set(files[DataKind.RULES], problems), files[DataKind.VALUE_SETS], problems
        )
        if len(problems) > before or not (complete[DataKind.RULES] and complete[DataKind.VALUE_SETS]):
            # a listed rule or value-set file left out: what loaded may pass where the whole would not
            rules = RuleSet(rules=rules.rules, value_sets=rules.value_sets, complete=False)
    return SyncedData(
        trust=trust,
        index=index,
        rule_files=tuple(files[DataKind.RULES]),
        value_set_files=tuple(files[DataKind.VALUE_SETS]),
        rules=rules,
        revocation=revocation,
        policy=policy,
        problems=tuple(problems),
    )
