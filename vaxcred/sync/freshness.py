"""How old each kind of verifier data may grow before a verifier answers NEEDS_CHECK (SECURITY.md #14).

=============  ========  ===================================================================================
kind           default   why
=============  ========  ===================================================================================
trust list     72 hours  :data:`vaxcred.trust.store.DEFAULT_MAX_TRUST_AGE`, the trust list's own default
                         (vaxcred.trust.freshness): a withdrawn DSC stops verifying within three days; daily
                         publication tolerates two missed days.
rules          7 days    business rules change with announced policy, with notice; a week of missed syncs
                         still reflects any change announced the week before it applies.
value sets     30 days   codes are only added (new vaccine products); stale sets make rules refuse a new
                         product, never accept a wrong one.
revocation     2 days    a revoked passport (fraud, a correction) must stop passing at the border quickly;
                         the ministry republishes daily, so one missed publication is tolerated, not two.
=============  ========  ===================================================================================

The age of rules, value sets and revocation data is measured from the ``issued_at`` of the signed index
that listed them (:mod:`vaxcred.sync.index`): the index is re-signed on every publication even when
nothing changed, so its time says "this was current then".  The trust list's age is its own signed
``issued_at`` (:func:`vaxcred.trust.load_signed_trust_list`, ``max_age``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from vaxcred.trust.store import DEFAULT_MAX_TRUST_AGE, require_utc

__all__ = ["DataFreshnessPolicy", "DataKind"]


class DataKind(enum.StrEnum):
    """The kinds of data a verifier synchronises."""

    TRUST = "trust"
    RULES = "rules"
    VALUE_SETS = "valuesets"
    REVOCATION = "revocation"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFreshnessPolicy:
    """Maximum age per kind of data (see the module docstring for the defaults and why)."""

    trust: timedelta = DEFAULT_MAX_TRUST_AGE
    rules: timedelta = timedelta(days=7)
    value_sets: timedelta = timedelta(days=30)
    revocation: timedelta = timedelta(days=2)

    def __post_init__(self) -> None:
        for kind in DataKind:
            value = self.max_age(kind)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValueError(f"the maximum age of {kind.value} must be a positive timedelta")

    def max_age(self, kind: DataKind) -> timedelta:
        """The maximum age of ``kind``."""
        return {
            DataKind.TRUST: self.trust,
            DataKind.RULES: self.rules,
            DataKind.VALUE_SETS: self.value_sets,
            DataKind.REVOCATION: self.revocation,
        }[kind]

    def is_fresh(self, kind: DataKind, issued_at: datetime, now: datetime) -> bool:
        """Whether data of ``kind`` current at ``issued_at`` is still fresh at ``now``."""
        return require_utc(now) - require_utc(issued_at, "issued_at") <= self.max_age(kind)
