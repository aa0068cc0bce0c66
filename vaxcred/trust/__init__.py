"""Trust: which DSCs may sign passports, which CSCAs vouch for them, in which environment, how fresh.

- :mod:`~vaxcred.trust.store`: :class:`TrustStore` (kid -> candidate DSCs, CSCAs by country, one
  :class:`Environment`, one :class:`TrustMode`), :func:`require_environment`, :func:`dsc_problem`;
- :mod:`~vaxcred.trust.chain`: :func:`check_chain`, the ``chain`` verify step (DSC -> CSCA at ``now``);
- :mod:`~vaxcred.trust.gateway`: the EU gateway trust-list JSON, in (authenticated by the entries' CMS
  signatures, or the named-unsafe unauthenticated opt-in) and out;
- :mod:`~vaxcred.trust.cms`: the CMS SignedData check behind the gateway entries' signatures;
- :mod:`~vaxcred.trust.signed`: the national trust list, a COSE_Sign1 by the trust-list key;
- :mod:`~vaxcred.trust.freshness`: the public freshness and rollback API.

Freshness and rollback (the API ``vaxcred sync`` and the CLI build on):

- :class:`TrustFreshnessPolicy` ``(max_age=...)`` (default :data:`DEFAULT_MAX_TRUST_AGE`, 72 h);
  ``policy.assess(store, now)`` -> :class:`TrustFreshness` (``updated_at``, ``age``, ``fresh``, ``code``,
  ``message``).  :func:`vaxcred.verify` applies it always (``max_trust_age=`` overrides the bound): past
  it, or with an unknown age, VALID becomes NEEDS_CHECK.
- :class:`RollbackState`: the highest national-list sequence accepted per environment.  Pass
  ``state.min_sequence(env)`` to :func:`load_signed_trust_list`, then ``state = state.accept(store)``
  (``trust.rollback`` for an older list) and persist ``state.to_json()`` (the caller owns the file;
  :meth:`RollbackState.from_json` reads it back strictly).

Pure: no files, sockets or clock; every time is an aware ``datetime`` parameter.  Untrusted input raises
only :class:`~vaxcred.errors.TrustStoreError` (loading) or :class:`~vaxcred.errors.ChainError` (chain).
"""

from __future__ import annotations

from vaxcred.trust.chain import check_chain
from vaxcred.trust.freshness import RollbackState, TrustFreshness, TrustFreshnessPolicy, format_age
from vaxcred.trust.gateway import (
    GatewayTrustList,
    RejectedEntry,
    export_gateway_trust_list,
    load_gateway_trust_list,
    load_gateway_trust_list_unsafe_unauthenticated,
)
from vaxcred.trust.signed import load_signed_trust_list, sign_trust_list
from vaxcred.trust.store import (
    DEFAULT_MAX_TRUST_AGE,
    MAX_CANDIDATES,
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    dsc_problem,
    require_environment,
)

__all__ = [
    "DEFAULT_MAX_TRUST_AGE",
    "MAX_CANDIDATES",
    "Environment",
    "GatewayTrustList",
    "RejectedEntry",
    "RollbackState",
    "TrustFreshness",
    "TrustFreshnessPolicy",
    "TrustMode",
    "TrustStore",
    "TrustedDsc",
    "check_chain",
    "dsc_problem",
    "export_gateway_trust_list",
    "format_age",
    "load_gateway_trust_list",
    "load_gateway_trust_list_unsafe_unauthenticated",
    "load_signed_trust_list",
    "require_environment",
    "sign_trust_list",
]
