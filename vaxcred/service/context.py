"""What a verify service knows, fixed at start-up: trust, extra verify options, freshness of its data sets.

:class:`VerifierContext` is built once (by ``vaxcred serve`` from its options, or by a test) and shared,
read-only, by every request of every worker process. Data sets beyond the trust store (rule sets, revocation
lists) join it as extra :func:`~vaxcred.verify.verify` keyword arguments plus a :class:`DataSet` entry for
``GET /trust``; the service itself knows nothing about them::

    context = VerifierContext(
        trust=store,
        loaded_at=now,
        verify_options={"revocation": revocation_list, "rules": rule_set},
        datasets=(DataSet(name="revocation", updated_at=..., max_age=..., count=...), ...),
    )

Pure: times are parameters; only :mod:`vaxcred.service.app` (per request) and the CLI read the clock.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from vaxcred.result import VerificationResult
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

__all__ = ["DataSet", "VerifierContext"]

#: The keyword parameters of :func:`~vaxcred.verify.verify` in this build: ``country`` is passed on only
#: where it exists (the rules step adds it), so the service runs with or without rule support.
_VERIFY_PARAMETERS = frozenset(inspect.signature(verify).parameters)
#: Keyword arguments the service itself sets per request: a context may not fix them.
_PER_REQUEST = frozenset({"data", "trust", "now", "image_decoder", "country"})


def _frozen_options() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSet:
    """One data set the verdicts depend on (rules, revocation list, ...), for ``GET /trust``.

    ``updated_at`` is the data's own signed or published time when known; ``max_age`` the bound past which
    verify answers NEEDS_CHECK; ``count`` the number of entries (rules, hashes, ...).
    """

    name: str
    updated_at: datetime | None = None
    max_age: timedelta | None = None
    count: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a data set needs a name")
        if self.updated_at is not None and self.updated_at.utcoffset() is None:
            raise ValueError("updated_at must be timezone-aware")

    def age(self, now: datetime) -> timedelta | None:
        return None if self.updated_at is None else now - self.updated_at

    def is_fresh(self, now: datetime) -> bool | None:
        """True / False against ``max_age``; None when there is no bound or no time to measure."""
        age = self.age(now)
        if age is None or self.max_age is None:
            return None
        return age <= self.max_age


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierContext:
    """The trust store, extra :func:`~vaxcred.verify.verify` options and data sets of a running service.

    ``loaded_at`` is when the service loaded its trust (for stores without a signed issue time, the
    only "last update" there is). ``verify_options`` are passed to every ``verify()`` call (e.g.
    ``rules=``, ``revocation=``, ``max_trust_age=``, ``skew=``).
    """

    trust: TrustStore
    loaded_at: datetime
    verify_options: Mapping[str, Any] = field(default_factory=_frozen_options)
    datasets: tuple[DataSet, ...] = ()

    def __post_init__(self) -> None:
        if self.loaded_at.utcoffset() is None:
            raise ValueError("loaded_at must be timezone-aware")
        unknown = set(self.verify_options) - _VERIFY_PARAMETERS
        if unknown:
            raise ValueError(f"verify() takes no argument(s) {sorted(unknown)} in this build")
        fixed = set(self.verify_options) & _PER_REQUEST
        if fixed:
            raise ValueError(f"{sorted(fixed)} are set per request, not by the context")
        object.__setattr__(self, "verify_options", MappingProxyType(dict(self.verify_options)))
        object.__setattr__(self, "datasets", tuple(self.datasets))

    @property
    def supports_country(self) -> bool:
        """Whether ``verify()`` takes the destination ``country`` (rule sets) in this build."""
        return "country" in _VERIFY_PARAMETERS

    @property
    def trust_updated_at(self) -> datetime:
        """The trust list's signed issue time, else when the service loaded it."""
        return self.trust.issued_at or self.loaded_at

    def trust_is_fresh(self, now: datetime) -> bool:
        return self.trust.is_fresh(now, self.verify_options.get("max_trust_age"))

    def verify(
        self,
        data: str | bytes,
        *,
        now: datetime,
        country: str | None = None,
        image_decoder: Callable[[bytes], str] | None = None,
    ) -> VerificationResult:
        """:func:`~vaxcred.verify.verify` with this context's trust and options."""
        options = dict(self.verify_options)
        if country is not None and "country" in _VERIFY_PARAMETERS:
            options["country"] = country
        return verify(data, self.trust, now=now, image_decoder=image_decoder, **options)
