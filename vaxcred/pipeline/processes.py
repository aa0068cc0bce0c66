"""Worker processes of the pipeline stages: each dies with the process that started it.

Killing a stage (even with ``kill -9``) must not leave its workers running: on Linux a worker asks the kernel for
``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere the stage's own checks of the parent
(``os.getppid()``) stop it after its current piece of work.

A queue this process put work into is closed with :func:`close_abandoned_queue` once its readers are gone:
multiprocessing joins a queue's feeder thread at exit, and a feeder blocked writing into a pipe no process reads
would hang the interpreter at exit forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "YOUNG_GC_THRESHOLD",
    "close_abandoned_queue",
    "die_with_parent",
    "failure_message",
    "settle_heap_once",
]

#: the youngest generation's collection threshold in a stage's worker process after its first batch
#: (:func:`settle_heap_once`; CPython's default is 700)
YOUNG_GC_THRESHOLD: Final = 50_000

#: prctl(2) option: the signal sent to this process when its parent dies
_PR_SET_PDEATHSIG: Final = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``); exit now if the
    parent (``parent``: its pid, taken before the fork or spawn) is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's prctl on Linux
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def failure_message(error: BaseException) -> str:
    """What a worker reports to its parent before it exits non-zero: the error's type, stable code (if any) and
    message, on one line (the parent raises it as the stage's failure)."""
    return f"{type(error).__name__}: {getattr(error, 'code', '')} {error}".strip()


def close_abandoned_queue(box: Any, *, timeout: float = 5.0) -> None:
    """Close a ``multiprocessing`` queue this process put into, once every process that read it has exited.

    What is left in it (the feeder thread's buffer and the pipe) is read here and dropped, so that the feeder
    thread, blocked writing into a pipe no process reads, can finish and be joined; where the queue's size is
    unknown (macOS) or after ``timeout`` seconds, the thread is abandoned instead (``cancel_join_thread``: a
    daemon thread, no longer joined at exit). Either way the interpreter does not hang at exit.
    """
    deadline = time.monotonic() + timeout
    drained = False
    with contextlib.suppress(NotImplementedError):  # qsize(): items put and not yet taken, buffer and pipe
        while box.qsize() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                box.get(timeout=0.1)
        drained = not box.qsize()
    box.close()
    if drained:
        box.join_thread()
    else:
        box.cancel_join_thread()


def settle_heap_once(*, forked: bool = False) -> Callable[[], None]:
    """A function that, on its first call only, settles a stage's worker process's heap after its first batch,
    when what it holds — modules, the compiled statements, the issuer or the signers, the certificate caches —
    lives as long as the process.

    It freezes every object then alive (:func:`gc.freeze`), so the cyclic collector no longer walks them on
    every full collection (about a tenth of an issuance worker's CPU went to collections walking them), and
    raises the youngest generation's threshold to :data:`YOUNG_GC_THRESHOLD` (the older generations' stay): a
    passport allocates ~270 tracked containers (row tuples, the DCC's dicts, the records' objects), and an
    import chunk, a registry batch or a signing batch holds its rows the same way, so at the default 700 a young
    collection ran every few items and walked the batch's live objects again each time (~4.5 % of an issuance
    worker's CPU after the freeze). Garbage cycles are still collected, after at most that many allocations (a
    few MB).

    A spawned process collects its garbage first. A ``forked`` one does not: it inherited its parent's whole
    heap, and a full collection there walks all of it (~0.1–0.25 s measured in the import's, the registry
    check's and site signing's forked processes at 100 k people, more than the collections it saves) and
    writes to every page it shares with the parent; the freeze alone takes no walk. Only for processes the
    pipeline starts: a caller's process keeps its collector as it is."""
    done = False

    def settle() -> None:
        nonlocal done
        if not done:
            done = True
            if not forked:
                gc.collect()
            gc.freeze()
            _, middle, oldest = gc.get_threshold()
            gc.set_threshold(YOUNG_GC_THRESHOLD, middle, oldest)

    return settle
