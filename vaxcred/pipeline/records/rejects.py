"""The rejects file of an import: one CSV row per refused input row (``line, field, code, reason, raw``).

It is an operator artefact that holds personal data unmasked — the operator needs the raw row to fix it — so it is
created with mode 0600 (owner only), and truncated at the start of each run. A cell that a spreadsheet would run
as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) is written with a leading ``'`` (OWASP's
CSV-injection advice). When the file cannot be written (a full disk) the import goes on and ``error`` says why.
"""

from __future__ import annotations

import contextlib
import csv
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from vaxcred.pipeline.records.fields import FORMULA_PREFIXES
from vaxcred.pipeline.records.reading import MAX_LINE_CHARS

__all__ = ["MAX_RAW_CHARS", "REJECTS_HEADER", "RejectsFile", "neutralise_cell", "raw_cell"]

#: the raw text of a rejected row is cut here, so that csv readers with their default field limit (128 KiB)
#: can read the rejects file
MAX_RAW_CHARS = MAX_LINE_CHARS
#: the columns of the rejects file
REJECTS_HEADER = ("line", "field", "code", "reason", "raw")


def neutralise_cell(value: object) -> str:
    """A cell as text that a spreadsheet shows instead of running: ``'`` before ``=``, ``+``, ``-``, ``@``,
    tab or CR at its start (CSV injection)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def raw_cell(raw: str) -> str:
    """The raw row as the rejects file keeps it: cut at :data:`MAX_RAW_CHARS`."""
    return raw if len(raw) <= MAX_RAW_CHARS else raw[:MAX_RAW_CHARS] + "…[cut]"


class RejectsFile:
    """The rejects CSV (mode 0600, truncated), or nothing without a path. A write error (a full disk) is kept
    in ``error`` and stops further writes; it never stops the import."""

    def __init__(self, path: Path | None) -> None:
        self.error = ""
        self._stream: IO[str] | None = None
        self._writer: Any = None
        if path is None:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, 0o600)  # also when the file existed with wider permissions
            self._stream = open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="")  # noqa: SIM115
        except OSError as e:
            self.error = f"cannot write {path.name}: {e.strerror or e}"
            return
        self._writer = csv.writer(self._stream)
        self.write(REJECTS_HEADER)

    def write(self, cells: Iterable[object]) -> None:
        if self._writer is None or self.error:
            return
        try:
            self._writer.writerow([neutralise_cell(cell) for cell in cells])
        except OSError as e:
            self.error = f"the rejects file is incomplete: {e.strerror or e}"

    def close(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.close()
        except OSError as e:
            if not self.error:
                self.error = f"the rejects file is incomplete: {e.strerror or e}"
            with contextlib.suppress(OSError):
                self._stream.close()
