"""The step log of one verification: outcomes collected in step order, steps never reached reported as ``skip``.

``pass`` steps are immutable values: the common ones are built once and shared between results (a frozen
dataclass costs ~1 µs to construct, several per verify).
"""

from __future__ import annotations

import functools
from typing import Any

from vaxcred import errors
from vaxcred.result import STEP_NAMES, Status, Step, StepResult, VerificationResult

PASS = StepResult.PASS
FAIL = StepResult.FAIL
SKIP = StepResult.SKIP

_ORDER = {name: i for i, name in enumerate(STEP_NAMES)}
_STEP_LIST = list(STEP_NAMES)
_NOT_REACHED = {
    name: Step(
        name=name, result=SKIP, code="skipped.earlier_failure", message="not checked: an earlier step failed"
    )
    for name in STEP_NAMES
}


@functools.lru_cache(maxsize=256)
def ok_step(name: str, message: str) -> Step:
    """A ``pass`` step, built once per message: its messages are few (no per-passport data)."""
    return Step(name=name, result=PASS, code=f"{name}.ok", message=message)


class Steps:
    """Collects step outcomes in order; steps never reached are reported as ``skip``."""

    __slots__ = ("failed", "items")

    def __init__(self) -> None:
        self.items: list[Step] = []
        self.failed = False

    def ok(self, name: str, message: str) -> None:
        self.items.append(ok_step(name, message))

    def fail(self, name: str, code: str, message: str) -> None:
        self.failed = True
        self.items.append(Step(name=name, result=FAIL, code=code, message=message))

    def skip(self, name: str, code: str, message: str) -> None:
        self.items.append(Step(name=name, result=SKIP, code=code, message=message))

    def error(self, name: str, exc: errors.VaxcredError) -> None:
        self.fail(name, exc.code, exc.message)

    def finish(self, **fields: Any) -> VerificationResult:
        items = self.items
        if len(items) < len(STEP_NAMES):
            done = {s.name for s in items}
            items.extend(_NOT_REACHED[name] for name in STEP_NAMES if name not in done)
        names = [s.name for s in items]
        if names == _STEP_LIST:  # the usual case: appended in pipeline order
            steps = tuple(items)
        else:
            steps = tuple(sorted(items, key=lambda s: _ORDER.get(s.name, len(_ORDER))))
        status = fields.pop("status", None) or (Status.INVALID if self.failed else Status.VALID)
        return VerificationResult(status=status, steps=steps, **fields)
