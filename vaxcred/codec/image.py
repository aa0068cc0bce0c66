"""(0) input: whether untrusted bytes are an image (PNG or JPEG magic bytes); nothing is parsed.

This is core (no extra): :func:`vaxcred.verify.verify` tells an image from HC1 text with it before it
imports :mod:`vaxcred.qr` (extra ``qr``), which decodes the pixels.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["ImageFormat", "is_image", "sniff_image"]

ImageFormat = Literal["PNG", "JPEG"]

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"


def sniff_image(data: bytes) -> ImageFormat | None:
    """``"PNG"`` or ``"JPEG"`` when ``data`` starts with that format's magic bytes, else ``None``."""
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    return None


def is_image(data: bytes) -> bool:
    """Whether ``data`` starts like a PNG or JPEG file (magic bytes only; nothing is parsed)."""
    return isinstance(data, bytes | bytearray) and sniff_image(bytes(data[:8])) is not None
