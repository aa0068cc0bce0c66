"""Decode untrusted images in a child process, under a hard deadline (SECURITY.md #17; docs/security.md).

:func:`vaxcred.qr.decode_image` bounds its work by caps, but one case is open: an image tiled with QR finder
patterns keeps zxing-cpp's detector busy for ~0.3 s, in C code that cannot be interrupted in-process; and a
parser bug in Pillow, libjpeg, libpng or zxing would crash or corrupt the verifying process itself.
:class:`IsolatedImageDecoder` runs :func:`~vaxcred.qr.decode_image` in a persistent child process instead::

    with IsolatedImageDecoder(deadline=0.05) as decoder:
        decoder.start()                                    # optional pre-warm (~0.15 s, once)
        text = decoder.decode(image_bytes)                 # str, or ImageError
        result = verify(image_bytes, trust, now=now, image_decoder=decoder.decode)

The design:

* the child is ``python -P -c`` running :func:`_child_main` of this module (``subprocess``, not ``multiprocessing``: no pickling,
  no re-import of the caller's ``__main__``, nothing inherited but the pipes). It imports Pillow and zxing
  once, decodes a small PNG and JPEG to warm up, says ``ready`` and then loops, one request at a time;
* frames on its stdin/stdout are a 4-byte big-endian length and a body: the image bytes one way, a small
  JSON object the other (``{"text": ...}`` or ``{"code": ..., "message": ...}``). The child moves its real
  stdout to a private descriptor first, so a stray print (Python or C) cannot corrupt the protocol;
* the child gets a minimal environment (no secrets such as ``VAXCRED_PASSPHRASE``) and limits itself
  before it reads any input: address space (``RLIMIT_AS``, soft and hard, 512 MiB by default: an
  allocation beyond it fails, it cannot swap the host), no core dumps, and it ignores SIGINT (the parent
  owns the child's life; the child also ends by itself when its stdin closes, so it never outlives a
  parent that was killed). It is not a sandbox: it may still read what the parent's user may read;
* the parent checks the byte caps (and the PNG/JPEG magic) itself, before sending anything, then starts
  the clock and waits at most ``deadline`` seconds for the answer (writing and reading through
  non-blocking pipes, so a stuck child cannot stall the parent either). On timeout the child is killed
  (SIGKILL; reaped before the next child starts): :class:`~vaxcred.errors.ImageError` ``image.timeout``,
  ~0.3 ms after the deadline. If it dies while decoding
  (a segfault, the OOM killer): ``image.decoder_crashed``. Errors raised in the child come back as
  (code, message) and are raised again as ``ImageError`` with the same code;
* a new child is started lazily, by the next call (its start-up, ~0.15 s, is paid before that call's clock
  starts); call :meth:`~IsolatedImageDecoder.start` to pay it ahead of time. A child found dead *between*
  requests is replaced silently: the request at hand did nothing to it;
* one request at a time per decoder (a lock); use one decoder per worker thread for parallel decoding.
  :meth:`~IsolatedImageDecoder.close` (or the context manager, or garbage collection, or interpreter exit)
  kills and reaps the child.

Cost (benchmarks/bench_hostile.py, classes ``isolated_*``): ~0.1 ms per request over in-process decoding
(the Viet Nam sample: 0.72 ms against 0.64 ms), ~1 ms more for a 2 MiB image; start-up ~0.15 s.
POSIX only (``poll`` on pipes, ``resource``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from vaxcred.errors import ImageError
from vaxcred.qr import decode as qr_decode
from vaxcred.qr import render

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_MEMORY_LIMIT", "IsolatedImageDecoder"]

#: Seconds :meth:`IsolatedImageDecoder.decode` waits for an answer by default (the 50 ms promise).
DEFAULT_DEADLINE: Final = 0.05
#: Address space the child may map (RLIMIT_AS): over every image of benchmarks/bench_hostile.py (the caps
#: of :mod:`vaxcred.qr`) the child peaks at ~100 MiB mapped, ~80 MiB resident, interpreter included.
DEFAULT_MEMORY_LIMIT: Final = 512 * 1024 * 1024
#: Seconds a new child may take to import Pillow and zxing and warm up (normally ~0.15 s).
DEFAULT_START_TIMEOUT: Final = 30.0

_HEADER: Final = struct.Struct(">I")
#: A reply is a QR code's text (at most 7,089 characters) or an error message, JSON-encoded: anything
#: longer is a protocol violation.
_MAX_REPLY: Final = 1024 * 1024
_CHUNK: Final = 1 << 16


def _timeout_error(deadline: float) -> ImageError:
    return ImageError(
        f"image decoding took longer than {deadline * 1000:.0f} ms; the decoder process was stopped",
        code="image.timeout",
    )


def _crashed_error(message: str) -> ImageError:
    return ImageError(message, code="image.decoder_crashed")


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _check_deadline(deadline: float) -> float:
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise TypeError(f"deadline must be a number of seconds, not {type(deadline).__name__}")
    if not (math.isfinite(deadline) and deadline > 0):
        raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")
    return float(deadline)


def _precheck(data: bytes, max_bytes: int) -> None:
    """:func:`vaxcred.qr.decode_image`'s steps (1) and (2), in the parent: nothing over a cap is sent."""
    if len(data) > max_bytes:
        raise ImageError(f"image has {len(data)} bytes, more than {max_bytes}", code="image.too_large")
    if not qr_decode.is_image(data):
        raise ImageError("not a PNG or JPEG image", code="image.unsupported")
    fmt, cap = ("PNG", qr_decode.MAX_PNG_BYTES) if data[:1] == b"\x89" else ("JPEG", qr_decode.MAX_JPEG_BYTES)
    if len(data) > cap:
        raise ImageError(f"{fmt} image has {len(data)} bytes, more than {cap}", code="image.too_large")


# ---------------------------------------------------------------------------------------------------------
# Parent side


class _Timeout(Exception):
    pass


class _Broken(Exception):
    pass


class _Child:
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
            raise _Timeout
        events = poller.poll(math.ceil(remaining * 1000))
        if not events:
            raise _Timeout
        return events

    def send(self, body: bytes, until: float) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(_HEADER.pack(len(body)) + body)
        while view:
            self._wait(self._writer, until)
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except OSError as e:  # EPIPE: the child is gone
                raise _Broken from e
            view = view[written:]

    def receive(self, until: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        need = _HEADER.size
        header_read = False
        while True:
            while len(buf) < need:
                self._wait(self._reader, until)
                try:
                    chunk = os.read(fd, min(_CHUNK, need - len(buf)))
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise _Broken from e
                if not chunk:  # EOF: the child died (or closed its stdout)
                    raise _Broken
                buf += chunk
            if header_read:
                return bytes(buf[_HEADER.size :])
            (length,) = _HEADER.unpack(buf)
            if length > _MAX_REPLY:
                raise _Broken(f"reply of {length} bytes")
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


def _kill_all(children: list[_Child]) -> None:
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


_CHILD_ENTRY = "import sys; from vaxcred.qr.isolated import _child_main; sys.exit(_child_main(sys.argv[1:]))"


def _child_command(memory_limit: int | None) -> tuple[list[str], dict[str, str]]:
    # -P: no current directory on sys.path; the child imports the very vaxcred the parent runs
    root = str(Path(__file__).resolve().parent.parent)
    env = {name: os.environ[name] for name in _CHILD_ENV if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    # -c, not -m: importing the package imports this module first, and runpy then warns on stderr that it
    # runs it a second time as __main__ (one RuntimeWarning line per child, on every CLI image and service worker)
    command = [sys.executable, "-P", "-c", _CHILD_ENTRY, "--memory-limit", str(memory_limit or 0)]
    return command, env


class IsolatedImageDecoder:
    """:func:`vaxcred.qr.decode_image` in a child process, killed when it overruns its deadline.

    ``deadline`` (seconds) is the default for :meth:`decode`; ``max_bytes`` can only tighten the byte caps
    of :mod:`vaxcred.qr`; ``memory_limit`` is the child's address-space limit in bytes (None: none);
    ``start_timeout`` bounds a child's start-up. Nothing runs until :meth:`start` or the first
    :meth:`decode`. Thread-safe: one request at a time.
    """

    def __init__(
        self,
        *,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = qr_decode.MAX_IMAGE_BYTES,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self._deadline = _check_deadline(deadline)
        self._start_timeout = _check_deadline(start_timeout)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, not {max_bytes!r}")
        if memory_limit is not None and (
            isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < 1
        ):
            raise ValueError(f"memory_limit must be a positive int or None, not {memory_limit!r}")
        self._max_bytes = max_bytes
        self._memory_limit = memory_limit
        self._lock = threading.Lock()
        self._closed = False
        self._live: _Child | None = None
        self._children: list[_Child] = []  # every child not reaped yet: the live one, killed ones
        self._finalizer = weakref.finalize(self, _kill_all, self._children)

    # --- life cycle ---------------------------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The default deadline of :meth:`decode`, in seconds."""
        return self._deadline

    @property
    def pid(self) -> int | None:
        """The process id of the live child, if there is one (for monitoring and tests)."""
        with self._lock:
            return self._live.proc.pid if self._live is not None else None

    def start(self) -> None:
        """Start the child now (if none is running) and wait until it is ready: pre-warming.

        Raises :class:`ImageError` ``image.decoder_crashed`` if it cannot start, :class:`ValueError` once
        closed.
        """
        with self._lock:
            self._live_child()

    def close(self) -> None:
        """Kill and reap the child; the decoder cannot be used afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            self._live = None
            self._finalizer()

    def __enter__(self) -> IsolatedImageDecoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _live_child(self) -> _Child:
        """The running child, started (and waited for) if there is none. Call with the lock held."""
        if self._closed:
            raise ValueError("the image decoder is closed")
        if self._live is not None:
            if self._live.proc.poll() is None:
                return self._live
            self._discard()  # died between requests (OOM killer, a signal): not this request's doing
        for dead in self._children[:]:  # killed on timeout, not reaped then
            dead.kill()
            self._children.remove(dead)
        command, env = _child_command(self._memory_limit)
        try:
            proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env, close_fds=True
            )
        except (OSError, ValueError) as e:
            raise _crashed_error(f"cannot start the image decoder process: {e}") from e
        child = _Child(proc)
        self._live = child
        self._children.append(child)
        try:
            reply = json.loads(child.receive(time.monotonic() + self._start_timeout))
            if not isinstance(reply, dict) or reply.get("ready") is not True:
                raise _Broken(f"unexpected greeting {reply!r}")
        except _Timeout:
            self._discard()
            raise _crashed_error(
                f"the image decoder process did not start within {self._start_timeout:g} s"
            ) from None
        except (_Broken, ValueError) as e:
            status = self._discard()
            raise _crashed_error(f"the image decoder process {_describe_exit(status)} on start-up") from e
        except BaseException:  # KeyboardInterrupt and the like: never keep a child in an unknown state
            self._discard(reap=False)
            raise
        return child

    def _discard(self, *, reap: bool = True) -> int | None:
        """Kill the live child and (``reap``) wait for it; its exit status."""
        child, self._live = self._live, None
        if child is None:
            return None
        status = child.kill(reap=reap)
        if status is not None:
            self._children.remove(child)
        return status

    # --- decoding -----------------------------------------------------------------------------------------

    def decode(self, data: bytes, *, deadline: float | None = None) -> str:
        """Return the text of the single QR code in a PNG or JPEG image, decoded in the child process.

        Waits at most ``deadline`` seconds (default: the decoder's) from sending the image. Raises
        :class:`ImageError`: the codes of :func:`vaxcred.qr.decode_image`, ``image.timeout`` (the child
        was killed) or ``image.decoder_crashed`` (it died, or could not start); :class:`TypeError` if
        ``data`` is not bytes, :class:`ValueError` for a bad ``deadline`` or once closed.
        """
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"decode() expects bytes, not {type(data).__name__}")
        limit = self._deadline if deadline is None else _check_deadline(deadline)
        data = bytes(data)
        _precheck(data, self._max_bytes)
        with self._lock:
            child = self._live_child()  # start-up, if any, is paid before the clock starts
            until = time.monotonic() + limit
            try:
                child.send(data, until)
                body = child.receive(until)
            except _Timeout:
                self._discard(reap=False)
                raise _timeout_error(limit) from None
            except _Broken as e:
                status = self._discard()
                raise _crashed_error(
                    f"the image decoder process {_describe_exit(status)} while decoding this image"
                ) from e
            except BaseException:  # interrupted mid-request: a late reply must not answer the next one
                self._discard(reap=False)
                raise
            outcome = _parse_reply(body)
            if outcome is None or outcome[2]:  # a broken reply, or the child is exiting: replace it
                self._discard()
        if outcome is None:
            raise _crashed_error("the image decoder process broke the protocol")
        text, error, _ = outcome
        if error is not None:
            raise error
        assert text is not None
        return text


def _parse_reply(body: bytes) -> tuple[str | None, ImageError | None, bool] | None:
    """(text, error, child exiting) from a reply; None if it does not follow the protocol."""
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    exiting = reply.get("exit") is True
    text = reply.get("text")
    if isinstance(text, str):
        return text, None, exiting
    code, message = reply.get("code"), reply.get("message")
    if isinstance(code, str) and code.startswith("image.") and isinstance(message, str):
        return None, ImageError(message, code=code), exiting
    return None


# ---------------------------------------------------------------------------------------------------------
# Child side: _child_main (python -c, see _child_command; python -m vaxcred.qr.isolated by hand)


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.read(fd, min(_CHUNK, size - got))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _write_frame(fd: int, reply: dict[str, Any]) -> None:
    body = json.dumps(reply).encode("ascii")
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


def _limit_resources(memory_limit: int) -> None:
    import resource

    limits = [(resource.RLIMIT_CORE, 0)]
    if memory_limit > 0:
        limits.append((resource.RLIMIT_AS, memory_limit))
    for which, wanted in limits:
        _, hard = resource.getrlimit(which)
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(which, (value, value))  # the hard limit too: code run by an exploit cannot lift it


def _warm_up() -> None:
    """Load Pillow's PNG and JPEG plugins and zxing's tables before the first real image."""
    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("L", (64, 64), 255).save(jpeg, format="JPEG")
    for sample in (render.render_png("HC1:WARMUP"), jpeg.getvalue()):
        with contextlib.suppress(ImageError):
            qr_decode.decode_image(sample)


def _decode_one(data: bytes) -> dict[str, Any]:
    try:
        return {"text": qr_decode.decode_image(data)}
    except ImageError as e:
        return {"code": e.code, "message": e.message}
    except MemoryError:
        return {"code": "image.too_large", "message": "out of memory decoding the image", "exit": True}
    except Exception as e:  # decode_image raises only ImageError: a bug, reported typed, then a new child
        return {"code": "image.corrupt", "message": f"image decoder failed: {type(e).__name__}", "exit": True}


def _child_main(argv: list[str]) -> int:
    # the protocol owns the real stdin/stdout; fd 1 becomes stderr, fd 0 /dev/null
    reader, writer = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    memory_limit = int(argv[argv.index("--memory-limit") + 1]) if "--memory-limit" in argv else 0
    _limit_resources(memory_limit)
    _warm_up()
    try:
        _write_frame(writer, {"ready": True, "pid": os.getpid()})
        while True:
            header = _read_exactly(reader, _HEADER.size)
            if header is None:
                return 0  # the parent closed the pipe (or died)
            (length,) = _HEADER.unpack(header)
            if length > qr_decode.MAX_IMAGE_BYTES:
                return 2  # the parent checks the caps: this is not our parent speaking
            data = _read_exactly(reader, length)
            if data is None:
                return 0
            reply = _decode_one(data)
            _write_frame(writer, reply)
            if reply.get("exit"):
                return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
