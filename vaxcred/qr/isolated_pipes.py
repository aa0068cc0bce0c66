"""The parent's end of :class:`~vaxcred.qr.isolated.IsolatedImageDecoder`'s child process: how it is started
(our own interpreter, a minimal environment), framed requests and replies through non-blocking pipes under a
deadline (a stuck child cannot stall the parent), and killing it."""

from __future__ import annotations

import contextlib
import math
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from vaxcred.qr.isolated_child import CHUNK, HEADER

#: A reply is a QR code's text (at most 7,089 characters) or an error message, JSON-encoded: anything
#: longer is a protocol violation.
_MAX_REPLY: Final = 1024 * 1024


class Timeout(Exception):
    """The deadline passed."""


class Broken(Exception):
    """The child is gone, or broke the protocol."""


class Child:
    """One child process and the parent's ends of its pipes (non-blocking)."""

    __slots__ = ("_reader", "_writer", "proc")

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.proc = proc
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        self._writer = select.poll()
        self._writer.register(proc.stdin.fileno(), select.POLLOUT)
        self._reader = select.poll()
        self._reader.register(proc.stdout.fileno(), select.POLLIN)

    @staticmethod
    def _wait(poller: select.poll, until: float) -> list[tuple[int, int]]:
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise Timeout
        events = poller.poll(math.ceil(remaining * 1000))
        if not events:
            raise Timeout
        return events

    def send(self, body: bytes, until: float) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(HEADER.pack(len(body)) + body)
        while view:
            self._wait(self._writer, until)
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except OSError as e:  # EPIPE: the child is gone
                raise Broken from e
            view = view[written:]

    def receive(self, until: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        need = HEADER.size
        header_read = False
        while True:
            while len(buf) < need:
                self._wait(self._reader, until)
                try:
                    chunk = os.read(fd, min(CHUNK, need - len(buf)))
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise Broken from e
                if not chunk:  # EOF: the child died (or closed its stdout)
                    raise Broken
                buf += chunk
            if header_read:
                return bytes(buf[HEADER.size :])
            (length,) = HEADER.unpack(buf)
            if length > _MAX_REPLY:
                raise Broken(f"reply of {length} bytes")
            need += length
            header_read = True

    def kill(self, *, reap: bool = True) -> int | None:
        """SIGKILL, close the pipes and (``reap``) wait for the end; the exit status, None if not reaped.

        The kernel takes a few milliseconds to tear down a busy child: a timed-out request does not wait
        for that, the child is reaped before the next one starts.
        """
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if reap:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return proc.returncode


def kill_all(children: list[Child]) -> None:
    """Finalizer (close, garbage collection, interpreter exit): must not refer to the decoder itself."""
    while children:
        children.pop().kill()


#: The only environment variables the child gets: what the interpreter and its libraries need to start.
#: Secrets in the environment (VAXCRED_PASSPHRASE, database URLs) never reach the image parsers.
_CHILD_ENV: Final = (
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONHOME",
    "PYTHONPATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
)


_CHILD_ENTRY = (
    "import sys; from vaxcred.qr.isolated_child import child_main; sys.exit(child_main(sys.argv[1:]))"
)


def child_command(memory_limit: int | None) -> tuple[list[str], dict[str, str]]:
    """The command line and the (minimal) environment of a new child."""
    # -P: no current directory on sys.path; the child imports the very vaxcred the parent runs
    root = str(Path(__file__).resolve().parent.parent)
    env = {name: os.environ[name] for name in _CHILD_ENV if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    # -c, not -m: importing the package imports the child's module first, and runpy then warns on stderr that it
    # runs it a second time as __main__ (one RuntimeWarning line per child, on every CLI image and service worker)
    command = [sys.executable, "-P", "-c", _CHILD_ENTRY, "--memory-limit", str(memory_limit or 0)]
    return command, env
