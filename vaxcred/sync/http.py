"""One bounded HTTP GET for the sync client: size cap, per-read timeout, total deadline, conditional.

:func:`fetch` never follows redirects, never asks for compression (``Accept-Encoding: identity``), and
refuses, with :class:`~vaxcred.errors.SyncError`:

- ``sync.bad_url``: anything but an ``http://`` / ``https://`` URL with a host;
- ``sync.http_status``: any status but 200, or 304 to a conditional request;
- ``sync.too_large``: a ``Content-Length`` or a body over ``max_bytes`` (read stops at the cap);
- ``sync.truncated``: a body shorter than its ``Content-Length`` (the connection closed early);
- ``sync.timeout``: a connect or read slower than its timeout, or a response not complete within the total
  deadline — a watchdog shuts the socket down at the deadline, so a server trickling bytes (slow loris)
  cannot hold the client longer;
- ``sync.connection``: refused connections, resets, malformed HTTP.

This module does I/O (sockets) and reads the monotonic clock for deadlines only.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass

from vaxcred.errors import SyncError

__all__ = ["Fetched", "HttpLimits", "fetch"]

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Timeouts in seconds: ``connect`` and each ``read``, and ``deadline`` for a whole response."""

    connect: float = 10.0
    read: float = 10.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """A response: ``not_modified`` (304, empty body) or 200 with its body and validators."""

    not_modified: bool
    body: bytes
    etag: str | None
    last_modified: str | None

    def __repr__(self) -> str:
        return f"Fetched(not_modified={self.not_modified}, bytes={len(self.body)}, etag={self.etag!r})"


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise SyncError(f"not a URL: {e}", code="sync.bad_url") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SyncError("only http:// and https:// URLs with a host", code="sync.bad_url")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, port, timeout=timeout), target
    return http.client.HTTPConnection(parts.hostname, port, timeout=timeout), target


def _shutdown(sock: socket.socket, fired: threading.Event) -> None:
    fired.set()
    with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
        sock.shutdown(socket.SHUT_RDWR)


def fetch(
    url: str,
    *,
    max_bytes: int,
    limits: HttpLimits | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET ``url`` within ``limits`` (see the module docstring); conditional when a validator is given."""
    limits = limits or HttpLimits()
    deadline = time.monotonic() + limits.deadline
    conn, target = _connection(url, min(limits.connect, limits.deadline))
    fired = threading.Event()
    watchdog: threading.Timer | None = None
    try:
        conn.connect()
        sock = conn.sock
        assert sock is not None  # connect() succeeded
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shutdown, (sock, fired))
        watchdog.daemon = True
        watchdog.start()
        sock.settimeout(limits.read)
        headers = {"Accept-Encoding": "identity", "User-Agent": "vaxcred-sync"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        got_etag, got_modified = response.getheader("ETag"), response.getheader("Last-Modified")
        if response.status == 304 and (etag or last_modified):
            return Fetched(
                not_modified=True,
                body=b"",
                etag=got_etag or etag,
                last_modified=got_modified or last_modified,
            )
        if response.status != 200:
            raise SyncError(f"HTTP {response.status} for {target}", code="sync.http_status")
        length = _content_length(response.getheader("Content-Length"))
        if length is not None and length > max_bytes:
            raise SyncError(f"{target}: {length} bytes announced, at most {max_bytes}", code="sync.too_large")
        body = bytearray()
        while True:
            chunk = response.read(min(_CHUNK, max_bytes + 1 - len(body)))
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise SyncError(f"{target}: more than {max_bytes} bytes", code="sync.too_large")
        if fired.is_set():
            raise SyncError(f"{target}: not complete within {limits.deadline} s", code="sync.timeout")
        if length is not None and len(body) != length:
            raise SyncError(f"{target}: {len(body)} of {length} bytes", code="sync.truncated")
        return Fetched(not_modified=False, body=bytes(body), etag=got_etag, last_modified=got_modified)
    except SyncError:
        raise
    except http.client.IncompleteRead as e:
        if fired.is_set():
            raise SyncError(f"{target}: not complete within {limits.deadline} s", code="sync.timeout") from e
        raise SyncError(f"{target}: the body ended early", code="sync.truncated") from e
    except TimeoutError as e:
        raise SyncError(f"{target}: timed out", code="sync.timeout") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        if fired.is_set():
            raise SyncError(f"{target}: not complete within {limits.deadline} s", code="sync.timeout") from e
        raise SyncError(f"{target}: {type(e).__name__}: {e}", code="sync.connection") from e
    finally:
        if watchdog is not None:
            watchdog.cancel()
        conn.close()


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise SyncError(f"bad Content-Length {value[:40]!r}", code="sync.connection")
    return int(value)
