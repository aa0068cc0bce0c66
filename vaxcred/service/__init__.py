"""The HTTP verify service and the border officer's page (extra ``vaxcred[server]``; ``vaxcred serve``).

* :class:`VerifierContext` / :class:`DataSet` — what the service trusts and how fresh it is (built at start-up);
* :func:`create_app` / :class:`ServiceConfig` — the ASGI app (FastAPI inside the size-limit, header and
  access-log layer) and its behaviour (minimal disclosure, test clock, limits);
* :mod:`vaxcred.service.server` — the pre-forking runner used by ``vaxcred serve``.

See docs/service.md.
"""

from __future__ import annotations

from vaxcred._extras import requires_extra

with requires_extra("server", feature="vaxcred.service"):
    from vaxcred.service.app import ServiceConfig, create_app
    from vaxcred.service.context import DataSet, VerifierContext

__all__ = ["DataSet", "ServiceConfig", "VerifierContext", "create_app"]
