"""QR codes for HC1 text: render (PNG, SVG) and decode untrusted images (DCC.md §1, §10; SECURITY.md #17).

Render: the *whole* ``HC1:…`` string goes into one alphanumeric-mode segment (Base45's alphabet plus ``HC1:``
is exactly the QR alphanumeric set), ECC level Q by default, square modules, the smallest version that fits.
qrcode's optimiser would split the text into modes itself, so the segment is built by hand.

Decoding lives in :mod:`vaxcred.qr.decode` (in-process, bounded) and :mod:`vaxcred.qr.isolated` (a child process).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final, Literal

from vaxcred._extras import requires_extra
from vaxcred.codec.prefix import MAX_HC1_CHARS

with requires_extra("qr", feature="vaxcred.qr"):
    import qrcode
    import qrcode.util
    from qrcode.exceptions import DataOverflowError
    from qrcode.image.pil import PilImage
    from qrcode.image.svg import SvgPathFillImage

__all__ = ["QR_ALPHANUMERIC", "EccLevel", "render_png", "render_svg", "write_png", "write_svg"]

EccLevel = Literal["L", "M", "Q", "H"]

#: The 45 characters QR alphanumeric mode encodes (ISO/IEC 18004 Table 5) = the Base45 alphabet (RFC 9285).
QR_ALPHANUMERIC: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALPHANUMERIC_SET: Final = frozenset(QR_ALPHANUMERIC)

_ECC_LEVELS: Final = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


# ---------------------------------------------------------------------------------------------------------
# Render


def _make_qr(hc1: str, ecc: str, box_size: int, border: int) -> qrcode.QRCode:
    """Build the QR symbol: one alphanumeric segment, the given ECC level, the smallest version that fits."""
    if not isinstance(hc1, str):
        raise TypeError(f"expected str, not {type(hc1).__name__}")
    if not hc1:
        raise ValueError("nothing to encode: empty string")
    if len(hc1) > MAX_HC1_CHARS:
        raise ValueError(f"{len(hc1)} characters: more than a QR code holds ({MAX_HC1_CHARS})")
    bad = sorted(set(hc1) - _ALPHANUMERIC_SET)
    if bad:
        raise ValueError(f"characters outside the QR alphanumeric set: {''.join(bad)!r}")
    level = _ECC_LEVELS.get(ecc)
    if level is None:
        raise ValueError(f"ecc must be one of L, M, Q, H, not {ecc!r}")
    if isinstance(box_size, bool) or not isinstance(box_size, int) or box_size < 1:
        raise ValueError(f"box_size must be a positive int, not {box_size!r}")
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be a non-negative int, not {border!r}")

    qr = qrcode.QRCode(version=None, error_correction=level, box_size=box_size, border=border)
    # A ready-made QRData is appended as is: no mode optimisation, so the whole text is one segment.
    qr.add_data(qrcode.util.QRData(hc1.encode("ascii"), mode=qrcode.util.MODE_ALPHA_NUM))
    try:
        qr.make(fit=True)
    except (DataOverflowError, ValueError) as e:  # qrcode 8 reports some overflows as "Invalid version (41)"
        if "glog" not in str(e):
            raise ValueError(f"{len(hc1)} characters do not fit a QR code at ECC level {ecc}") from e
        # python-qrcode#330 (qrcode <= 8.2): Reed-Solomon coding crashes with glog(0) on an all-zero data
        # block; real HC1 payloads (compressed, high entropy) do not produce one. Say so, not "too long".
        raise ValueError(
            f"qrcode cannot encode this text (an all-zero data block, python-qrcode#330) at ECC level {ecc}"
        ) from e
    return qr


def render_png(hc1: str, *, ecc: EccLevel = "Q", box_size: int = 8, border: int = 4) -> bytes:
    """Return a 1-bit PNG of ``hc1`` as a QR code (alphanumeric mode, ``ecc`` level, square modules).

    ``box_size`` is pixels per module, ``border`` the quiet zone in modules (4 is the standard minimum).
    Raises :class:`ValueError` for characters outside the QR alphanumeric set, more than 4,296 characters,
    text too long for the ECC level, or a bad ``ecc``/``box_size``/``border``.
    """
    qr = _make_qr(hc1, ecc, box_size, border)
    buf = io.BytesIO()
    qr.make_image(image_factory=PilImage).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render_svg(hc1: str, *, ecc: EccLevel = "Q", box_size: int = 4, border: int = 4) -> bytes:
    """Return a standalone UTF-8 SVG document of ``hc1`` as a QR code, white background, one path.

    Sizes are in millimetres, ``box_size`` tenths of a millimetre per module: the default 0.4 mm puts the
    versions a DCC needs (about 10–20) inside the recommended 35–60 mm diagonal (DCC.md §1).
    Raises :class:`ValueError` as :func:`render_png` does.
    """
    qr = _make_qr(hc1, ecc, box_size, border)
    svg: bytes = qr.make_image(image_factory=SvgPathFillImage).to_string(
        encoding="UTF-8", xml_declaration=True
    )
    return svg


def write_png(path: str | Path, hc1: str, *, ecc: EccLevel = "Q", box_size: int = 8, border: int = 4) -> None:
    """Write :func:`render_png`'s output to ``path``."""
    Path(path).write_bytes(render_png(hc1, ecc=ecc, box_size=box_size, border=border))


def write_svg(path: str | Path, hc1: str, *, ecc: EccLevel = "Q", box_size: int = 4, border: int = 4) -> None:
    """Write :func:`render_svg`'s output to ``path``."""
    Path(path).write_bytes(render_svg(hc1, ecc=ecc, box_size=box_size, border=border))
