"""A child process for the importer tests that need a process of their own.

``python -m tests.pipeline.import_child URL ROWS MODE [PATH [WORKERS [WRITERS]]]``

* ``memory``: import ``ROWS`` generated rows from a generator; print one JSON line with the resident set size
  after the first :data:`WARM_ROWS` rows and the high-water mark at the end (``/proc/self/status``, KiB).
* ``progress``: import the CSV file ``PATH`` with batches of :data:`CHILD_BATCH` rows, printing the rows done
  after each commit and flushing, so that the parent can ``kill -9`` it mid-import; ``WORKERS`` validation
  processes (default 0: none), ``WRITERS`` store connections (default 1; PostgreSQL).

``memory`` stores on two connections (PostgreSQL; SQLite on one): the bound holds with two streams.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from vaxcred.pipeline.records.importer import import_file, import_lines
from vaxcred.storage import open_database

HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
WARM_ROWS = 20_000
CHILD_BATCH = 200


def generated_rows(n: int) -> Iterator[str]:
    """A CSV header and ``n`` valid rows: person ``i // 2`` (a Hà Nội CCCD, born 1990) gets doses 1 and 2."""
    yield HEADER
    for i in range(n):
        person = i // 2
        yield (
            f"0010900{person:05d},Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK{i},"
            f"2021-0{8 + i % 2}-01,{i % 2 + 1},HN-{person % 7:03d}\n"
        )


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main(argv: list[str]) -> None:
    url, rows, mode = argv[0], int(argv[1]), argv[2]
    db = open_database(url)
    if mode == "memory":
        warm: dict[str, int] = {}

        def on_progress(done: int) -> None:
            if done == WARM_ROWS:
                warm["rss_kib"] = _status_kib("VmRSS")

        report = import_lines(db, generated_rows(rows), format="csv", on_progress=on_progress, writers=2)
        print(
            json.dumps(
                {
                    "imported": report.imported,
                    "warm_rss_kib": warm["rss_kib"],
                    "peak_kib": _status_kib("VmHWM"),
                }
            )
        )
    elif mode == "progress":

        def announce(done: int) -> None:
            print(done, flush=True)

        workers = int(argv[4]) if len(argv) > 4 else 0
        writers = int(argv[5]) if len(argv) > 5 else 1
        import_file(
            db, argv[3], batch_size=CHILD_BATCH, on_progress=announce, workers=workers, writers=writers
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
