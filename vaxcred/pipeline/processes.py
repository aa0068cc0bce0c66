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
import os
import queue
import signal
import time
from typing import Any, Final

__all__ = ["close_abandoned_queue", "die_with_parent", "failure_message"]

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
