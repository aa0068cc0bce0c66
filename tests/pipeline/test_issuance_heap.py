"""The issuance worker process settles its heap once (vaxcred.pipeline.issuance.workers.settle_heap_once)."""

from __future__ import annotations

import gc
import weakref

from vaxcred.pipeline.issuance.workers import settle_heap_once


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_collects_garbage_then_freezes_once() -> None:
    """The first call frees cyclic garbage (never freezes it: that would leak it for the process's life) and
    freezes what is left; later calls change nothing."""
    before = gc.get_freeze_count()
    was_enabled = gc.isenabled()
    gc.disable()  # no automatic collection may free the cycle in the meantime: only the settle's own
    try:
        settle = settle_heap_once()
        cycle = _Node()
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None
        settle()
        assert alive() is None
        frozen = gc.get_freeze_count()
        assert frozen > before
        later = [_Node() for _ in range(100)]
        settle()
        assert gc.get_freeze_count() == frozen
        assert later
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
