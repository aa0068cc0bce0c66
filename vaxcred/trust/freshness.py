"""Freshness and rollback of trust: how old a trust list may be, and never an older one than already seen.

Two pieces, both pure (SECURITY.md pitfall 14):

- :class:`TrustFreshnessPolicy` (``max_age``, default :data:`DEFAULT_MAX_TRUST_AGE`) assesses a store at
  ``now`` into a :class:`TrustFreshness`: the last trust update, the age, whether it is fresh and a
  human message.  :func:`vaxcred.verify` applies it: past ``max_age`` (or with an unknown age) a VALID
  result becomes NEEDS_CHECK with the age in the message.
- :class:`RollbackState` is the highest national-list sequence accepted per environment and its issue
  time.  :meth:`RollbackState.accept` refuses an older list (``trust.rollback``) and returns the new
  state; the *caller* keeps it (the CLI in a 0600 JSON file written atomically, ``vaxcred sync`` the
  same way).  :meth:`RollbackState.to_json` / :meth:`RollbackState.from_json` are its file format::

      {"version": 1, "lists": {"PROD": {"sequence": 42, "issued_at": "2026-12-06T00:00:00+00:00"}}}

Typical use::

    state = RollbackState.from_json(path.read_bytes())            # or RollbackState() the first time
    store = load_signed_trust_list(data, anchor=anchor, environment=env, now=now,
                                   min_sequence=state.min_sequence(env))
    state = state.accept(store)                                   # raises trust.rollback
    write_atomically(path, state.to_json())
    result = verify(hc1, store, now=now, max_trust_age=policy.max_age)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from vaxcred.errors import TrustStoreError
from vaxcred.trust.store import DEFAULT_MAX_TRUST_AGE, Environment, TrustMode, TrustStore, require_utc

__all__ = [
    "MAX_STATE_BYTES",
    "RollbackState",
    "TrustFreshness",
    "TrustFreshnessPolicy",
    "format_age",
]

#: a rollback state file is a few hundred bytes
MAX_STATE_BYTES: Final = 64 * 1024
_STATE_VERSION: Final = 1


def format_age(age: timedelta) -> str:
    """A short human duration: ``3d 4h``, ``5h 12m``, ``42s`` (negative ages shown as ``-…``)."""
    seconds = int(age.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{seconds}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustFreshness:
    """How fresh a store is at one instant (the answer of :meth:`TrustFreshnessPolicy.assess`)."""

    #: the last trust update (signed issue time, or a vouched retrieval time); ``None`` = unknown
    updated_at: datetime | None
    #: ``now - updated_at``; ``None`` when the update time is unknown
    age: timedelta | None
    max_age: timedelta
    #: ``False`` only for bare ``--dsc`` certificates without an issue time (no list, no age)
    applicable: bool = True

    @property
    def fresh(self) -> bool:
        if not self.applicable:
            return True
        return self.age is not None and self.age <= self.max_age

    @property
    def code(self) -> str:
        """``trust.fresh``, ``trust.stale``, ``trust.age_unknown`` or ``trust.not_applicable``."""
        if not self.applicable:
            return "trust.not_applicable"
        if self.age is None:
            return "trust.age_unknown"
        return "trust.fresh" if self.fresh else "trust.stale"

    @property
    def message(self) -> str:
        """Human text with the age and the bound (built on demand: verify reads it only when stale)."""
        if not self.applicable:
            return "bare DSCs: no trust list, no age"
        if self.updated_at is None or self.age is None:
            return "the trust list's age is unknown (no signed issue time or retrieval time)"
        verdict = "within" if self.fresh else "older than"
        return (
            f"trust list updated {self.updated_at.isoformat()}, {format_age(self.age)} old: "
            f"{verdict} the maximum of {format_age(self.max_age)}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustFreshnessPolicy:
    """How old trust may be: ``max_age`` (positive; default 72 hours).  Immutable, pure."""

    max_age: timedelta = DEFAULT_MAX_TRUST_AGE
    #: also hold bare ``--dsc`` certificates (no issue time) to the bound: set when the caller gave the
    #: bound explicitly (they asked for trust of a known age); the default exempts them (no list)
    bare_dscs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0):
            raise ValueError("max_age must be a positive timedelta")

    @classmethod
    def for_store(cls, store: TrustStore, max_age: timedelta | None = None) -> TrustFreshnessPolicy:
        """``max_age`` if given, else the bound the store was loaded with (either is explicit: it applies
        to bare DSCs too), else the default."""
        bound = max_age or store.max_age
        return _DEFAULT_POLICY if bound is None else cls(max_age=bound, bare_dscs=True)

    def assess(self, store: TrustStore, now: datetime) -> TrustFreshness:
        """The store's freshness at ``now`` (aware).

        Bare ``--dsc`` certificates without an issue time are ``trust.not_applicable`` (fresh: no list is
        involved) unless :attr:`bare_dscs`; a list without an update time is ``trust.age_unknown`` (not
        fresh); a list updated after ``now`` is fresh only if the loader accepted it (it refuses future
        issue times).
        """
        now = require_utc(now)
        updated_at = store.issued_at
        if updated_at is None:
            return TrustFreshness(
                updated_at=None,
                age=None,
                max_age=self.max_age,
                applicable=self.bare_dscs or store.mode is not TrustMode.DSC,
            )
        return TrustFreshness(updated_at=updated_at, age=now - updated_at, max_age=self.max_age)


_DEFAULT_POLICY: Final = TrustFreshnessPolicy()


def _empty_lists() -> Mapping[str, tuple[int, datetime]]:
    return MappingProxyType({})


def _state_error(message: str) -> TrustStoreError:
    return TrustStoreError(f"trust state: {message}", code="trust.bad_state")


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackState:
    """The newest national trust list accepted, per environment: ``{env: (sequence, issued_at)}``.

    Immutable: :meth:`accept` returns a new state.  An empty state accepts any list (first use).
    """

    lists: Mapping[str, tuple[int, datetime]] = field(default_factory=_empty_lists)

    def __post_init__(self) -> None:
        frozen: dict[str, tuple[int, datetime]] = {}
        for env, entry in self.lists.items():
            if env not in Environment.__members__:
                raise ValueError(f"unknown environment {env!r}")
            sequence, issued_at = entry
            if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
                raise ValueError("sequence must be a non-negative int")
            frozen[env] = (sequence, require_utc(issued_at, "issued_at"))
        object.__setattr__(self, "lists", MappingProxyType(frozen))

    def min_sequence(self, environment: Environment) -> int | None:
        """The lowest sequence still acceptable in ``environment`` (``None``: nothing seen yet)."""
        entry = self.lists.get(environment.value)
        return entry[0] if entry else None

    def last_update(self, environment: Environment) -> datetime | None:
        """The issue time of the newest list accepted in ``environment``."""
        entry = self.lists.get(environment.value)
        return entry[1] if entry else None

    def accept(self, store: TrustStore) -> RollbackState:
        """The state after accepting ``store``; TrustStoreError(``trust.rollback``) for an older list.

        ``(sequence, issued_at)`` may only grow, both parts: refused are a lower sequence than the last
        accepted, and any list issued before the last accepted one (so the same sequence re-issued later
        is accepted, the earlier issue of it no longer).  Stores without a sequence (gateway JSON, bare
        DSCs) leave the state as it is: they carry nothing to compare.
        """
        if store.sequence is None or store.issued_at is None:
            return self
        env = store.environment.value
        entry = self.lists.get(env)
        if entry is not None:
            sequence, issued_at = entry
            if store.sequence < sequence:
                raise TrustStoreError(
                    f"trust list sequence {store.sequence} is older than the last accepted {sequence}",
                    code="trust.rollback",
                )
            if store.issued_at < issued_at:
                raise TrustStoreError(
                    f"trust list issued {store.issued_at.isoformat()}, before the last accepted one "
                    f"({issued_at.isoformat()})",
                    code="trust.rollback",
                )
        return RollbackState(lists={**self.lists, env: (store.sequence, store.issued_at)})

    def to_json(self) -> bytes:
        """The state file's bytes (deterministic)."""
        lists = {
            env: {"sequence": seq, "issued_at": issued.isoformat()}
            for env, (seq, issued) in self.lists.items()
        }
        return json.dumps({"version": _STATE_VERSION, "lists": lists}, sort_keys=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> RollbackState:
        """Read a state file strictly; anything unexpected raises TrustStoreError(``trust.bad_state``)."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError("the trust state must be bytes")
        if len(data) > MAX_STATE_BYTES:
            raise _state_error(f"larger than {MAX_STATE_BYTES} bytes")
        try:
            document: Any = json.loads(bytes(data).decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise _state_error(f"not JSON: {e}") from e
        if not isinstance(document, dict) or document.get("version") != _STATE_VERSION:
            raise _state_error("not a version 1 state object")
        lists = document.get("lists")
        if not isinstance(lists, dict) or set(document) != {"version", "lists"}:
            raise _state_error("'lists' must be an object")
        parsed: dict[str, tuple[int, datetime]] = {}
        for env, entry in lists.items():
            if not isinstance(entry, dict) or set(entry) != {"sequence", "issued_at"}:
                raise _state_error(f"entry {env!r} must hold exactly sequence and issued_at")
            issued = entry["issued_at"]
            if not isinstance(issued, str):
                raise _state_error(f"entry {env!r}: issued_at is not a string")
            try:
                parsed[env] = (entry["sequence"], datetime.fromisoformat(issued))
            except ValueError as e:
                raise _state_error(f"entry {env!r}: {e}") from e
        try:
            return cls(lists=parsed)
        except (ValueError, TypeError) as e:
            raise _state_error(str(e)) from e
