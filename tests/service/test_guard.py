"""The ASGI guard as pure logic (a stub app): limits, rate limit, headers, access-log fields."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from vaxcred.service.guard import OUTCOME_KEY, Guard, Limits, RateLimiter
from vaxcred.service.logs import ACCESS_LOGGER, ClientIds, JsonFormatter


def _run(guard: Guard, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/verify",
        "headers": headers,
        "client": ("10.0.0.7", 5),
    }
    asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
    return sent


async def _reading_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, then answers 200 (or, as Starlette does on an exception, tries a 500)."""
    try:
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
    except Exception:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"boom"})
        raise
    scope.setdefault("state", {})[OUTCOME_KEY] = {"status": "VALID", "codes": []}
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


LIMITS = Limits(upload=100, other=10)


def test_streamed_body_over_limit_gets_413_and_the_apps_answer_is_dropped() -> None:
    """Counting as it streams: the 413 goes out; the app's late 500 never reaches the client."""
    sent = _run(Guard(_reading_app, limits=LIMITS), [(b"content-type", b"application/json")], [b"x" * 6] * 3)
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]
    assert b"boom" not in b"".join(m.get("body", b"") for m in sent)


def test_uploads_have_their_own_limit() -> None:
    sent = _run(Guard(_reading_app, limits=LIMITS), [(b"content-type", b"image/png")], [b"x" * 60])
    assert sent[0]["status"] == 200


@pytest.mark.parametrize("value", [b"11", b"-1", b"1e3", b"abc"])
def test_bad_or_large_declared_length_is_413(value: bytes) -> None:
    """Content-Length over the limit (or not a plain number) is refused without reading."""
    sent = _run(Guard(_reading_app, limits=LIMITS), [(b"content-length", value)], [b""])
    assert sent[0]["status"] == 413


def test_security_headers_added() -> None:
    sent = _run(Guard(_reading_app, limits=LIMITS), [], [b"{}"])
    headers = dict(sent[0]["headers"])
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"cache-control"] == b"no-store"


def test_rate_limiter_token_bucket() -> None:
    """rate 2/s, burst 2: two pass, the third waits half a second."""
    clock = [0.0]
    limiter = RateLimiter(2, burst=2, clock=lambda: clock[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b") is True  # per client
    clock[0] = 0.5
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False


def test_rate_limited_client_gets_429() -> None:
    guard = Guard(_reading_app, limits=LIMITS, rate_limiter=RateLimiter(1, burst=1, clock=lambda: 0.0))
    assert _run(guard, [], [b""])[0]["status"] == 200
    answer = _run(guard, [], [b""])[0]
    assert answer["status"] == 429
    assert (b"retry-after", b"1") in answer["headers"]


def test_access_line_fields(caplog: pytest.LogCaptureFixture) -> None:
    """route, status, sizes, keyed client id and the verdict; never the address."""
    ids = ClientIds(key=b"k" * 32)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        _run(Guard(_reading_app, limits=LIMITS, client_ids=ids), [], [b"{}"])
    record = caplog.records[-1]
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/verify"
    assert line["status"] == 200
    assert line["bytes_in"] == 2
    assert line["client"] == ids("10.0.0.7")
    assert line["verify"] == {"status": "VALID", "codes": []}
    assert "10.0.0.7" not in json.dumps(line)


def test_client_ids_are_keyed() -> None:
    """Same address, same id under one key; another key (another run) gives another id."""
    assert ClientIds(b"a" * 32)("1.2.3.4") == ClientIds(b"a" * 32)("1.2.3.4")
    assert ClientIds(b"a" * 32)("1.2.3.4") != ClientIds(b"b" * 32)("1.2.3.4")
    assert ClientIds()(None) is None


def test_formatter_logs_exception_type_only() -> None:
    """A traceback could quote input: only the exception's type is logged."""
    try:
        raise ValueError("HC1:SECRET")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "SECRET" not in line
    assert json.loads(line)["exception"] == "ValueError"
