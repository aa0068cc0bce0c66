"""Bulk import of dose records from CSV or JSON Lines: streaming, batched, idempotent, resumable, on both cores.

::

    file ─> lines (≤ 64 Ki chars each) ─> chunks ─┬─> validate (reading + parse_row) ─┬─> staged rows ─> batch k+1
              (this process)                      │   in worker processes, or here    │   (assembled here while
                                                  │   for a small import              │    batch k is stored)
                                                  └── results taken in file order     └─> rejects file
    store thread(s): batch k ─> COPY / executemany + set-based statements, a transaction a stream ─> committed
                     (PostgreSQL, a large file: two streams, the rows split by citizen ID, each on its own
                     connection; batch k+1 handed over only once every stream committed batch k)

* **Modules.** :mod:`~vaxcred.pipeline.records.reading` (lines, CSV header and hints, one row per line),
  :mod:`~vaxcred.pipeline.records.validation` (a chunk of lines → staged rows + rejects, pure),
  :mod:`~vaxcred.pipeline.records.workers` (validation in processes, in order, bounded),
  :mod:`~vaxcred.pipeline.records.staging` (a batch → the tables: COPY / executemany into a staging table,
  then set-based statements), :mod:`~vaxcred.pipeline.records.writer` (a batch stored in a thread while the
  next is assembled), :mod:`~vaxcred.pipeline.records.streams` (a batch split by citizen ID over several
  writers), :mod:`~vaxcred.pipeline.records.rejects` (the 0600 rejects file).
* **Both cores.** ``workers=N`` validates in N worker processes while this one reads the file and assembles
  batches, and a thread stores the batch before (:class:`~vaxcred.pipeline.records.writer.BatchWriter`: while
  PostgreSQL's server or SQLite's engine works on batch k, without the GIL, batch k+1 is read and validated;
  the workers are forked before that thread starts);
  :func:`import_file` picks ``min(2, cores)`` workers for a file of :data:`PARALLEL_MIN_BYTES` or more, and
  validates here for smaller ones (starting a worker costs ~0.3 s). The result is the same either way.
* **Two server backends** (PostgreSQL). ``writers=2`` stores each batch on two connections at once
  (:class:`~vaxcred.pipeline.records.streams.StreamWriters`): its rows split by citizen ID into two streams,
  each with its own connection, staging table and store thread, so that two server backends work (one was the
  import's bound). A person's rows all fall in one stream, so the stored result and the counts are those of
  one writer. :func:`import_file` picks :data:`MAX_AUTO_WRITERS` when it starts workers (:func:`default_writers`);
  SQLite always stores on one connection (one write lock: a second writer would wait for it).
* **Bounded memory.** A chunk holds at most :data:`CHUNK_ROWS` rows and about :data:`CHUNK_CHARS` characters;
  at most two chunks per worker are in flight; at most two batches of staged rows are held: one being stored
  (by one stream, or split over two), the next being assembled (handed over once the first is committed).
* **Idempotent.** A dose is stored once per natural key (citizen ID, dose number, date, site); re-importing a
  file adds nothing and counts its rows as ``duplicates``.
* **Resumable.** One transaction per ``batch_size`` input rows (:data:`BATCH_SIZE`, 5,000) — with two streams one
  per stream for its part of them —, committed in file order (with two streams: each stream commits its parts
  in file order, and batch k+1 reaches neither before both committed batch k): a crash (``kill -9`` of the
  import kills its workers too) loses at most the batch in flight (with two streams: one part per stream, at
  most one batch apart), and running the same import again stores exactly the rows that are missing.
  ``on_progress(rows_done)`` is called after each batch is committed (by every stream), in the calling thread
  (as soon as it sees the commit: at its next chunk, at the latest before the next batch is handed over), so a
  callback needs no locking and its exception stops the import before the next batch.
* **Errors** (a database error, a failed worker, an exception from ``on_progress``, ``KeyboardInterrupt``)
  propagate after the batches before them were committed, and leave no thread or worker running: a store's
  error comes out at the calling thread's next chunk (its batch, or its stream's part of it, rolled back; the
  other stream's part is waited for and commits); when the calling thread fails, the batch being stored is
  waited for (it commits), except on ``KeyboardInterrupt``, which cancels its statements, every stream's (they
  roll back, as a ^C during a store always did).
* **Persons** are inserted when their citizen ID is new and otherwise left as stored: changing an identity
  (which a passport may rest on) is the corrections flow's job, not a re-import's. A valid row whose person
  fields differ from the stored person still lands its dose and is counted in ``person_conflicts``.
* **Sites** first seen in an import are created with their ID only (name and province unknown); with two
  streams a batch's new sites are committed just before it (a site then stays if its batch fails).
* **One row = one line.** An unbalanced quote rejects its line only; ``rows`` is always the number of
  non-blank data lines.
* **Conflicting re-imports.** A valid row whose natural key is stored with another vaccine or lot is counted in
  ``dose_conflicts`` (not ``duplicates``): the stored dose is kept, a correction changes it.
* **Bad rows** (unparseable CSV/JSON, a JSON object repeating a key, wrong cell count, invalid UTF-8, a field
  :func:`~vaxcred.pipeline.records.model.parse_row` refuses) are counted and, when ``rejects_path`` is given,
  written there in file order: ``line`` (1-based, the header being line 1), ``field``, ``code``, ``reason``,
  ``raw`` (cut at :data:`MAX_RAW_CHARS`); see :mod:`~vaxcred.pipeline.records.rejects` (mode 0600, formula
  cells neutralised, a full disk reported in ``rejects_error``). Reasons never contain personal values;
  nothing here logs rows.
* **Hints.** A header that lacks the columns because the file is separated by ``;`` or tabs, or is UTF-16, is
  refused with that said; a file none of whose rows is UTF-8 gets ``hint`` (save it as UTF-8).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import staging
from vaxcred.pipeline.records.reading import (
    BAD_IMPORT,
    MAX_LINE_CHARS,
    Format,
    bounded_lines,
    detect_format,
    open_text,
    parse_header,
)
from vaxcred.pipeline.records.rejects import MAX_RAW_CHARS, REJECTS_HEADER, RejectsFile, neutralise_cell
from vaxcred.pipeline.records.streams import StreamWriters
from vaxcred.pipeline.records.validation import Chunk, ChunkResult, StagedRow, validate_chunk
from vaxcred.pipeline.records.workers import validation_processes
from vaxcred.pipeline.records.writer import BatchWriter, Stored
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons

__all__ = [
    "BAD_IMPORT",
    "BATCH_SIZE",
    "CHUNK_CHARS",
    "CHUNK_ROWS",
    "MAX_LINE_CHARS",
    "MAX_RAW_CHARS",
    "PARALLEL_MIN_BYTES",
    "REJECTS_HEADER",
    "Format",
    "ImportReport",
    "default_workers",
    "default_writers",
    "import_file",
    "import_lines",
    "neutralise_cell",
]

#: rows per transaction: 5,000 measured ~25 % faster than 1,000 on SQLite (a commit is an fsync) and no slower on
#: PostgreSQL; a crash loses at most this many rows' work
BATCH_SIZE = 5000
#: data rows per chunk sent to a worker (a batch is several chunks: workers and the writer overlap)
CHUNK_ROWS = 1000
#: a chunk is closed at this many characters even before its rows (runaway lines keep memory bounded)
CHUNK_CHARS = 1 << 20
#: :func:`import_file` validates in worker processes from this file size on (~20,000 rows)
PARALLEL_MIN_BYTES = 4 << 20
#: workers :func:`import_file` starts at most: two keep the writer busy on a 2-core machine
MAX_AUTO_WORKERS = 2
#: PostgreSQL connections (server backends) :func:`import_file` stores a large file on: one backend was the
#: bound of the import (busy while the other core idled half the time)
MAX_AUTO_WRITERS = 2

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


def _header(lines: Iterator[str]) -> tuple[tuple[str, ...], int]:
    """The CSV header (the first non-blank line) and the number of the line after it."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            return parse_header(line), number + 1
    raise PipelineError("the CSV file has no header row", code=BAD_IMPORT)


def _chunks(lines: Iterator[str], first_line: int, batch_size: int) -> Iterator[Chunk]:
    """Consecutive lines in chunks of at most :data:`CHUNK_ROWS` data rows and about :data:`CHUNK_CHARS`
    characters that never straddle a batch (every ``batch_size`` data rows)."""
    held: list[str] = []
    start = first_line
    in_batch = in_chunk = chars = 0
    for line in lines:
        held.append(line)
        chars += len(line)
        if line.strip():
            in_batch += 1
            in_chunk += 1
        if in_batch >= batch_size or in_chunk >= CHUNK_ROWS or chars >= CHUNK_CHARS:
            yield Chunk(first_line=start, lines=tuple(held))
            start += len(held)
            held, in_chunk, chars = [], 0, 0
            in_batch = 0 if in_batch >= batch_size else in_batch
    if held:
        yield Chunk(first_line=start, lines=tuple(held))


def import_lines(
    db: Database,
    lines: Iterable[str],
    *,
    format: Format,
    rejects_path: Path | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    today: dt.date | None = None,
    workers: int = 0,
    writers: int = 1,
) -> ImportReport:
    """Import dose records from ``lines`` (CSV with a header row, or JSON Lines), streaming.

    ``today`` (the caller's clock) makes :func:`parse_row` refuse future dates. ``workers`` processes validate
    the rows (0: this process does). ``writers`` connections store each batch's rows split by citizen ID
    (PostgreSQL; SQLite always stores on one: it has one write lock). Raises :class:`PipelineError`
    ``pipeline.bad_import`` for an unusable file (no header, a missing column); a database error, a failed
    worker or an exception from ``on_progress`` propagates after the batches before it were committed — run the
    same import again to finish.
    """
    if format not in ("csv", "jsonl"):
        raise ValueError(f"unknown import format {format!r}: 'csv' or 'jsonl'")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if workers < 0:
        raise ValueError("workers must be 0 (validate here) or more")
    if writers < 1:
        raise ValueError("writers must be 1 or more")
    rejects = RejectsFile(rejects_path)
    totals = _Totals(on_progress)
    try:
        stream = iter(lines)
        header, first_line = _header(stream) if format == "csv" else (None, 1)
        chunks = _chunks(stream, first_line, batch_size)
        with contextlib.ExitStack() as stack:
            # the workers are forked before the writer starts any thread (a fork copies only its own thread)
            validate: Callable[[Iterable[Chunk]], Iterator[ChunkResult]] = (
                stack.enter_context(validation_processes(workers, header=header, today=today))
                if workers
                else functools.partial(_validate_here, header=header, today=today)
            )
            results = validate(chunks)
            streams = writers if db.backend == "postgresql" else 1  # SQLite: one write lock, one writer
            connections = [stack.enter_context(db.writer()) for _ in range(streams)]
            for conn in connections:
                staging.prepare(conn)
            shared = streams > 1
            writer = StreamWriters(
                [stack.enter_context(BatchWriter(conn, shared_sites=shared)) for conn in connections]
            )
            batch: list[StagedRow] = []
            in_batch = 0
            for result in results:
                for reject in result.rejects:
                    rejects.write(reject)
                totals.add(result)
                batch.extend(result.valid)
                in_batch += result.rows
                totals.committed(writer.collect(wait=False))  # on_progress as soon as we see the commit
                if in_batch >= batch_size:
                    totals.committed(writer.collect(wait=True))
                    writer.submit(batch, totals.rows)
                    batch, in_batch = [], 0
            if in_batch or totals.rows == 0:
                totals.committed(writer.collect(wait=True))
                writer.submit(batch, totals.rows)
            totals.committed(writer.collect(wait=True))
    finally:
        rejects.close()
    # PostgreSQL: the next stages plan with statistics of what was imported
    db.analyze(persons, doses, changed_rows=totals.imported)
    return totals.report(rejects_path, rejects.error)


def _validate_here(
    chunks: Iterable[Chunk], *, header: tuple[str, ...] | None, today: dt.date | None
) -> Iterator[ChunkResult]:
    return (validate_chunk(chunk, header=header, today=today) for chunk in chunks)


class _Totals:
    """The running counts of an import."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.rows = self.rejected = self.not_utf8 = 0
        self.imported = self.person_conflicts = self.dose_conflicts = 0
        self._on_progress = on_progress

    def add(self, result: ChunkResult) -> None:
        self.rows += result.rows
        self.rejected += len(result.rejects)
        self.not_utf8 += result.not_utf8

    def committed(self, stored: Stored | None) -> None:
        """Count a committed batch and say so (``on_progress``, in the calling thread)."""
        if stored is None:
            return
        self.imported += stored.counts.inserted
        self.person_conflicts += stored.counts.person_conflicts
        self.dose_conflicts += stored.counts.dose_conflicts
        if self._on_progress is not None:
            self._on_progress(stored.rows_done)

    def report(self, rejects_path: Path | None, rejects_error: str) -> ImportReport:
        good = self.rows - self.rejected
        everything_garbled = self.rows and self.not_utf8 == self.rows
        return ImportReport(
            rows=self.rows,
            imported=self.imported,
            duplicates=good - self.imported - self.dose_conflicts,
            rejected=self.rejected,
            person_conflicts=self.person_conflicts,
            dose_conflicts=self.dose_conflicts,
            rejects_path=rejects_path,
            rejects_error=rejects_error,
            hint="no row is valid UTF-8: save the file as UTF-8 (CSV UTF-8)" if everything_garbled else "",
        )


def default_workers(path: Path) -> int:
    """The validation processes :func:`import_file` starts for ``path``: none below :data:`PARALLEL_MIN_BYTES`
    (or on one core), else ``min(2, cores)``."""
    cores = os.cpu_count() or 1
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    return 0 if cores < 2 or size < PARALLEL_MIN_BYTES else min(MAX_AUTO_WORKERS, cores)


def default_writers(db: Database, path: Path) -> int:
    """The connections :func:`import_file` stores ``path`` on: :data:`MAX_AUTO_WRITERS` on PostgreSQL when it
    validates in worker processes (:func:`default_workers`: a file of :data:`PARALLEL_MIN_BYTES` or more, two
    cores or more), else one."""
    return MAX_AUTO_WRITERS if db.backend == "postgresql" and default_workers(path) else 1


def import_file(
    db: Database,
    path: Path | str,
    *,
    format: Format | None = None,
    rejects_path: Path | str | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    today: dt.date | None = None,
    workers: int | None = None,
    writers: int | None = None,
) -> ImportReport:
    """Import a ``.csv`` or ``.jsonl`` file (``.gz`` too); see :func:`import_lines`. ``workers=None`` picks
    :func:`default_workers`, ``writers=None`` :func:`default_writers`."""
    path = Path(path)
    chosen = format or detect_format(path)
    with open_text(path) as stream:
        return import_lines(
            db,
            bounded_lines(stream),
            format=chosen,
            rejects_path=Path(rejects_path) if rejects_path is not None else None,
            batch_size=batch_size,
            on_progress=on_progress,
            today=today,
            workers=default_workers(path) if workers is None else workers,
            writers=default_writers(db, path) if writers is None else writers,
        )
