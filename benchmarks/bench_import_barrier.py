"""How long each of the import's two PostgreSQL streams waits at the per-batch barrier (docs/pipeline.md).

Run as ``make bench-import-barrier`` (``PEOPLE=100000``). It imports the generated CSV of ``PEOPLE`` people into a
fresh database of a throwaway durable PostgreSQL cluster (:func:`benchmarks.bench_pipeline.postgres_database`)
with two writers, as ``import_file`` picks them, and times every batch from the outside (the store threads and
the hand-over wrapped, the code itself unchanged):

* ``store`` — a stream's time storing its parts (wall) and its store thread's CPU;
* ``idle`` — the time between the commit of its part of batch k and the hand-over of batch k+1;
* ``barrier`` — the part of ``idle`` spent only because the OTHER stream had not committed yet: for each batch,
  ``handover − max(next batch ready, this stream's commit)``. That is what independent streams could recover;
  the rest of ``idle`` is the calling thread still assembling the next batch;
* ``caller blocked`` — the calling thread waiting for both streams with the next batch ready.

One ``RESULT {json}`` line. Wall figures need a quiet machine.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import IMPORT_DAY, make_dataset, postgres_database, server_cpu_seconds
from vaxcred.pipeline.records import streams, writer
from vaxcred.pipeline.records.importer import import_file
from vaxcred.storage import open_database

DATA_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "vaxcred-bench-data"


class Timeline:
    """The instants of every hand-over, every 'next batch ready' and every stream's commit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[dict[str, Any]] = []

    def install(self) -> None:
        timeline = self
        run, submit, collect = (
            writer._StoreThread.run,
            streams.StreamWriters.submit,
            streams.StreamWriters.collect,
        )

        def timed_run(thread: writer._StoreThread) -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            batch = timeline.batches[-1]
            run(thread)
            done = time.perf_counter()
            with timeline.lock:
                batch["done"][thread.ident] = (done, done - start, time.thread_time() - cpu)

        def timed_submit(self: streams.StreamWriters, rows: Sequence[Any], rows_done: int) -> None:
            timeline.batches.append({"handover": time.perf_counter(), "ready": None, "done": {}})
            submit(self, rows, rows_done)

        def timed_collect(self: streams.StreamWriters, *, wait: bool) -> Any:
            if wait and self._parts and timeline.batches[-1]["ready"] is None:
                timeline.batches[-1]["ready"] = time.perf_counter()
            return collect(self, wait=wait)

        writer._StoreThread.run = timed_run  # type: ignore[method-assign]
        streams.StreamWriters.submit = timed_submit  # type: ignore[method-assign]
        streams.StreamWriters.collect = timed_collect  # type: ignore[method-assign]

    def summary(self) -> dict[str, Any]:
        per_stream: list[dict[str, float]] = [
            {"store_s": 0.0, "store_cpu_s": 0.0, "idle_s": 0.0, "barrier_s": 0.0} for _ in range(2)
        ]
        blocked = 0.0
        for k, batch in enumerate(self.batches):
            commits = sorted(batch["done"].values())  # by commit time: stream labels are per batch
            for stream, (_, wall, cpu) in enumerate(commits):
                per_stream[stream]["store_s"] += wall
                per_stream[stream]["store_cpu_s"] += cpu
            if k + 1 == len(self.batches) or len(commits) < 2:
                continue
            handover = self.batches[k + 1]["handover"]
            ready = batch["ready"] if batch["ready"] is not None else handover
            blocked += handover - ready
            for stream, (done, _, _) in enumerate(commits):
                per_stream[stream]["idle_s"] += handover - done
                per_stream[stream]["barrier_s"] += handover - max(ready, done)
        return {
            "batches": len(self.batches),
            "first_to_commit": per_stream[0],
            "second_to_commit": per_stream[1],
            "caller_blocked_s": blocked,
        }


def main() -> None:
    people = int(os.environ.get("PEOPLE", "100000"))
    dataset, _ = make_dataset(people, DATA_DIR)
    timeline = Timeline()
    timeline.install()
    with postgres_database() as (url, data_dir):
        db = open_database(url)
        db.migrate()
        server, cpu, wall = server_cpu_seconds(data_dir), time.process_time(), time.perf_counter()
        report = import_file(db, dataset.csv_path, today=IMPORT_DAY, writers=2)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = server_cpu_seconds(data_dir) - server
        db.dispose()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "people": people,
        "rows": report.rows,
        "wall_s": round(wall, 2),
        "parent_cpu_s": round(cpu, 2),
        "workers_cpu_s": round(children.ru_utime + children.ru_stime, 2),
        "server_cpu_s": round(server, 2),
        **timeline.summary(),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
