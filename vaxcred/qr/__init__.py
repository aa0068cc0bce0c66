"""QR codes for HC1 text (extra ``vaxcred[qr]``): render, bounded in-process decoding, isolated decoding.

* :mod:`vaxcred.qr.render` — PNG/SVG, one alphanumeric segment, ECC Q by default;
* :mod:`vaxcred.qr.decode` — :func:`decode_image` for untrusted PNG/JPEG bytes, bounded by the ``MAX_*`` caps and
  a time budget (patch settings such as ``_TIME_BUDGET`` there);
* :mod:`vaxcred.qr.isolated` — :class:`IsolatedImageDecoder`, the same decoding in a child process with a hard
  deadline and a memory limit (what the CLI and the service use).
"""

from __future__ import annotations

from vaxcred.qr.decode import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_JPEG_BYTES,
    MAX_JPEG_MARKERS,
    MAX_JPEG_MULTISCAN_BYTES,
    MAX_JPEG_MULTISCAN_PIXELS,
    MAX_JPEG_PIXELS,
    MAX_JPEG_SCANS,
    MAX_PNG_BYTES,
    MAX_PNG_CHUNKS,
    MAX_PNG_COLOUR_PIXELS,
    MAX_PNG_PIXELS,
    MAX_PNG_RAW_BYTES,
    decode_image,
    is_image,
)
from vaxcred.qr.isolated import DEFAULT_DEADLINE, DEFAULT_MEMORY_LIMIT, IsolatedImageDecoder
from vaxcred.qr.render import QR_ALPHANUMERIC, EccLevel, render_png, render_svg, write_png, write_svg

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MEMORY_LIMIT",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_JPEG_BYTES",
    "MAX_JPEG_MARKERS",
    "MAX_JPEG_MULTISCAN_BYTES",
    "MAX_JPEG_MULTISCAN_PIXELS",
    "MAX_JPEG_PIXELS",
    "MAX_JPEG_SCANS",
    "MAX_PNG_BYTES",
    "MAX_PNG_CHUNKS",
    "MAX_PNG_COLOUR_PIXELS",
    "MAX_PNG_PIXELS",
    "MAX_PNG_RAW_BYTES",
    "QR_ALPHANUMERIC",
    "EccLevel",
    "IsolatedImageDecoder",
    "decode_image",
    "is_image",
    "render_png",
    "render_svg",
    "write_png",
    "write_svg",
]
