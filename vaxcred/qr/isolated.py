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

* the child is ``python -P -c`` running :func:`~vaxcred.qr.isolated_child.child_main` (``subprocess``, not ``multiprocessing``: no pickling,
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

import json
import math
import signal
import subprocess
import sys
import threading
import time
import weakref
from types import TracebackType
from typing import Final

from vaxcred.errors import ImageError
from vaxcred.qr import decode as qr_decode
from vaxcred.qr.isolated_child import child_main
from vaxcred.qr.isolated_pipes import Broken, Child, Timeout, child_command, kill_all

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_MEMORY_LIMIT", "IsolatedImageDecoder"]

#: Seconds :meth:`IsolatedImageDecoder.decode` waits for an answer by default (the 50 ms promise).
DEFAULT_DEADLINE: Final = 0.05
#: Address space the child may map (RLIMIT_AS): over every image of benchmarks/bench_hostile.py (the caps
#: of :mod:`vaxcred.qr`) the child peaks at ~100 MiB mapped, ~80 MiB resident, interpreter included.
DEFAULT_MEMORY_LIMIT: Final = 512 * 1024 * 1024
#: Seconds a new child may take to import Pillow and zxing and warm up (normally ~0.15 s).
DEFAULT_START_TIMEOUT: Final = 30.0


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
        self._live: Child | None = None
        self._children: list[Child] = []  # every child not reaped yet: the live one, killed ones
        self._finalizer = weakref.finalize(self, kill_all, self._children)

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

    def _live_child(self) -> Child:
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
        command, env = child_command(self._memory_limit)
        try:
            proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env, close_fds=True
            )
        except (OSError, ValueError) as e:
            raise _crashed_error(f"cannot start the image decoder process: {e}") from e
        child = Child(proc)
        self._live = child
        self._children.append(child)
        try:
            reply = json.loads(child.receive(time.monotonic() + self._start_timeout))
            if not isinstance(reply, dict) or reply.get("ready") is not True:
                raise Broken(f"unexpected greeting {reply!r}")
        except Timeout:
            self._discard()
            raise _crashed_error(
                f"the image decoder process did not start within {self._start_timeout:g} s"
            ) from None
        except (Broken, ValueError) as e:
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
            except Timeout:
                self._discard(reap=False)
                raise _timeout_error(limit) from None
            except Broken as e:
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


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
