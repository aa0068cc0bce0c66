"""A real HTTP server on 127.0.0.1 (a random port, in a thread) serving a published sync folder.

Each path is served from the folder with an ``ETag`` (its SHA-256) and ``Last-Modified``, answering
conditional requests with 304, unless ``ServedFolder.tricks`` maps the path to a misbehaviour: a status,
a byte flipped, a body cut short under a truthful or a lying ``Content-Length``, a sleep before the
response, a body trickled slowly, a body far over any cap.  Every request is recorded.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: the Last-Modified every file carries (fixed, so conditional requests are reproducible)
LAST_MODIFIED = formatdate(1_767_000_000, usegmt=True)


@dataclass
class ServedFolder:
    root: Path
    port: int = 0
    tricks: dict[str, tuple[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    served: ServedFolder


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Length": str(len(body))}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        served = self.server.served
        path = self.path.lstrip("/")
        served.requests.append((path, dict(self.headers.items())))
        trick, arg = served.tricks.get(path, ("", None))
        if trick == "status":
            self._send(arg, b"error")
            return
        if trick == "sleep":
            time.sleep(arg)
        if trick == "huge_announced":
            self._send(200, b"", {"Content-Length": str(arg)})
            return
        if trick == "huge_body":  # no Content-Length: read until the connection closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(arg // len(chunk) + 1):
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        file = served.root / path
        if not file.is_file():
            self._send(404, b"not found")
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest() + '"'
        if trick == "replace":
            body = arg
        if trick == "flip":
            body = body[:arg] + bytes([body[arg] ^ 0x01]) + body[arg + 1 :]
        if self.headers.get("If-None-Match") == etag and not trick:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Connection", "close")
            self.end_headers()
            return
        headers = {"Content-Length": str(len(body)), "ETag": etag, "Last-Modified": LAST_MODIFIED}
        if trick == "short":  # a truthful Content-Length, then the connection closes half-way
            self._send(200, body[: len(body) // 2], headers)
            return
        if trick == "lying_length":  # Content-Length smaller than the file: the body is cut short
            headers["Content-Length"] = str(len(body) // 2)
            self._send(200, body[: len(body) // 2], headers)
            return
        if trick == "trickle":
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(arg)
            except OSError:
                pass
            return
        self._send(200, body, headers)


@contextmanager
def serve(root: Path) -> Iterator[ServedFolder]:
    """Serve ``root`` on 127.0.0.1 at a random free port until the block ends."""
    served = ServedFolder(root=root)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.served = served
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
