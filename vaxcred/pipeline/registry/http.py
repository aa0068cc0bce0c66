"""The population registry over HTTP: :class:`HttpRegistry` (JSON with :mod:`urllib.request` only).

Re-exported by :mod:`vaxcred.pipeline.registry.lookup` (the model, the matching rule and the protocol this adapter
implements). IDs, names and dates are never logged: log lines give batch numbers and sizes only.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from vaxcred.pipeline.errors import (
    REGISTRY_BAD_RESPONSE,
    REGISTRY_REJECTED,
    REGISTRY_UNAVAILABLE,
    PipelineError,
)
from vaxcred.pipeline.registry.lookup import RegistryEntry, _check_ids, logger

__all__ = ["HttpRegistry"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a registry that redirects a POST of citizen IDs elsewhere is misconfigured."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate key in JSON object")
        out[key] = value
    return out


#: HTTP statuses worth retrying besides 5xx: request timeout, too many requests.
_RETRYABLE_4XX = frozenset({408, 429})


class HttpRegistry:
    """The registry over HTTP: ``POST {base_url}/lookup`` with ``{"ids": [...]}`` (at most ``batch_size`` IDs),
    answered by ``200`` and ``{"results": [{"citizen_id", "full_name", "dob", "gender"}, ...]}``.

    - ``timeout`` (seconds) applies to connecting and to each socket read;
    - a 5xx, 408 or 429 status, a timeout or a connection error is retried up to ``retries`` times, sleeping
      ``backoff * 2**attempt`` seconds between attempts; when they are exhausted →
      ``pipeline.registry_unavailable``;
    - any other non-200 status (4xx, a redirect — redirects are never followed) → ``pipeline.registry_rejected``,
      not retried;
    - the answer is read up to ``max_response_bytes`` and validated strictly: UTF-8 JSON without duplicate keys,
      an object whose ``results`` is a list of objects with the four string fields (extra keys ignored), each
      ``citizen_id`` one that was asked for in that batch and at most once → else
      ``pipeline.registry_bad_response`` (not retried: a broken answer is not a transient fault);
    - ``proxies``: ``None`` uses the environment (``https_proxy`` …), ``{}`` none; ``headers`` are added to each
      request (an API token, …); ``sleep`` is injectable for tests.

    Nothing is sent at construction.  IDs are never logged: log lines give batch numbers and sizes only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        batch_size: int = 500,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_response_bytes: int = 16 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or fragment")
        for name, value, minimum in (("batch_size", batch_size, 1), ("retries", retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise ValueError("max_response_bytes must be a positive int")
        if not timeout > 0 or not backoff >= 0:
            raise ValueError("timeout must be > 0 and backoff >= 0")
        self.url = base_url.rstrip("/") + "/lookup"
        self.batch_size = batch_size
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.max_response_bytes = max_response_bytes
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **dict(headers or {}),
        }
        proxy_handler = urllib.request.ProxyHandler(None if proxies is None else dict(proxies))
        self._opener = urllib.request.build_opener(proxy_handler, _NoRedirect())
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpRegistry({self.url!r}, batch_size={self.batch_size})"

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """Look the IDs up in batches of at most ``batch_size`` (duplicates asked once); absent = not found."""
        ids = _check_ids(citizen_ids)
        found: dict[str, RegistryEntry] = {}
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        for number, batch in enumerate(batches, start=1):
            found.update(self._lookup_batch(batch, number=number, of=len(batches)))
        return MappingProxyType(found)

    def _lookup_batch(self, batch: list[str], *, number: int, of: int) -> dict[str, RegistryEntry]:
        body = self._post(json.dumps({"ids": batch}).encode("utf-8"), number=number, of=of)
        return self._parse(body, asked=frozenset(batch))

    def _post(self, body: bytes, *, number: int, of: int) -> bytes:
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "registry batch %d/%d: %s; retry %d/%d in %.2fs",
                    number,
                    of,
                    last,
                    attempt,
                    self.retries,
                    delay,
                )
                self._sleep(delay)
            # the scheme is checked in __init__ (http/https only)
            request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")  # noqa: S310
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    status = response.status
                    data: bytes = response.read(self.max_response_bytes + 1)
            except urllib.error.HTTPError as e:
                e.close()
                if e.code >= 500 or e.code in _RETRYABLE_4XX:
                    last = f"HTTP {e.code}"
                    continue
                raise PipelineError(
                    f"registry refused batch {number}/{of} ({len(body)} bytes): HTTP {e.code}",
                    code=REGISTRY_REJECTED,
                ) from None
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, bad status lines
                last = _describe(e)
                continue
            if status != 200:
                raise PipelineError(
                    f"registry answered HTTP {status}, expected 200", code=REGISTRY_BAD_RESPONSE
                )
            if len(data) > self.max_response_bytes:
                raise PipelineError(
                    f"registry answer exceeds {self.max_response_bytes} bytes", code=REGISTRY_BAD_RESPONSE
                )
            logger.debug(
                "registry batch %d/%d: %d bytes after %d attempt(s)", number, of, len(data), attempt + 1
            )
            return data
        raise PipelineError(
            f"registry unavailable: batch {number}/{of} failed {self.retries + 1} time(s), last: {last}",
            code=REGISTRY_UNAVAILABLE,
        )

    @staticmethod
    def _parse(body: bytes, *, asked: frozenset[str]) -> dict[str, RegistryEntry]:
        def bad(why: str) -> PipelineError:
            return PipelineError(f"registry answer is invalid: {why}", code=REGISTRY_BAD_RESPONSE)

        try:
            document = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise bad(f"not JSON ({type(e).__name__})") from None
        if not isinstance(document, dict) or not isinstance(document.get("results"), list):
            raise bad('expected an object with a "results" list')
        found: dict[str, RegistryEntry] = {}
        for index, item in enumerate(document["results"]):
            if not isinstance(item, dict):
                raise bad(f"results[{index}] is not an object")
            try:
                entry = RegistryEntry.from_fields(item)
            except PipelineError as e:
                raise bad(f"results[{index}]: {e.message}") from None
            if entry.citizen_id not in asked:
                raise bad(f"results[{index}] is for an ID that was not asked for")
            if entry.citizen_id in found:
                raise bad(f"results[{index}] repeats an ID")
            found[entry.citizen_id] = entry
        return found


def _describe(error: BaseException) -> str:
    """A log-safe description of a transport error (its type and, for URLError, the reason's type)."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return f"{type(error).__name__}({type(error.reason).__name__})"
    if isinstance(error, TimeoutError):
        return "timeout"
    return type(error).__name__
