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
* **One row = one line.** A CSV row is parsed on its own line (``csv`` strict mode): an unbalanced quote
  (``"Nguyễn`` typed in a name) rejects that line only, and reading re-synchronises at the next one — it never
  swallows the rows after it. So ``rows`` is always the number of non-blank data lines. (Dose rows hold no
  line breaks: names and lots are printable text.)
* **Conflicting re-imports.** A valid row whose natural key is stored with another vaccine or lot is counted in
  ``dose_conflicts`` (not ``duplicates``): the stored dose is kept, a correction changes it.
* **Bad rows** (unparseable CSV/JSON, a JSON object repeating a key, wrong cell count, invalid UTF-8, a field
  :func:`parse_row` refuses) are counted and, when ``rejects_path`` is given, written there as CSV: ``line`` (the
  row's line, 1-based, the header being line 1), ``field``, ``code``, ``reason``, ``raw`` (the row exactly as
  read, cut at :data:`MAX_RAW_CHARS`). A cell that a spreadsheet would run as a formula (starting with ``=``,
  ``+``, ``-``, ``@``, tab or CR) is written with a leading ``'`` (OWASP's CSV-injection advice).
  The rejects file is an operator artefact that holds personal data unmasked — the operator needs the raw
  row to fix it — so it is created with mode 0600 (owner only), and truncated at the start of each run.
  Reasons never contain personal values; nothing here logs rows. When the rejects file cannot be written (a
  full disk), the import goes on, the rows are still counted and ``rejects_error`` says what happened.
* **Hints.** A header that lacks the columns because the file is separated by ``;`` or tabs, or is UTF-16, is
  refused with that said; a file none of whose rows is UTF-8 gets ``hint`` (save it as UTF-8).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import IdType
from vaxcred.pipeline.records.model import FORMULA_PREFIXES, ROW_FIELDS, ImportRow, parse_row
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
    "neutralise_cell",
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
_NOT_UTF8 = "not valid UTF-8"

Format = Literal["csv", "jsonl"]
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """What one import run did; ``rows == imported + duplicates + dose_conflicts + rejected``."""

    rows: int  #: data rows read = the non-blank data lines (the CSV header not counted)
    imported: int  #: doses newly stored
    duplicates: int  #: valid rows whose dose was already stored as is (same natural key, vaccine and lot)
    rejected: int  #: rows refused; see the rejects file
    person_conflicts: int = 0  #: valid rows whose name / dob / gender / ID type differ from the stored person
    dose_conflicts: int = 0  #: valid rows whose natural key is stored with another vaccine or lot (kept)
    rejects_path: Path | None = None
    rejects_error: str = ""  #: why the rejects file could not be (fully) written, e.g. a full disk
    hint: str = ""  #: a whole-file problem worth saying (not UTF-8)


@dataclass(frozen=True, slots=True)
class _SourceRow:
    line: int
    raw: str
    fields: Mapping[str, object] | None  # None: unreadable, see reason
    reason: str = ""


# --- reading ---------------------------------------------------------------------------------------------


def _cut(line: str) -> tuple[str, bool]:
    """The line without its end, cut at ``MAX_LINE_CHARS`` (and whether it was longer)."""
    raw = line.rstrip("\r\n")
    if len(raw) > MAX_LINE_CHARS:
        return raw[:MAX_LINE_CHARS], True
    return raw, False


def _is_utf8(text: str) -> bool:
    """False if the text carries undecodable bytes (read with ``errors="surrogateescape"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_cells(raw: str) -> list[str] | str:
    """The cells of one CSV line, or why it is not one (strict: an unbalanced quote is an error)."""
    try:
        return next(csv.reader([raw], strict=True))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            return "malformed CSV: a quoted cell does not end on its line (unbalanced quote)"
        return f"malformed CSV: {e}"
    except StopIteration:  # pragma: no cover - a non-empty line gives a row
        return []


def _read_csv(lines: Iterable[str]) -> Iterator[_SourceRow]:
    header: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        raw, oversize = _cut(line)
        if not raw.strip():
            continue  # blank line
        if header is None:
            cells = _csv_cells(raw)
            header = _check_header(
                [cell.strip().lstrip("\ufeff").lower() for cell in cells] if isinstance(cells, list) else [],
                raw,
            )
            continue
        if oversize:
            yield _SourceRow(number, raw, None, f"a line is longer than {MAX_LINE_CHARS} characters")
            continue
        if not _is_utf8(raw):
            yield _SourceRow(number, raw, None, _NOT_UTF8)
            continue
        cells = _csv_cells(raw)
        if isinstance(cells, str):
            yield _SourceRow(number, raw, None, cells)
        elif len(cells) != len(header):
            yield _SourceRow(number, raw, None, f"{len(cells)} cells, the header has {len(header)}")
        else:
            yield _SourceRow(number, raw, dict(zip(header, cells, strict=True)))
    if header is None:
        raise PipelineError("the CSV file has no header row", code=BAD_IMPORT)


def _header_hint(raw: str) -> str:
    """Why a header line may lack the columns: another separator or encoding."""
    if "\x00" in raw or raw.startswith(("\ufffe", "\udcff\udcfe", "\udcfe\udcff")):
        return " (the file looks UTF-16: save it as UTF-8 CSV)"
    if not _is_utf8(raw):
        return " (the file is not UTF-8: save it as CSV UTF-8)"
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
        if raw.count(separator) >= len(ROW_FIELDS) - 1 > raw.count(","):
            return f" (the header is separated by {name}: save the file comma-separated)"
    return ""


def _check_header(names: list[str], raw: str) -> list[str]:
    missing = [name for name in ROW_FIELDS if name not in names]
    if missing:
        raise PipelineError(f"the CSV header lacks {', '.join(missing)}{_header_hint(raw)}", code=BAD_IMPORT)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PipelineError(f"the CSV header repeats {', '.join(repeated)}", code=BAD_IMPORT)
    return names


class _RepeatedKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook: a key given twice is an error (JSON keeps the last silently)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _RepeatedKeyError("an object repeats a key")
    return value


def _read_jsonl(lines: Iterable[str]) -> Iterator[_SourceRow]:
    for line, text in enumerate(lines, start=1):
        raw, oversize = _cut(text)
        if not raw.strip():
            continue
        if oversize:
            yield _SourceRow(line, raw, None, f"a line is longer than {MAX_LINE_CHARS} characters")
            continue
        if not _is_utf8(raw):
            yield _SourceRow(line, raw, None, _NOT_UTF8)
            continue
        try:
            value = json.loads(raw, object_pairs_hook=_unique_keys)
        except _RepeatedKeyError:
            yield _SourceRow(line, raw, None, "not valid here: a JSON object repeats a key")
            continue
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


def _store_batch(db: Database, conn: Connection, batch: list[ImportRow]) -> tuple[int, int, int]:
    """Insert one batch; returns (doses inserted, rows whose person differs from the stored one, rows whose
    natural key is stored with another vaccine or lot)."""
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
    if len(inserted) == len(dose_values):  # every row stored: none can clash with a stored dose
        return len(inserted), conflicts, 0
    return len(inserted), conflicts, _differing_doses(conn, dose_values)


def _differing_doses(conn: Connection, dose_values: list[dict[str, Any]]) -> int:
    """How many of the rows find their natural key stored with another vaccine or lot."""
    person_ids = sorted({v["person_id"] for v in dose_values})
    stored = {
        (r.person_id, r.dose_number, r.date, r.site_id): (r.vaccine, r.lot)
        for r in conn.execute(
            sa.select(
                doses.c.person_id,
                doses.c.dose_number,
                doses.c.date,
                doses.c.site_id,
                doses.c.vaccine,
                doses.c.lot,
            ).where(doses.c.person_id.in_(person_ids))
        )
    }
    return sum(
        1
        for v in dose_values
        if stored.get((v["person_id"], v["dose_number"], v["date"], v["site_id"]), (v["vaccine"], v["lot"]))
        != (v["vaccine"], v["lot"])
    )


def neutralise_cell(value: object) -> str:
    """A cell as text that a spreadsheet shows instead of running: ``'`` before ``=``, ``+``, ``-``, ``@``,
    tab or CR at its start (CSV injection)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _RejectsFile:
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
    rows = imported = rejected = conflicts = dose_conflicts = not_utf8 = 0
    batch: list[ImportRow] = []
    in_batch = 0
    rejects = _RejectsFile(rejects_path)
    try:

        def reject(src: _SourceRow, field: str, code: str, reason: str) -> None:
            nonlocal rejected
            rejected += 1
            raw = src.raw if len(src.raw) <= MAX_RAW_CHARS else src.raw[:MAX_RAW_CHARS] + "…[cut]"
            rejects.write((src.line, field, code, reason, raw))

        def flush() -> None:
            nonlocal imported, conflicts, dose_conflicts, batch, in_batch
            if batch:
                with db.begin() as conn:
                    added, differing, clashing = _store_batch(db, conn, batch)
                imported += added
                conflicts += differing
                dose_conflicts += clashing
            batch, in_batch = [], 0
            if on_progress is not None:
                on_progress(rows)

        for src in source:
            rows += 1
            in_batch += 1
            if src.fields is None:
                not_utf8 += src.reason == _NOT_UTF8
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
    finally:
        rejects.close()
    good = rows - rejected
    return ImportReport(
        rows=rows,
        imported=imported,
        duplicates=good - imported - dose_conflicts,
        rejected=rejected,
        person_conflicts=conflicts,
        dose_conflicts=dose_conflicts,
        rejects_path=rejects_path,
        rejects_error=rejects.error,
        hint="no row is valid UTF-8: save the file as UTF-8 (CSV UTF-8)" if rows and not_utf8 == rows else "",
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
