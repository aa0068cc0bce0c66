"""The child side of :class:`~vaxcred.qr.isolated.IsolatedImageDecoder`: the code that runs in the decoder
process (``python -P -c``, see :mod:`vaxcred.qr.isolated_pipes`), and the frame both sides speak.

Frames on the child's stdin/stdout are a 4-byte big-endian length and a body: the image bytes one way, a
small JSON object the other (``{"text": ...}`` or ``{"code": ..., "message": ...}``, ``"exit": true`` when the
child ends after this reply). The child moves its real stdout to a private descriptor first (a stray print
cannot corrupt the protocol), ignores SIGINT, limits its own resources before it reads any input, warms up,
says ``ready`` and loops, one request at a time, until its stdin closes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
from typing import Any, Final

from vaxcred.errors import ImageError
from vaxcred.qr import decode as qr_decode
from vaxcred.qr import render

#: the frame header: the body's length, 4 bytes big-endian
HEADER: Final = struct.Struct(">I")
#: largest read at once from a pipe
CHUNK: Final = 1 << 16


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.read(fd, min(CHUNK, size - got))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _write_frame(fd: int, reply: dict[str, Any]) -> None:
    body = json.dumps(reply).encode("ascii")
    view = memoryview(HEADER.pack(len(body)) + body)
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


def child_main(argv: list[str]) -> int:
    """Serve decode requests on stdin/stdout until stdin closes; the exit status."""
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
            header = _read_exactly(reader, HEADER.size)
            if header is None:
                return 0  # the parent closed the pipe (or died)
            (length,) = HEADER.unpack(header)
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
