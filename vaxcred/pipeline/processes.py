"""Worker processes of the pipeline stages: each dies with the process that started it.

Killing a stage (even with ``kill -9``) must not leave its workers running: on Linux a worker asks the kernel for
``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere the stage's own checks of the parent
(``os.getppid()``) stop it after its current piece of work.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from typing import Final

__all__ = ["die_with_parent", "failure_message"]

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
