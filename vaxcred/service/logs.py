"""Structured JSON logs with no personal data (SECURITY.md §4).

One JSON object per line on stderr. An access line holds the method, the route (the matched route
template, never the raw path: a path can carry an HC1 text), status, duration, byte counts, a client id
that is an HMAC-SHA-256 of the address under a per-process random key (8 bytes, hex: correlates requests of
one run, never reversible to the address, useless across restarts) and, for ``/verify``, the verdict and the
failed step codes. Never a body, name, date of birth, HC1 text, image or query string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["ACCESS_LOGGER", "LOGGER", "ClientIds", "JsonFormatter", "configure_logging"]

LOGGER = "vaxcred.service"
ACCESS_LOGGER = "vaxcred.service.access"


class JsonFormatter(logging.Formatter):
    """``{"ts": …, "level": …, "logger": …, "event": …, …fields}``; fields come from ``extra={"fields": {}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # the exception's type only: messages and tracebacks may quote input
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """Send the service's and uvicorn's loggers to stderr as JSON lines (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER, "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # uvicorn's own access log prints the raw path and the client address: ours replaces it
    logging.getLogger("uvicorn.access").disabled = True


class ClientIds:
    """Client addresses as short keyed hashes: the same address gives the same id within one process."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._cache: dict[str, str] = {}

    def __call__(self, address: str | None) -> str | None:
        if not address:
            return None
        found = self._cache.get(address)
        if found is None:
            found = hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:16]
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[address] = found
        return found
