"""A stage's worker process settles its heap once (vaxcred.pipeline.processes.settle_heap_once)."""

from __future__ import annotations

import gc
import weakref

from vaxcred.pipeline.processes import YOUNG_GC_THRESHOLD, settle_heap_once


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


def test_a_forked_process_freezes_without_a_full_collection() -> None:
    """``forked=True`` freezes what the process holds without collecting first (a forked process's collection
    walks the parent's whole inherited heap); a spawned one collects first."""
    before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        cycle = _Node()
        alive = weakref.ref(cycle)
        del cycle
        settle_heap_once(forked=True)()
        assert alive() is not None  # not collected: frozen with the rest
        assert gc.get_freeze_count() > before
        assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD
    finally:
        gc.unfreeze()
        gc.collect()
        gc.set_threshold(*thresholds)
        if was_enabled:
            gc.enable()


def test_every_stage_process_settles_its_heap() -> None:
    """The long-lived processes of every stage call settle_heap_once: the import's validation workers, the
    registry check's matcher and workers, site signing's child and workers, issuance's workers."""
    import inspect

    from vaxcred.pipeline.issuance import workers as issuance_workers
    from vaxcred.pipeline.records import workers as import_workers
    from vaxcred.pipeline.registry import matcher, parallel
    from vaxcred.pipeline.site_signing import pipelined
    from vaxcred.pipeline.site_signing import workers as signing_workers

    for function in (
        import_workers._worker_main,
        matcher._matcher_main,
        parallel._worker_main,
        pipelined._child_main,
        signing_workers._child_init,
        issuance_workers._worker_main,
    ):
        assert "settle_heap_once(" in inspect.getsource(function), function.__qualname__
