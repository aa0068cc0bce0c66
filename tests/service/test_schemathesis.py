"""schemathesis against the published OpenAPI schema, calling a live ``vaxcred serve`` on loopback.

The schema is built at collection time from the app itself (schemathesis needs it then; a test below
checks the live server publishes exactly this schema). Checks: no 5xx for any generated input (valid and
invalid bodies, every media type of POST /verify), and every response conforms to its documented status
code, content type and schema. Bounded: ``max_examples`` per operation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.support import LiveServer
from vaxcred.service import VerifierContext, create_app
from vaxcred.trust import Environment, TrustMode, TrustStore


def _published_schema() -> dict[str, Any]:
    store = TrustStore.build(environment=Environment.TST, mode=TrustMode.DSC, dscs=[])
    app = create_app(VerifierContext(trust=store, loaded_at=datetime(2026, 1, 1, tzinfo=UTC)))
    document: dict[str, Any] = app.app.openapi()
    return document


OPENAPI = _published_schema()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_live_server_publishes_this_schema(server: LiveServer) -> None:
    """What schemathesis explores is what the running service publishes."""
    assert httpx.get(f"{server.url}/openapi.json", timeout=10).json() == OPENAPI


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_never_fails_and_answers_as_documented(case: schemathesis.Case, server: LiveServer) -> None:
    """No 5xx; status codes, content types and bodies as the schema says."""
    case.call_and_validate(
        base_url=server.url,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ],
    )
