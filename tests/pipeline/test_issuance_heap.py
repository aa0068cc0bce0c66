"""The issuance worker process settles its heap once (vaxcred.pipeline.issuance.workers.settle_heap_once)."""

from __future__ import annotations

import gc
import weakref

from vaxcred.pipeline.issuance.workers import YOUNG_GC_THRESHOLD, settle_heap_once


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_collects_garbage_then_freezes_once() -> None:
    """The first call frees cyclic garbage (never freezes it: that would leak it for the process's life) and
    freezes what is left; later calls change nothing."""
    before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
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
        gc.set_threshold(*thresholds)
        if was_enabled:
            gc.enable()


def test_settle_raises_the_young_threshold_once_and_keeps_collecting() -> None:
    """After the first call the youngest generation collects every YOUNG_GC_THRESHOLD allocations (the older
    generations' thresholds unchanged), and cyclic garbage made after it is still freed automatically."""
    thresholds = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        settle = settle_heap_once()
        settle()
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, 10, 10)
        gc.set_threshold(900, 11, 12)  # a later call changes nothing
        settle()
        assert gc.get_threshold() == (900, 11, 12)
        gc.set_threshold(YOUNG_GC_THRESHOLD, 10, 10)
        cycle = _Node()
        alive = weakref.ref(cycle)
        del cycle
        keep = [[i] for i in range(3 * YOUNG_GC_THRESHOLD)]  # allocations enough to trigger young collections
        assert keep
        assert alive() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
