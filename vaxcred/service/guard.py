"""The ASGI layer around the app: body size limits, rate limit, security headers, access log.

One pure ASGI wrapper (no per-request task or body buffering), outermost, so that:

* a body larger than its limit gets **413 before it is read**: a ``Content-Length`` over the limit is
  refused at once; a chunked body is counted as it streams, and the first byte over the limit ends the
  request with 413 (the app's partial work is discarded: the 413 is sent by this layer, whatever the app
  then tries to send);
* optional per-client rate limiting (token bucket per address, per worker process) answers 429;
* every response carries the security headers (CSP without inline script, ``frame-ancestors 'none'``,
  ``nosniff``, no referrer, no caching of results);
* every request leaves one JSON access line without personal data (:mod:`vaxcred.service.logs`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from vaxcred.service.logs import ACCESS_LOGGER, ClientIds

__all__ = ["OUTCOME_KEY", "Guard", "Limits", "RateLimiter"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: where an endpoint leaves non-personal facts for the access line (``request.state.<OUTCOME_KEY>``)
OUTCOME_KEY = "vaxcred_outcome"

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_NO_STORE = (b"cache-control", b"no-store")
_REVALIDATE = (b"cache-control", b"no-cache")
_KNOWN_ROUTES = frozenset({"/", "/verify", "/trust", "/healthz", "/openapi.json"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Largest request bodies, in bytes: uploads (``multipart/form-data``, ``image/*``) and everything else."""

    upload: int
    other: int

    def __post_init__(self) -> None:
        if self.upload < 1 or self.other < 1:
            raise ValueError("body limits must be positive")


class RateLimiter:
    """A token bucket per client address: ``rate`` requests a second, bursts of ``burst`` (per process)."""

    __slots__ = ("_buckets", "_burst", "_clock", "_rate")

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        if not rate > 0:
            raise ValueError("rate must be positive")
        self._rate = float(rate)
        self._burst = float(burst if burst is not None else max(2 * rate, 1))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if len(self._buckets) >= 10_000 and client not in self._buckets:
            self._buckets.clear()  # bounded memory: forgetting buckets only ever lets clients through
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1, now)
        return True


class _TooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _route(path: str) -> str:
    if path in _KNOWN_ROUTES:
        return path
    return "/static" if path.startswith("/static/") else "other"


class Guard:
    """Wraps an ASGI app with the limits, headers and access log described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits,
        rate_limiter: RateLimiter | None = None,
        client_ids: ClientIds | None = None,
    ) -> None:
        self.app = app
        self._limits = limits
        self._rate = rate_limiter
        self._client_ids = client_ids or ClientIds()
        self._log = logging.getLogger(ACCESS_LOGGER)

    def _limit_for(self, scope: Scope) -> int:
        content_type = (_header(scope, b"content-type") or b"").lower()
        if content_type.startswith((b"multipart/form-data", b"image/")):
            return self._limits.upload
        return self._limits.other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        limit = self._limit_for(scope)
        client = scope.get("client")
        address = client[0] if client else None
        facts: dict[str, Any] = {"status": 0, "bytes_in": 0, "bytes_out": 0, "responded": False}

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                if facts["responded"]:  # a 413 already went out: drop what the app sends now
                    facts["dropping"] = True
                    return
                facts["responded"] = True
                facts["status"] = message["status"]
                headers = list(message.get("headers", ()))
                headers.extend(_COMMON_HEADERS)
                headers.append(_REVALIDATE if path.startswith("/static/") or path == "/" else _NO_STORE)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                if facts.get("dropping"):
                    return
                facts["bytes_out"] += len(message.get("body", b""))
            await send(message)

        async def reply(
            status: int, code: str, text: str, extra: tuple[tuple[bytes, bytes], ...] = ()
        ) -> None:
            body = _error_body(code, text)
            await send_guarded(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                        *extra,
                    ],
                }
            )
            await send_guarded({"type": "http.response.body", "body": body})

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                facts["bytes_in"] += len(message.get("body", b""))
                if facts["bytes_in"] > limit:
                    if not facts["responded"]:
                        await reply(413, "request.too_large", f"request body larger than {limit} bytes")
                    raise _TooLarge
            return message

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                await reply(413, "request.too_large", f"request body larger than {limit} bytes")
            elif self._rate is not None and address and not self._rate.allow(address):
                await reply(429, "request.rate_limited", "too many requests", ((b"retry-after", b"1"),))
            else:
                await self.app(scope, receive_counted, send_guarded)
        except _TooLarge:
            pass
        except Exception:
            # a response not yet started gets a plain 500 without details; the type alone is logged
            if not facts["responded"]:
                await reply(500, "server.error", "internal error")
            self._log.exception("request failed", extra={"fields": {"route": _route(path)}})
        finally:
            fields: dict[str, Any] = {
                "method": scope.get("method"),
                "route": _route(path),
                "status": facts["status"],
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "bytes_in": facts["bytes_in"],
                "bytes_out": facts["bytes_out"],
                "client": self._client_ids(address),
            }
            state = scope.get("state")
            if isinstance(state, dict) and OUTCOME_KEY in state:
                fields["verify"] = state[OUTCOME_KEY]
            self._log.info("request", extra={"fields": fields})
