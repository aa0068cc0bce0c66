"""The HTTP verify service: FastAPI routes over a :class:`~vaxcred.service.context.VerifierContext`.

Routes::

    POST /verify        JSON {"qr": "HC1:…", "country": "VN", "at": …}, multipart field "image", or a raw
                        image/png | image/jpeg body  ->  VerifyResponse (200 whatever the verdict)
    GET  /trust         trust mode, last update, age, counts; the other data sets
    GET  /healthz       liveness
    GET  /openapi.json  the published schema (no /docs: it would load scripts from a CDN)
    GET  /              the border officer's page (static files under /static/)

Guarantees, and what enforces them:

* **No 5xx for any input**: ``verify()`` never raises for bad input; request bodies are parsed here with
  typed errors (413 by :class:`~vaxcred.service.guard.Guard` before reading, 415 unknown media type, 422
  malformed body); schemathesis and the adversarial tests hold it.
* **Images never decoded in this process**: one :class:`~vaxcred.qr.IsolatedImageDecoder` per worker
  (a child process under a hard deadline and an address-space limit), started by the lifespan.
* **The clock is read here only** (``clock``, once per request); ``at`` in a request is honoured only when
  the service runs with ``allow_at_for_testing``.
* **Minimal disclosure** on request of the operator (``minimal``): status, reasons, name and date of birth.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaxcred import __version__, errors
from vaxcred.qr import DEFAULT_MEMORY_LIMIT, MAX_IMAGE_BYTES, IsolatedImageDecoder
from vaxcred.result import StepResult
from vaxcred.service.context import VerifierContext
from vaxcred.service.guard import OUTCOME_KEY, Guard, Limits, RateLimiter
from vaxcred.service.logs import LOGGER, ClientIds
from vaxcred.service.models import (
    DataSetOut,
    ErrorResponse,
    Health,
    TrustOut,
    VerifyRequest,
    VerifyResponse,
)
from vaxcred.service.response import build_response

__all__ = ["ServiceConfig", "create_app"]

_JSON = "application/json"
_IMAGE_TYPES = ("image/png", "image/jpeg")
_log = logging.getLogger(LOGGER)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """How the service behaves (not what it trusts: that is the :class:`VerifierContext`)."""

    #: status, reasons, name and date of birth only: no step details, kid, issuer or dates
    minimal: bool = False
    #: honour ``at`` in requests (test set-ups only: a border service must use its own clock)
    allow_at_for_testing: bool = False
    #: seconds an uploaded image may take to decode (in the worker's decoder process, killed after that)
    image_deadline: float = 0.5
    image_memory_limit: int | None = DEFAULT_MEMORY_LIMIT
    #: body limits: uploads (the largest image :mod:`vaxcred.qr` reads, plus form overhead) and JSON
    max_upload_bytes: int = MAX_IMAGE_BYTES + 64 * 1024
    max_json_bytes: int = 64 * 1024
    #: requests a second per client address and worker process (None: no rate limit)
    rate_limit: float | None = None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse.model_validate({"error": {"code": code, "message": message}})
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: ValidationError) -> str:
    """Where the body is wrong and why: never the offending input itself."""
    parts = []
    for item in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request body"


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body larger than the limit (refused before reading it)"},
    415: {"model": ErrorResponse, "description": "Not JSON, multipart/form-data, image/png or image/jpeg"},
    422: {"model": ErrorResponse, "description": "Malformed body, or `at` without --testing-allow-at"},
    429: {"model": ErrorResponse, "description": "Rate limit (when enabled)"},
}


def _verify_openapi() -> dict[str, Any]:
    """The request body of ``POST /verify`` (parsed by hand: one route, three media types)."""
    schema = VerifyRequest.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {"schema": schema},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "string", "format": "binary", "description": "PNG or JPEG"},
                            "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                        },
                    }
                },
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


def create_app(
    context: VerifierContext,
    config: ServiceConfig | None = None,
    *,
    clock: Callable[[], datetime] = _utc_now,
    client_ids: ClientIds | None = None,
) -> Guard:
    """The service as an ASGI app (FastAPI inside :class:`~vaxcred.service.guard.Guard`).

    ``clock`` gives the verification time of each request (aware UTC); tests may pass a fixed one.
    """
    cfg = config or ServiceConfig()
    decoders: dict[str, IsolatedImageDecoder] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # one decoder (child process) per worker, started here: after the worker was forked
        decoder = IsolatedImageDecoder(deadline=cfg.image_deadline, memory_limit=cfg.image_memory_limit)
        with contextlib.suppress(errors.ImageError):
            await run_in_threadpool(decoder.start)
        decoders["image"] = decoder
        try:
            yield
        finally:
            decoders.pop("image", None)
            decoder.close()

    app = FastAPI(
        title="vaxcred verify service",
        version=__version__,
        description="Verify EU-DCC compatible vaccine passports (HC1 QR codes) the way a border app does.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "request.not_found", 405: "request.method_not_allowed"}.get(
            exc.status_code, "request.error"
        )
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def verify_image(data: bytes, now: datetime, country: str | None) -> Any:
        decoder = decoders.get("image")
        if decoder is None:  # no lifespan (a bare ASGI test client): a decoder for this request only
            with IsolatedImageDecoder(deadline=cfg.image_deadline, memory_limit=cfg.image_memory_limit) as d:
                return await run_in_threadpool(
                    functools.partial(context.verify, data, now=now, country=country, image_decoder=d.decode)
                )
        return await run_in_threadpool(
            functools.partial(context.verify, data, now=now, country=country, image_decoder=decoder.decode)
        )

    @app.post(
        "/verify",
        response_model=VerifyResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_verify_openapi(),
        summary="Verify a passport: its QR text (JSON) or a photo of its QR code",
    )
    async def verify_route(request: Request) -> Response:
        now = clock()
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        country: str | None = None
        if media == _JSON:
            try:
                body = VerifyRequest.model_validate_json(await request.body())
            except ValidationError as e:
                return _error(422, "request.invalid", _validation_message(e))
            if body.at is not None:
                if not cfg.allow_at_for_testing:
                    return _error(
                        422, "request.at_not_allowed", "at is accepted only by a service started for testing"
                    )
                now = body.at
            country = body.country
            result = context.verify(body.qr, now=now, country=country)
        elif media == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=4, max_part_size=1024)
            except Exception:  # python-multipart / starlette raise several types for malformed forms
                return _error(422, "request.invalid", "malformed multipart/form-data body")
            image = form.get("image")
            raw_country = form.get("country")
            if not isinstance(image, UploadFile):
                return _error(422, "request.invalid", "image: a file field named image is required")
            if raw_country is not None:
                if not (isinstance(raw_country, str) and len(raw_country) == 2 and raw_country.isascii()):
                    return _error(422, "request.invalid", "country: two capital letters expected")
                if not raw_country.isupper():
                    return _error(422, "request.invalid", "country: two capital letters expected")
                country = raw_country
            data = await image.read(cfg.max_upload_bytes + 1)
            await form.close()
            result = await verify_image(data, now, country)
        elif media in _IMAGE_TYPES:
            result = await verify_image(await request.body(), now, None)
        else:
            return _error(
                415,
                "request.unsupported_media_type",
                "send application/json, multipart/form-data, image/png or image/jpeg",
            )
        # for the access line: the verdict and failed step codes, nothing personal
        request.scope.setdefault("state", {})[OUTCOME_KEY] = {
            "status": result.status.value,
            "codes": [s.code for s in result.steps if s.result is StepResult.FAIL],
        }
        response = build_response(result, context, now=now, minimal=cfg.minimal)
        return Response(response.model_dump_json(), media_type=_JSON)

    @app.get("/trust", response_model=TrustOut, summary="Trust mode, last update, age and counts")
    async def trust_route() -> Response:
        now = clock()
        trust = context.trust
        updated = context.trust_updated_at
        out = TrustOut(
            now=now,
            mode=trust.mode.value,
            environment=trust.environment.value,
            updated_at=updated,
            signed_issue_time=trust.issued_at is not None,
            loaded_at=context.loaded_at,
            age_seconds=round((now - updated).total_seconds(), 3),
            stale_after=trust.stale_after,
            fresh=context.trust_is_fresh(now),
            sequence=trust.sequence,
            dscs=len(trust.all_dscs()),
            cscas=len(trust.all_cscas()),
            countries=sorted({d.country for d in trust.all_dscs()}),
            datasets=[
                DataSetOut(
                    name=d.name,
                    source=d.source,
                    updated_at=d.updated_at,
                    age_seconds=None if (age := d.age(now)) is None else round(age.total_seconds(), 3),
                    max_age_seconds=None if d.max_age is None else d.max_age.total_seconds(),
                    fresh=d.is_fresh(now),
                    count=d.count,
                )
                for d in context.datasets
            ],
            minimal_disclosure=cfg.minimal,
            rules_supported=context.supports_country,
        )
        return Response(out.model_dump_json(), media_type=_JSON)

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok", version=__version__)

    static = resources.files("vaxcred.service").joinpath("static")
    index = str(static.joinpath("index.html"))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    limiter = RateLimiter(cfg.rate_limit) if cfg.rate_limit else None
    limits = Limits(upload=cfg.max_upload_bytes, other=cfg.max_json_bytes)
    return Guard(app, limits=limits, rate_limiter=limiter, client_ids=client_ids)
