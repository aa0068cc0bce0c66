"""The key-operations log: an append-only, hash-chained JSON Lines file in the key-chain folder.

Every key operation (generate, rotate, retire, withdraw, revoke, CRL) appends one line::

    {"fingerprint":…,"kid":…,"operation":"generate","operator":…,"prev":"<SHA-256 hex of the previous line>",
     "purpose":"dsc-v","reason":null,"seq":3,"serial":…,"time":"2026-01-01T00:00:00Z"}

Keys are sorted and the JSON is compact, so a line's bytes are fixed by its content. ``prev`` of the first line
is 64 zeros; ``seq`` counts from 1. Guarantees, and what enforces them:

- editing, inserting, deleting or reordering any line but the last breaks the chain: :meth:`KeyOperationsLog.read`
  recomputes every ``prev`` and ``seq`` (KeyStoreError ``keys.audit_broken`` naming the first bad line);
- cutting lines off the end is detectable only against a head recorded elsewhere: :meth:`KeyOperationsLog.head`
  is printed by ``vaxcred keys audit`` for the ceremony minutes, and ``--expect-head`` checks it;
- concurrent appends do not interleave: an exclusive ``flock`` around read-last-line + append, ``fsync`` after.

It is the source of truth for the chain's key states (a DSC retired or withdrawn, a site certificate revoked).
This is not the RFC 9162 issuance log (SECURITY.md §5): that one is a Merkle tree over every signed object;
this is a simple chain over key operations only, kept separate.
"""

from __future__ import annotations

__all__ = ["KEY_OPERATIONS_LOG", "KeyOperation", "KeyOperationsLog"]

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from vaxcred.errors import KeyStoreError

KEY_OPERATIONS_LOG: Final = "key-operations.jsonl"
GENESIS: Final = "0" * 64
_OPERATIONS: Final = frozenset({"generate", "retire", "withdraw", "revoke", "crl"})
_MAX_LINE: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyOperation:
    """One key operation: when, what, on which key (purpose, kid, serial, certificate SHA-256), by whom."""

    time: datetime
    operation: str
    purpose: str
    kid: str | None = None
    serial: str | None = None
    fingerprint: str | None = None
    operator: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("time must be an aware UTC datetime")
        if self.operation not in _OPERATIONS:
            raise ValueError(f"operation must be one of {sorted(_OPERATIONS)}, not {self.operation!r}")

    def _fields(self) -> dict[str, str | None]:
        return {
            "time": self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operation": self.operation,
            "purpose": self.purpose,
            "kid": self.kid,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "operator": self.operator,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class KeyOperationsLog:
    """The log file at ``path`` (normally ``<chain>/key-operations.jsonl``)."""

    path: Path

    def append(self, op: KeyOperation) -> str:
        """Append ``op`` after the last line; return the new head (SHA-256 hex of the line written)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as e:
            raise KeyStoreError(f"cannot open the key-operations log: {e.strerror}", code="keys.io") from e
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.seek(0)
            lines = f.read().splitlines()
            prev = hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS
            record = {**op._fields(), "seq": len(lines) + 1, "prev": prev}
            line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
            f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return hashlib.sha256(line).hexdigest()

    def read(self) -> tuple[KeyOperation, ...]:
        """Every operation, after checking the whole chain; an absent file is an empty log."""
        operations, _ = self._read()
        return operations

    def head(self) -> str:
        """SHA-256 hex of the last line (64 zeros for an empty log), after checking the chain."""
        _, head = self._read()
        return head

    def _read(self) -> tuple[tuple[KeyOperation, ...], str]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return (), GENESIS
        except OSError as e:
            raise KeyStoreError(f"cannot read the key-operations log: {e.strerror}", code="keys.io") from e
        if data and not data.endswith(b"\n"):
            raise _broken(data.count(b"\n") + 1, "the last line is incomplete")
        prev = GENESIS
        operations: list[KeyOperation] = []
        for number, line in enumerate(data.splitlines(), start=1):
            operations.append(_parse(line, number, prev))
            prev = hashlib.sha256(line).hexdigest()
        return tuple(operations), prev


def _parse(line: bytes, number: int, prev: str) -> KeyOperation:
    if len(line) > _MAX_LINE:
        raise _broken(number, "line too long")
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not an object")
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        if canonical != line:
            raise ValueError("not in canonical form")
        if record.get("prev") != prev:
            raise _broken(number, "prev is not the hash of the line before (edited, inserted or removed)")
        if record.get("seq") != number:
            raise _broken(number, f"seq is {record.get('seq')!r}, expected {number}")
        time = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        texts = {k: _text_or_none(record, k) for k in ("kid", "serial", "fingerprint", "operator", "reason")}
        return KeyOperation(
            time=time, operation=str(record["operation"]), purpose=str(record["purpose"]), **texts
        )
    except KeyStoreError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise _broken(number, f"malformed: {e}") from e


def _text_or_none(record: dict[str, object], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    return value


def _broken(number: int, why: str) -> KeyStoreError:
    return KeyStoreError(f"key-operations log line {number}: {why}", code="keys.audit_broken")
