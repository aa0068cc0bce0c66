"""Trust: which DSCs may sign passports, which CSCAs vouch for them, in which environment, how fresh.

- :mod:`~vaxcred.trust.store`: :class:`TrustStore` (kid -> candidate DSCs, CSCAs by country, one
  :class:`Environment`), :func:`require_environment`;
- :mod:`~vaxcred.trust.chain`: :func:`check_chain`, the ``chain`` verify step (DSC -> CSCA at ``now``);
- :mod:`~vaxcred.trust.gateway`: the EU gateway trust-list JSON, in and out;
- :mod:`~vaxcred.trust.signed`: the national trust list, a COSE_Sign1 by the trust-list key.

Pure: no files, sockets or clock; every time is an aware ``datetime`` parameter.  Untrusted input raises
only :class:`~vaxcred.errors.TrustStoreError` (loading) or :class:`~vaxcred.errors.ChainError` (chain).
"""

from __future__ import annotations

from vaxcred.trust.chain import check_chain
from vaxcred.trust.gateway import (
    GatewayTrustList,
    RejectedEntry,
    export_gateway_trust_list,
    load_gateway_trust_list,
)
from vaxcred.trust.signed import load_signed_trust_list, sign_trust_list
from vaxcred.trust.store import (
    MAX_CANDIDATES,
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    require_environment,
)

__all__ = [
    "MAX_CANDIDATES",
    "Environment",
    "GatewayTrustList",
    "RejectedEntry",
    "TrustMode",
    "TrustStore",
    "TrustedDsc",
    "check_chain",
    "export_gateway_trust_list",
    "load_gateway_trust_list",
    "load_signed_trust_list",
    "require_environment",
    "sign_trust_list",
]
