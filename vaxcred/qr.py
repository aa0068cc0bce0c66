"""QR codes for HC1 text: render (PNG, SVG) and decode untrusted images (DCC.md §1, §10; SECURITY.md #17).

Render: the *whole* ``HC1:…`` string goes into one alphanumeric-mode segment (Base45's alphabet plus ``HC1:``
is exactly the QR alphanumeric set), ECC level Q by default, square modules, the smallest version that fits.
qrcode's optimiser would split the text into modes itself, so the segment is built by hand.

Decode (:func:`decode_image`) treats every image as hostile::

    (1) byte cap                       len(data) <= max_bytes                  -> image.too_large
    (2) sniff magic bytes              PNG or JPEG, whatever the file is named -> image.unsupported
    (3) open the header only           Image.open(..., formats=(sniffed,))     -> image.corrupt
    (4) pixel cap before decoding      width * height <= max_pixels            -> image.too_large
    (5) decode pixels, flatten to "L"  alpha over white, 16-bit scaled         -> image.corrupt
    (6) zxing, QR only, retry passes   exactly one symbol                      -> image.no_qr / multiple_qr

Every failure is an :class:`~vaxcred.errors.ImageError`; nothing Pillow or zxing raises escapes.
Pillow's own bomb check (warning above ``Image.MAX_IMAGE_PIXELS``, error at twice that) stays in place
and is mapped to ``image.too_large`` too; this module never changes Pillow's global settings.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Final, Literal

import qrcode
import qrcode.util
import zxingcpp
from PIL import Image
from qrcode.exceptions import DataOverflowError
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathFillImage

from vaxcred.codec.prefix import MAX_HC1_CHARS
from vaxcred.errors import ImageError

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "QR_ALPHANUMERIC",
    "EccLevel",
    "decode_image",
    "is_image",
    "render_png",
    "render_svg",
    "write_png",
    "write_svg",
]

EccLevel = Literal["L", "M", "Q", "H"]

#: The 45 characters QR alphanumeric mode encodes (ISO/IEC 18004 Table 5) = the Base45 alphabet (RFC 9285).
QR_ALPHANUMERIC: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALPHANUMERIC_SET: Final = frozenset(QR_ALPHANUMERIC)

#: Default byte cap for :func:`decode_image`, checked before any parsing.
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
#: Default pixel cap for :func:`decode_image` (40 MP: a 12 MP phone photo passes, a bomb does not); well under
#: Pillow's ``MAX_IMAGE_PIXELS`` (89,478,485), as SECURITY.md #17 asks.
MAX_IMAGE_PIXELS: Final = 40_000_000

_ECC_LEVELS: Final = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"


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


# ---------------------------------------------------------------------------------------------------------
# Decode


def _sniff(data: bytes) -> Literal["PNG", "JPEG"] | None:
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    return None


def is_image(data: bytes) -> bool:
    """Whether ``data`` starts like a PNG or JPEG file (magic bytes only; nothing is parsed)."""
    return isinstance(data, bytes | bytearray) and _sniff(bytes(data[:8])) is not None


def _to_gray(im: Image.Image) -> Image.Image:
    """Flatten to 8-bit grayscale: transparency over white, 16-bit samples scaled rather than clipped."""
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if im.mode.startswith("I"):  # 16-bit PNG gray: convert("L") clips at 255 (white page), so scale first
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode == "L":
        return im
    return im.convert("L")


def _load_gray(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Steps (3)-(5). Pillow exceptions propagate to :func:`_open_checked`, which maps them."""
    with Image.open(io.BytesIO(data), formats=(fmt,)) as im:
        width, height = im.size  # from the header; no pixel decoded yet
        if width < 1 or height < 1:
            raise ImageError(f"image has no pixels ({width}x{height})", code="image.corrupt")
        if width * height > max_pixels:
            raise ImageError(
                f"image has {width}x{height} pixels, more than {max_pixels}", code="image.too_large"
            )
        if fmt == "JPEG":
            im.draft("L", im.size)  # let libjpeg emit grayscale directly (no resize: size is unchanged)
        im.load()
        return _to_gray(im)


def _open_checked(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    # catch_warnings swaps process-wide filter state (not thread-safe before Python 3.14's context-aware
    # warnings); it is still the only way to turn Pillow's DecompressionBombWarning into an error without
    # touching Image.MAX_IMAGE_PIXELS. Pillow's complaints about a file's content (corrupt EXIF, odd chunks,
    # palettes) are UserWarnings and noise here; other categories (deprecations) follow the caller's filters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _load_gray(data, fmt, max_pixels)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"image is a decompression bomb: {e}", code="image.too_large") from e
        except Exception as e:  # hostile input: OSError, ValueError, SyntaxError, struct.error, EOFError…
            raise ImageError(f"cannot read {fmt} image: {type(e).__name__}: {e}", code="image.corrupt") from e


# Decoder passes, cheapest first; the first that finds any QR code decides. zxing's defaults already try
# rotations, inverted symbols and downscaled copies; other binarizers help with uneven light and blur.
_QR_ONLY: Final = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # not Micro QR or rMQR
_PASSES: Final[tuple[zxingcpp.Binarizer, ...]] = (
    zxingcpp.Binarizer.LocalAverage,
    zxingcpp.Binarizer.GlobalHistogram,
    zxingcpp.Binarizer.FixedThreshold,
)


def _find_qr_codes(gray: Image.Image) -> list[zxingcpp.Barcode]:
    candidates: list[Image.Image] = [gray]
    if gray.width * gray.height <= 1_000_000:  # small images: an upscaled copy helps blurred, noisy modules
        candidates.append(gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.BICUBIC))
    for image in candidates:
        for binarizer in _PASSES:
            found = zxingcpp.read_barcodes(
                image,
                formats=_QR_ONLY,
                text_mode=zxingcpp.TextMode.Plain,
                binarizer=binarizer,
            )
            found = [b for b in found if b.valid]
            if found:
                return found
    return []


def decode_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """Return the text of the single QR code in a PNG or JPEG image (photos and scans included).

    The format is sniffed from the bytes, never taken from a file name. Raises :class:`ImageError` with
    code ``image.too_large`` (over ``max_bytes`` bytes or ``max_pixels`` pixels, or a decompression bomb),
    ``image.unsupported`` (neither PNG nor JPEG), ``image.corrupt`` (unreadable), ``image.no_qr`` or
    ``image.multiple_qr``; :class:`TypeError` if ``data`` is not bytes.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"decode_image() expects bytes, not {type(data).__name__}")
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive")
    # (1) byte cap, before anything looks inside
    if len(data) > max_bytes:
        raise ImageError(f"image has {len(data)} bytes, more than {max_bytes}", code="image.too_large")
    data = bytes(data)
    # (2) sniff
    fmt = _sniff(data)
    if fmt is None:
        raise ImageError("not a PNG or JPEG image", code="image.unsupported")
    # (3)-(5) header, pixel cap, pixels
    gray = _open_checked(data, fmt, max_pixels)
    # (6) QR codes
    try:
        found = _find_qr_codes(gray)
    except Exception as e:  # zxing reports unusable input with ValueError/RuntimeError; never let it escape
        raise ImageError(f"QR decoder failed: {type(e).__name__}: {e}", code="image.corrupt") from e
    if not found:
        raise ImageError("no QR code found in the image", code="image.no_qr")
    if len(found) > 1:
        raise ImageError(f"{len(found)} QR codes in the image; expected one", code="image.multiple_qr")
    return found[0].text
