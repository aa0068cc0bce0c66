"""Run the service: one listening socket, N uvicorn worker processes forked from a loaded parent.

The parent loads trust once, builds the app, binds the socket, then forks the workers (POSIX ``fork``, as
gunicorn's ``--preload``): every worker shares the same :class:`~vaxcred.service.context.VerifierContext`,
and nothing has to be re-parsed or pickled. Each worker starts its own image decoder process in the app's
lifespan (after the fork). The parent only supervises:

* SIGTERM / SIGINT are passed to every worker, which finish their requests (uvicorn's graceful shutdown);
  the parent then waits for them and exits 0;
* a worker that dies on its own is replaced, at most :data:`MAX_RESTARTS` times a minute (then the parent
  stops the rest and exits 1: a worker that cannot stay up is a bug to fix, not to loop on).

With ``workers=1`` the one worker runs in the calling process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

import uvicorn

from vaxcred.service.logs import LOGGER

__all__ = ["MAX_CONNECTIONS", "MAX_RESTARTS", "bind", "serve"]

MAX_RESTARTS = 5
#: open connections per worker before uvicorn answers 503 (memory stays bounded under a flood)
MAX_CONNECTIONS = 1024
_log = logging.getLogger(LOGGER)


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket (``port`` 0: any free port; read it back with ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; accepted ones inherit
    # it, and without it a response written in two parts (head, body) waits ~40 ms on a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _run_worker(app: Any, sock: socket.socket) -> None:
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="asyncio",
        http="h11",
        timeout_keep_alive=5,
        # bounded: beyond this many open connections and requests a worker answers 503 at once
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        h11_max_incomplete_event_size=16 * 1024,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _fork_worker(app: Any, sock: socket.socket) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _run_worker(app, sock)
        except BaseException:
            _log.exception("worker failed")
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)
    return pid


def serve(app: Any, sock: socket.socket, *, workers: int = 1) -> int:
    """Serve ``app`` on ``sock`` with ``workers`` processes until SIGTERM / SIGINT; the exit status."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    host, port = sock.getsockname()[:2]
    _log.info(
        "listening", extra={"fields": {"host": host, "port": port, "workers": workers, "pid": os.getpid()}}
    )
    if workers == 1:
        _run_worker(app, sock)
        return 0

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    children: set[int] = set()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    restarts: list[float] = []
    status = 0
    try:
        for _ in range(workers):
            children.add(_fork_worker(app, sock))
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                continue
            if pid not in children:
                continue  # not a worker (e.g. a decoder child reaped late): nothing to do
            children.discard(pid)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            _log.error(
                "worker exited", extra={"fields": {"pid": pid, "exit": code, "restarts": len(restarts)}}
            )
            if len(restarts) > MAX_RESTARTS:
                status = 1
                stop(signal.SIGTERM, None)
                continue
            children.add(_fork_worker(app, sock))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    _log.info("stopped", extra={"fields": {"status": status}})
    sys.stderr.flush()
    return status
