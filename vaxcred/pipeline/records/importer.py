"""Bulk import of dose records from CSV or JSON Lines: streaming, batched, idempotent, resumable.

::

    file ─> lines (≤ 1 MiB each) ─> rows (CSV / JSONL) ─> parse_row ─┬─> batch of ≤ N rows ─> one transaction
                                                                     └─> rejects file (line, field, code, reason, raw)

* **Constant memory.** Rows are read one at a time; at most one batch (``batch_size`` input rows, 1000 by
  default) is held, then written in its own transaction.
* **Idempotent.** Each dose is inserted with ``ON CONFLICT DO NOTHING`` on its natural key (citizen ID, dose
  number, date, site); re-importing a file adds nothing and counts its rows as ``duplicates``.
* **Resumable.** A crash (or ``kill -9``) loses at most the uncommitted batch; running the same import again
  stores exactly the rows that are missing. ``on_progress(rows_done)`` is called after each commit.
* **Persons** are inserted when their citizen ID is new and otherwise left as stored: changing an identity
  (which a passport may rest on) is the corrections flow's job, not a re-import's. A valid row whose person
  fields differ from the stored person still lands its dose and is counted in ``person_conflicts``.
* **Sites** first seen in an import are created with their ID only (name and province unknown).
* **Bad rows** (unparseable CSV/JSON, wrong cell count, invalid UTF-8, a field :func:`parse_row` refuses) are
  counted and, when ``rejects_path`` is given, written there as CSV: ``line`` (the row's first physical line,
  1-based, the header being line 1), ``field``, ``code``, ``reason``, ``raw`` (the row exactly as read, cut at
  :data:`MAX_RAW_CHARS`).
  The rejects file is an operator artefact that holds personal data unmasked — the operator needs the raw
  row to fix it — so it is created with mode 0600 (owner only), and truncated at the start of each run.
  Reasons never contain personal values; nothing here logs rows.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import IdType
from vaxcred.pipeline.records.model import ROW_FIELDS, ImportRow, parse_row
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, sites

__all__ = [
    "BAD_IMPORT",
    "BATCH_SIZE",
    "MAX_LINE_CHARS",
    "MAX_RAW_CHARS",
    "REJECTS_HEADER",
    "Format",
    "ImportReport",
    "import_file",
    "import_lines",
]

#: rows per transaction
BATCH_SIZE = 1000
#: a longer physical line is rejected (a runaway line must not break constant memory); a dose row is ~200
MAX_LINE_CHARS = 1 << 16
#: the raw text of a rejected row is cut here, so that csv readers with their default field limit (128 KiB)
#: can read the rejects file
MAX_RAW_CHARS = MAX_LINE_CHARS
#: the columns of the rejects file
REJECTS_HEADER = ("line", "field", "code", "reason", "raw")
#: the whole file is unusable (no header, a required column missing, unknown format); nothing was imported
BAD_IMPORT = "pipeline.bad_import"
#: codes of rows refused before :func:`parse_row` (which gives ``pipeline.bad_row``)
_UNREADABLE = "pipeline.unreadable_row"

Format = Literal["csv", "jsonl"]
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """What one import run did; ``rows == imported + duplicates + rejected``."""

    rows: int  #: data rows read (blank lines and the CSV header not counted)
    imported: int  #: doses newly stored
    duplicates: int  #: valid rows whose dose was already stored (same natural key)
    rejected: int  #: rows refused; see the rejects file
    person_conflicts: int = 0  #: valid rows whose name / dob / gender / ID type differ from the stored person
    rejects_path: Path | None = None


@dataclass(frozen=True, slots=True)
class _SourceRow:
    line: int
    raw: str
    fields: Mapping[str, object] | None  # None: unreadable, see reason
    reason: str = ""


# --- reading ---------------------------------------------------------------------------------------------


class _LineTap:
    """Iterates lines (cut at ``MAX_LINE_CHARS``), remembering those consumed since the last ``take()``."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.count = 0
        self.pending: list[str] = []
        self.oversize = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        if len(line) > MAX_LINE_CHARS:
            self.oversize = True
            line = line[:MAX_LINE_CHARS] + "\n"
        self.pending.append(line)
        return line

    def take(self) -> tuple[int, str, bool]:
        """(first non-blank line number, raw text, any line too long) of the lines since the last take."""
        first = self.count - len(self.pending) + 1
        lines = self.pending
        while lines and not lines[0].strip("\r\n"):
            lines = lines[1:]
            first += 1
        raw = "".join(lines).rstrip("\r\n")
        oversize = self.oversize
        self.pending, self.oversize = [], False
        return first, raw, oversize


def _is_utf8(text: str) -> bool:
    """False if the text carries undecodable bytes (read with ``errors="surrogateescape"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_csv(lines: Iterable[str]) -> Iterator[_SourceRow]:
    tap = _LineTap(lines)
    reader = csv.reader(tap)
    header: list[str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            line, raw, _ = tap.take()
            yield _SourceRow(line, raw, None, f"malformed CSV: {e}")
            continue
        line, raw, oversize = tap.take()
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        if header is None:
            header = _check_header([cell.strip().lstrip("\ufeff").lower() for cell in cells])
            continue
        if oversize:
            yield _SourceRow(line, raw, None, f"a line is longer than {MAX_LINE_CHARS} characters")
        elif not _is_utf8(raw):
            yield _SourceRow(line, raw, None, "not valid UTF-8")
        elif len(cells) != len(header):
            yield _SourceRow(line, raw, None, f"{len(cells)} cells, the header has {len(header)}")
        else:
            yield _SourceRow(line, raw, dict(zip(header, cells, strict=True)))
    if header is None:
        raise PipelineError("the CSV file has no header row", code=BAD_IMPORT)


def _check_header(names: list[str]) -> list[str]:
    missing = [name for name in ROW_FIELDS if name not in names]
    if missing:
        raise PipelineError(f"the CSV header lacks {', '.join(missing)}", code=BAD_IMPORT)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PipelineError(f"the CSV header repeats {', '.join(repeated)}", code=BAD_IMPORT)
    return names


def _read_jsonl(lines: Iterable[str]) -> Iterator[_SourceRow]:
    tap = _LineTap(lines)
    for _ in tap:
        line, raw, oversize = tap.take()
        if not raw.strip():
            continue
        if oversize:
            yield _SourceRow(line, raw, None, f"a line is longer than {MAX_LINE_CHARS} characters")
            continue
        if not _is_utf8(raw):
            yield _SourceRow(line, raw, None, "not valid UTF-8")
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            yield _SourceRow(line, raw, None, f"not valid JSON: {e.msg} at column {e.colno}")
            continue
        except RecursionError:
            yield _SourceRow(line, raw, None, "not valid JSON: nested too deeply")
            continue
        if not isinstance(value, dict):
            yield _SourceRow(line, raw, None, f"a JSON {type(value).__name__}, not an object")
            continue
        yield _SourceRow(line, raw, value)


# --- storing ---------------------------------------------------------------------------------------------


def _province(row: ImportRow) -> str | None:
    return row.person.citizen_id[:3] if row.person.id_type is IdType.CCCD else None


def _person_values(row: ImportRow) -> dict[str, Any]:
    p = row.person
    return {
        "citizen_id": p.citizen_id,
        "id_type": p.id_type.value,
        "full_name": p.full_name,
        "dob": p.dob.text,
        "gender": p.gender.value,
        "province_code": _province(row),
    }


def _store_batch(db: Database, conn: Connection, batch: list[ImportRow]) -> tuple[int, int]:
    """Insert one batch; returns (doses inserted, rows whose person differs from the stored one)."""
    site_ids = sorted({row.dose.site_id for row in batch})
    conn.execute(db.insert_ignoring_conflicts(sites, on=["site_id"]), [{"site_id": s} for s in site_ids])

    first: dict[str, ImportRow] = {}
    for row in batch:
        first.setdefault(row.person.citizen_id, row)
    ordered = sorted(first)  # a fixed lock order: concurrent imports cannot deadlock on persons
    conn.execute(
        db.insert_ignoring_conflicts(persons, on=["citizen_id"]),
        [_person_values(first[cid]) for cid in ordered],
    )
    stored = {
        r.citizen_id: r
        for r in conn.execute(
            sa.select(
                persons.c.id,
                persons.c.citizen_id,
                persons.c.id_type,
                persons.c.full_name,
                persons.c.dob,
                persons.c.gender,
            ).where(persons.c.citizen_id.in_(ordered))
        )
    }
    conflicts = 0
    dose_values = []
    for row in batch:
        person = stored[row.person.citizen_id]
        p = row.person
        if (person.id_type, person.full_name, person.dob, person.gender) != (
            p.id_type.value,
            p.full_name,
            p.dob.text,
            p.gender.value,
        ):
            conflicts += 1
        d = row.dose
        dose_values.append(
            {
                "person_id": person.id,
                "dose_number": d.dose_number,
                "date": dt.date.fromisoformat(d.date),
                "site_id": d.site_id,
                "vaccine": d.vaccine,
                "lot": d.lot,
            }
        )
    # a fixed lock order on the natural key too (two imports of overlapping files cannot deadlock)
    dose_values.sort(key=lambda v: (v["person_id"], v["dose_number"], v["date"], v["site_id"]))
    inserted = conn.execute(
        db.insert_ignoring_conflicts(doses, on=["person_id", "dose_number", "date", "site_id"]).returning(
            doses.c.id
        ),
        dose_values,
    ).all()
    return len(inserted), conflicts


@contextlib.contextmanager
def _rejects_writer(path: Path | None) -> Iterator[Any]:
    """A csv writer on ``path`` created/truncated with mode 0600 (or ``None`` without a path)."""
    if path is None:
        yield None
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with wider permissions
    with open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(REJECTS_HEADER)
        yield writer


def import_lines(
    db: Database,
    lines: Iterable[str],
    *,
    format: Format,
    rejects_path: Path | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    today: dt.date | None = None,
) -> ImportReport:
    """Import dose records from ``lines`` (CSV with a header row, or JSON Lines), streaming.

    ``today`` (the caller's clock) makes :func:`parse_row` refuse future dates. Raises
    :class:`PipelineError` ``pipeline.bad_import`` for an unusable file (no header, a missing column); a
    database error or an exception from ``on_progress`` propagates after the batches before it were
    committed — run the same import again to finish.
    """
    if format not in ("csv", "jsonl"):
        raise ValueError(f"unknown import format {format!r}: 'csv' or 'jsonl'")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    source = _read_csv(lines) if format == "csv" else _read_jsonl(lines)
    rows = imported = rejected = conflicts = 0
    batch: list[ImportRow] = []
    in_batch = 0
    with _rejects_writer(rejects_path) as rejects:

        def reject(src: _SourceRow, field: str, code: str, reason: str) -> None:
            nonlocal rejected
            rejected += 1
            if rejects is not None:
                raw = src.raw if len(src.raw) <= MAX_RAW_CHARS else src.raw[:MAX_RAW_CHARS] + "…[cut]"
                rejects.writerow((src.line, field, code, reason, raw))

        def flush() -> None:
            nonlocal imported, conflicts, batch, in_batch
            if batch:
                with db.begin() as conn:
                    added, differing = _store_batch(db, conn, batch)
                imported += added
                conflicts += differing
            batch, in_batch = [], 0
            if on_progress is not None:
                on_progress(rows)

        for src in source:
            rows += 1
            in_batch += 1
            if src.fields is None:
                reject(src, "", _UNREADABLE, src.reason)
            else:
                try:
                    batch.append(parse_row(src.fields, today=today))
                except VaxcredError as e:
                    reject(src, getattr(e, "field", None) or "", e.code, e.message)
            if in_batch >= batch_size:
                flush()
        if in_batch or rows == 0:
            flush()
    good = rows - rejected
    return ImportReport(
        rows=rows,
        imported=imported,
        duplicates=good - imported,
        rejected=rejected,
        person_conflicts=conflicts,
        rejects_path=rejects_path,
    )


def _detect_format(path: Path) -> Format:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".csv":
        return "csv"
    if last in (".jsonl", ".ndjson"):
        return "jsonl"
    raise PipelineError(
        f"cannot tell the format of {path.name!r}: name it .csv or .jsonl (optionally .gz), or pass format",
        code=BAD_IMPORT,
    )


def _bounded_lines(stream: IO[str]) -> Iterator[str]:
    """The stream's lines, never holding more than ``MAX_LINE_CHARS + 1`` characters of one: the rest of a
    longer line is skipped (the line itself, cut, is still yielded so that its row is rejected)."""
    while line := stream.readline(MAX_LINE_CHARS + 1):
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := stream.readline(MAX_LINE_CHARS)) and not rest.endswith(("\n", "\r")):
                pass
        yield line


def _open_text(path: Path) -> IO[str]:
    # surrogateescape: an undecodable byte rejects its row instead of aborting the import
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def import_file(
    db: Database,
    path: Path | str,
    *,
    format: Format | None = None,
    rejects_path: Path | str | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    today: dt.date | None = None,
) -> ImportReport:
    """Import a ``.csv`` or ``.jsonl`` file (``.gz`` too); see :func:`import_lines`."""
    path = Path(path)
    chosen = format or _detect_format(path)
    with _open_text(path) as stream:
        return import_lines(
            db,
            _bounded_lines(stream),
            format=chosen,
            rejects_path=Path(rejects_path) if rejects_path is not None else None,
            batch_size=batch_size,
            on_progress=on_progress,
            today=today,
        )
