"""A child process for the hang-at-exit test of the registry check's worker processes.

``python -m tests.pipeline.registry_workers_child URL REGISTRY_CSV``: checks every unchecked person with two
worker processes that exit as soon as they start (:func:`_exit_at_start`), prints the error code it gets and
returns: the process must then end (its task queue's feeder thread, holding batches no worker will read, must
not keep the interpreter from exiting).
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.registry import parallel
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.storage import open_database

NOW = dt.datetime(2023, 1, 1, 9, 0, tzinfo=dt.UTC)
#: persons a batch: the three batches left in the task queue are more than a pipe holds (64 KiB on Linux)
BATCH = 400


def _exit_at_start(*args: Any) -> None:
    """A worker process that dies at once (a broken install, an out-of-memory kill), reporting nothing."""
    raise SystemExit(3)


def main(url: str, registry_csv: str) -> None:
    parallel._worker_main = _exit_at_start  # spawned by reference: the children run this module's function
    db = open_database(url)
    try:
        run_registry_check(db, TableRegistry.from_csv(registry_csv), now=NOW, batch_size=BATCH, workers=2)
    except PipelineError as e:
        print(e.code, flush=True)
    finally:
        db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
