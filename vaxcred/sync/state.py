"""The synced folder on disk: its layout, ``state.json``, and atomic replacement of files.

::

    DIR/trust.cbor          the last good signed national trust list
    DIR/index.cbor          the last good signed index
    DIR/files/<sha256 hex>  every file the index lists (content-addressed: a new file never disturbs the
                            current index; files no longer listed are removed after an index is installed)
    DIR/state.json          per document: ETag, Last-Modified, sequence, issued_at, SHA-256, when synced

Every file is written to a temporary name in the same folder, flushed and ``fsync``-ed, then renamed over
the old one (``os.replace``, atomic on POSIX), and the folder is ``fsync``-ed: a crash leaves the old file
or the new one, never a mix.  ``state.json`` is written last.  An unreadable ``state.json`` is ignored
(conditional requests are then not made; rollback protection falls back to the installed documents).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

__all__ = ["FILES", "INDEX", "STATE", "TRUST", "DocumentState", "SyncState", "write_atomic"]

TRUST: Final = "trust.cbor"
INDEX: Final = "index.cbor"
STATE: Final = "state.json"
FILES: Final = "files"
_MAX_STATE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentState:
    """What the client remembers of one signed document it installed."""

    sequence: int
    issued_at: str
    sha256: str
    synced_at: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncState:
    """``state.json``: the trust list's and the index's :class:`DocumentState`, when known."""

    documents: dict[str, DocumentState] = field(default_factory=dict)

    def get(self, name: str) -> DocumentState | None:
        return self.documents.get(name)

    def with_document(self, name: str, document: DocumentState) -> SyncState:
        return SyncState(documents={**self.documents, name: document})

    def to_json(self) -> bytes:
        body = {"version": 1, "documents": {k: asdict(v) for k, v in sorted(self.documents.items())}}
        return json.dumps(body, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def read(cls, folder: Path) -> SyncState:
        """The folder's state; empty when there is none or it cannot be read."""
        path = folder / STATE
        try:
            with path.open("rb") as fh:
                raw = fh.read(_MAX_STATE_BYTES + 1)
            if len(raw) > _MAX_STATE_BYTES:
                return cls()
            document: Any = json.loads(raw)
            documents = {
                name: DocumentState(**{k: v for k, v in value.items() if k in DocumentState.__slots__})
                for name, value in document["documents"].items()
                if name in (TRUST, INDEX)
            }
            for value in documents.values():
                if isinstance(value.sequence, bool) or not isinstance(value.sequence, int):
                    return cls()
                if (
                    datetime.fromisoformat(value.issued_at).utcoffset() is None
                ):  # ValueError, TypeError: ignored
                    return cls()
            return cls(documents=documents)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync of the folder."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
