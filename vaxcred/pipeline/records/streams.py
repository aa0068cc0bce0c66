"""Storing each import batch on several connections at once (PostgreSQL): its rows split by citizen ID.

::

    batch k ─> rows split by stream_of(citizen ID) ─┬─> stream 0: BatchWriter, connection 0, its staging table
               (file order kept within each part)   └─> stream 1: BatchWriter, connection 1, its staging table
    batch k+1 is handed over once every stream has committed its part of batch k

* **Why.** One connection is one server backend: a PostgreSQL import was bound by it (its backend busy, the other
  core half idle). Two connections store two halves of each batch at once, each in its own transaction.
* **The same result.** A citizen ID always falls in the same stream (:func:`stream_of`: CRC-32 of its UTF-8
  bytes, not Python's salted ``hash``), so all rows of a person, and so of each natural key, are stored by
  one stream, in file order: "the first row of a citizen ID creates the person, the first row of a natural key
  the dose" holds exactly as with one stream, and so do the counts (person and dose conflicts, duplicates).
* **No deadlock, no waiting on sites.** The streams share only sites. With two streams each part's sites not
  yet stored go in first, sorted, ``ON CONFLICT DO NOTHING``, in a short transaction of their own
  (:class:`~vaxcred.pipeline.records.staging.NewSites`): a site new to both streams makes one wait only for the
  other's short sites commit (in site order: no cycle), not for its whole batch. After that the two
  transactions touch disjoint rows (their own persons and doses; the doses' foreign key checks find committed
  sites). A site so stored stays when its batch then fails (with its ID only, as an import creates it).
* **Committed in file order, per stream.** Each stream commits its parts in file order; batch k+1 is handed to
  any stream only once all streams committed batch k, so at most one part per stream is in flight (what a
  ``kill -9`` loses) and at most two batches are held (the one being stored, the one being assembled).
* **Progress.** :meth:`StreamWriters.collect` gives a batch once every stream committed its part: its counts
  summed, the rows done up to its end.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from vaxcred.pipeline.records import staging
from vaxcred.pipeline.records.validation import StagedRow
from vaxcred.pipeline.records.writer import BatchWriter, Stored

__all__ = ["StreamWriters", "split_by_stream", "stream_of"]


def stream_of(citizen_id: str, streams: int) -> int:
    """The stream (``0 … streams - 1``) that stores every row of ``citizen_id``: stable across processes and
    runs (CRC-32 of the ID's UTF-8 bytes)."""
    return zlib.crc32(citizen_id.encode()) % streams


def split_by_stream(rows: Sequence[StagedRow], streams: int) -> list[Sequence[StagedRow]]:
    """``rows`` in ``streams`` parts by :func:`stream_of` their citizen ID, file order kept within each part
    (one stream: ``rows`` itself)."""
    if streams == 1:
        return [rows]
    lists: list[list[StagedRow]] = [[] for _ in range(streams)]
    crc32 = zlib.crc32
    appends = [part.append for part in lists]
    for row in rows:
        appends[crc32(row[0].encode()) % streams](row)
    return list(lists)


class StreamWriters:
    """Stores each batch split over ``writers`` (one :class:`BatchWriter` per connection, each entered by the
    caller, who leaves them: that ends their stores), one batch at a time."""

    def __init__(self, writers: Sequence[BatchWriter]) -> None:
        if not writers:
            raise ValueError("at least one writer")
        self._writers = tuple(writers)
        self._parts: list[Stored | None] = []  # the committed parts of the batch in flight, by stream
        self._rows_done = 0

    def submit(self, rows: Sequence[StagedRow], rows_done: int) -> None:
        """Start storing ``rows``, the batch ending at data row ``rows_done``, each stream its part; the previous
        batch must have been collected."""
        if self._parts:
            raise RuntimeError("the previous batch was not collected")
        parts = split_by_stream(rows, len(self._writers))
        for writer, part in zip(self._writers, parts, strict=True):
            writer.submit(part, rows_done)
        self._parts = [None] * len(self._writers)
        self._rows_done = rows_done

    def collect(self, *, wait: bool) -> Stored | None:
        """The batch submitted last once every stream committed its part (``None``: none, or not yet when not
        ``wait``): the parts' counts summed; raises the first error of a stream's store (its part rolled back,
        the other streams' parts left to their writers)."""
        if not self._parts:
            return None
        for stream, writer in enumerate(self._writers):
            if self._parts[stream] is None:
                self._parts[stream] = writer.collect(wait=wait)
        if any(part is None for part in self._parts):
            return None
        counts = [part.counts for part in self._parts if part is not None]
        self._parts = []
        return Stored(
            staging.BatchCounts(*(sum(column) for column in zip(*counts, strict=True))), self._rows_done
        )
