"""Decode untrusted PNG/JPEG images to the text of their one QR code (DCC.md §10; SECURITY.md #17).

:func:`decode_image` treats every image as hostile, and answers within ~50 ms on one core (the
caps below are set by measurement: benchmarks/bench_hostile.py)::

    (1) byte cap                       len(data) <= max_bytes, the format's cap -> image.too_large
    (2) sniff magic bytes              PNG or JPEG, whatever the file is named  -> image.unsupported
    (3) walk the container             <= 1024 JPEG markers, <= 16 scans, SOF0-2;
                                       <= 2048 PNG chunks, a sane IHDR          -> corrupt / too_large / unsupported
    (4) open the header, pixel caps    by format: JPEG 40 MP (progressive 2 MP),
                                       PNG 16 MP gray/palette, 5 MP colour       -> image.too_large
    (5) decode pixels, flatten to "L"  JPEG scaled by libjpeg (1/2-1/8), PNG
                                       box-reduced, to <= 1.2 MP; alpha over
                                       white, 16-bit scaled                      -> image.corrupt
    (6) zxing, QR only, retry passes   exactly one symbol; passes after the
                                       first only while the time budget lasts    -> image.no_qr / multiple_qr

Every failure is an :class:`~vaxcred.errors.ImageError`; nothing Pillow or zxing raises escapes.
Pillow's own bomb check (warning above ``Image.MAX_IMAGE_PIXELS``, error at twice that) stays in place
and is mapped to ``image.too_large`` too; this module never changes Pillow's global settings.

Known limit: zxing-cpp's detector pairs up every candidate finder pattern, so an image tiled with thousands
of them (a crafted 1 MP page) keeps its first pass busy for ~0.3 s; no cap that still reads photos
prevents that in-process (see benchmarks/bench_hostile.py, class ``qr_finder_grid``).
"""

from __future__ import annotations

import io
import math
import re
import time
import warnings
from typing import Final

from vaxcred._extras import requires_extra
from vaxcred.codec.image import is_image, sniff_image
from vaxcred.errors import ImageError

with requires_extra("qr", feature="vaxcred.qr"):
    import zxingcpp
    from PIL import Image

__all__ = [
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
    "decode_image",
    "is_image",
]

# Caps for :func:`decode_image`. They bound its time as well as its memory (measured with
# benchmarks/bench_hostile.py: images at these caps are decoded, or refused, within 50 ms on one core, but
# for the finder-pattern grids of the module docstring).
# Decoding costs up to ~20 ms per MiB of baseline JPEG entropy-coded data, ~40 ms per MiB of progressive
# JPEG data and ~5 ms per MiB of incompressible PNG data, so the byte caps carry most of the bound; the
# pixel caps bound what a tiny, highly compressible file expands to.
#: JPEG byte cap: what a 12 MP phone photo of a document weighs at ordinary quality, or a scanner app's
#: page; re-encode or shrink bigger files before verifying.
MAX_JPEG_BYTES: Final = 2 * 1024 * 1024
#: Pixel cap of a single-scan (baseline or extended) JPEG. libjpeg decodes it scaled down in the DCT domain
#: (1/2, 1/4, 1/8), so each pixel costs little; 40 MP lets any phone camera's photo through.
MAX_JPEG_PIXELS: Final = 40_000_000
#: Pixel and byte caps of a progressive or multi-scan JPEG: its coefficients are buffered at full size
#: (2 bytes each per component, whatever the output scale), every scan revisits every block, and libjpeg
#: decodes progressive data about 3x slower than baseline.
MAX_JPEG_MULTISCAN_PIXELS: Final = 2_000_000
MAX_JPEG_MULTISCAN_BYTES: Final = 512 * 1024
#: Scans a JPEG may have (libjpeg's progressive scripts use 6 for gray, 10 for colour); each costs a pass
#: over the coefficient buffer and may be a few bytes long.
MAX_JPEG_SCANS: Final = 16
#: Markers (segments and scans) a JPEG may have up to its first EOI.
MAX_JPEG_MARKERS: Final = 1024
#: PNG byte cap: a phone screenshot of a QR code is well under 1 MiB.
MAX_PNG_BYTES: Final = 2 * 1024 * 1024
#: PNG pixel cap (no scaled decoding: every pixel is inflated, unfiltered and converted).
MAX_PNG_PIXELS: Final = 16_000_000
#: Pixel cap of a PNG with colour or an alpha channel (RGB, gray+alpha, RGBA), which Pillow holds at 4 bytes
#: a pixel (palette and gray PNGs take MAX_PNG_PIXELS): a 1440x3200 phone screenshot (4.6 MP) passes. An RGB
#: or 16-bit gray PNG with a transparent colour key (tRNS) is converted to RGBA as well: half this.
MAX_PNG_COLOUR_PIXELS: Final = 5_000_000
#: Bytes a PNG may inflate to (its rows with their filter bytes), ~1 ms per MB: 16-bit and colour pixels
#: cost more. A 1440x3200 RGB phone screenshot inflates to 13.8 MB.
MAX_PNG_RAW_BYTES: Final = 16_000_000
#: Chunks a PNG may have (Pillow reads each in Python): libpng's 8 KiB IDAT chunks fill 2 MiB with 256.
MAX_PNG_CHUNKS: Final = 2048
#: Longest side an image may have, either format (Pillow's PNG decoder slows down on very long rows, and
#: zxing refuses sides over 65,535): a 16:9 40 MP photo is 8,433 pixels wide.
MAX_IMAGE_SIDE: Final = 16_384
#: Default byte cap for :func:`decode_image`, checked before any parsing (the larger format cap).
MAX_IMAGE_BYTES: Final = max(MAX_JPEG_BYTES, MAX_PNG_BYTES)
#: Default pixel cap for :func:`decode_image` (the larger format cap); well under Pillow's
#: ``MAX_IMAGE_PIXELS`` (89,478,485), as SECURITY.md #17 asks.
MAX_IMAGE_PIXELS: Final = max(MAX_JPEG_PIXELS, MAX_PNG_PIXELS)

#: The QR decoder works on at most this many pixels: larger images are scaled down first (a QR code that
#: fills a third of a 12 MP photo's width keeps about 4 pixels per module).
_WORK_PIXELS: Final = 1_200_000
#: Images up to this size also get passes over a 2x upscaled copy (blurred, noisy, small modules).
_UPSCALE_MAX_PIXELS: Final = 300_000
#: Decoder passes after the first start only if they are expected to end within this time (seconds) of
#: the call; the first pass always runs.
_TIME_BUDGET: Final = 0.040


def _too_large(message: str) -> ImageError:
    return ImageError(message, code="image.too_large")


def _corrupt(message: str) -> ImageError:
    return ImageError(message, code="image.corrupt")


# --- (3) structure: a bounded walk over the container, before any parser sees the bytes ---------------

#: A JPEG marker as libjpeg finds one: 0xFF, then a code that is not a stuffed zero, a restart marker
#: (both occur inside entropy-coded data) or a fill byte. Searching for it skips entropy-coded data at C speed.
_JPEG_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_JPEG_SOF_SUPPORTED: Final = frozenset({0xC0, 0xC1, 0xC2})  # Huffman baseline, extended, progressive


def _jpeg_structure(data: bytes) -> tuple[int, int]:
    """The frame type (SOFn code) and number of scans, walking every marker up to the first EOI.

    Marker segments are jumped over by their length, entropy-coded data is skipped by the regex, so a
    file costs one iteration per marker; more than :data:`MAX_JPEG_MARKERS` of them is refused (Pillow
    walks header segments in Python, one by one). Running out of data ends the walk quietly: truncated
    files are the parsers' business.
    """
    sof = 0
    scans = 0
    pos = 2  # after SOI
    end = len(data)
    for _ in range(MAX_JPEG_MARKERS):
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            break
        code = data[match.start() + 1]
        pos = match.end()
        if code == 0xD9:  # EOI: what follows (an MPO's next picture, a motion photo's video) is not read
            break
        if code in (0x01, 0xD8):  # TEM, a stray SOI: no length
            continue
        if pos + 2 > end:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise _corrupt(f"JPEG marker 0xFF{code:02X} has a bad length ({length})")
        if code in _JPEG_SOF and not sof:
            sof = code
        elif code == 0xDA:
            if not sof:
                raise _corrupt("JPEG scan before any frame header")
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _too_large(f"JPEG has more than {MAX_JPEG_SCANS} scans")
        pos += length
    else:
        raise _corrupt(f"JPEG has more than {MAX_JPEG_MARKERS} markers")
    if sof and sof not in _JPEG_SOF_SUPPORTED:
        raise ImageError(
            f"JPEG frame type SOF{sof - 0xC0} (arithmetic-coded, lossless or hierarchical) is not supported",
            code="image.unsupported",
        )
    return sof, scans


#: PNG colour type -> samples per pixel (ISO/IEC 15948 §11.2.2)
_PNG_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_header(data: bytes) -> tuple[int, int, int]:
    """Colour type, bit depth and the bytes the PNG inflates to (from IHDR), once its chunks are counted.

    Pillow reads each chunk in Python, so a file of a million empty chunks is slow long before it is big;
    the walk here only reads lengths and jumps, and stops at IEND or where the data runs out.
    """
    end = len(data)
    if end < 33 or data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        raise _corrupt("PNG does not start with a 13-byte IHDR chunk")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlace = data[24], data[25], data[28]
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16) or interlace > 1:
        raise _corrupt(f"PNG header has bit depth {depth}, colour type {colour}, interlace {interlace}")
    pos = 8
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 8 > end or data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    else:
        raise _corrupt(f"PNG has more than {MAX_PNG_CHUNKS} chunks")
    row = (width * channels * depth + 7) // 8 + 1  # + the filter-type byte
    return colour, depth, height * row


# --- (4)-(5) pixels -------------------------------------------------------------------------------------


def _palette_over_white(im: Image.Image) -> list[int] | None:
    """For a palette image with transparency: the gray level of each index, composited over white."""
    rgb = im.getpalette("RGB") or []
    count = min(256, len(rgb) // 3)
    transparency = im.info.get("transparency")
    if isinstance(transparency, int):
        alpha = [0 if i == transparency else 255 for i in range(count)]
    elif isinstance(transparency, bytes):
        alpha = [transparency[i] if i < len(transparency) else 255 for i in range(count)]
    else:
        return None
    lut = [0] * 256
    for i in range(count):
        r, g, b = rgb[3 * i : 3 * i + 3]
        y = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16  # Pillow's RGB -> L
        lut[i] = 255 - ((255 - y) * alpha[i] + 127) // 255
    return lut


def _to_gray(im: Image.Image) -> Image.Image:
    """Flatten to 8-bit grayscale: transparency over white, 16-bit samples scaled rather than clipped."""
    transparency = im.info.get("transparency")
    if im.mode == "P" and transparency is not None:
        lut = _palette_over_white(im)  # 256 composites instead of one per pixel
        if lut is not None:
            return im.point(lut, "L")
    if im.mode in ("1", "L") and isinstance(transparency, int) and 0 <= transparency <= 255:
        gray = im if im.mode == "L" else im.convert("L")  # one gray level is transparent (tRNS): white
        level = (255 if transparency else 0) if im.mode == "1" else transparency
        return gray.point([255 if v == level else v for v in range(256)])
    if im.mode in ("PA", "La", "RGBa") or (im.mode not in ("RGBA", "LA") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        # gray pasted on white through its alpha: 8-bit passes, 3x faster than alpha_composite in RGBA
        page = Image.new("L", im.size, 255)
        page.paste(im.convert("L"), (0, 0), im.getchannel("A"))
        return page
    if im.mode == "I;16":  # 16-bit PNG gray: convert("L") clips at 255 (white page), so scale first
        return im.point(lambda v: v * (1 / 256)).convert("L")
    if im.mode.startswith("I"):
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode == "L":
        return im
    return im.convert("L")


def _shrink(gray: Image.Image) -> Image.Image:
    """Box-filter ``gray`` down by a whole factor until it has at most _WORK_PIXELS pixels."""
    pixels = gray.width * gray.height
    if pixels <= _WORK_PIXELS:
        return gray
    factor = math.isqrt(-(-pixels // _WORK_PIXELS))
    while (-(-gray.width // factor)) * (-(-gray.height // factor)) > _WORK_PIXELS:
        factor += 1
    return gray.reduce(factor)


def _draft_scale(width: int, height: int) -> int:
    """The DCT scaling (1, 2, 4 or 8) libjpeg should decode at: the least that fits _WORK_PIXELS."""
    for scale in (1, 2, 4):
        if (-(-width // scale)) * (-(-height // scale)) <= _WORK_PIXELS:
            return scale
    return 8


def _load_gray(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Steps (3)-(5). Pillow exceptions propagate to :func:`_open_checked`, which maps them."""
    scans = colour = depth = raw = 0
    if fmt == "JPEG":
        _, scans = _jpeg_structure(data)
    else:
        colour, depth, raw = _png_header(data)
    with Image.open(io.BytesIO(data), formats=(fmt,)) as im:
        width, height = im.size  # from the header; no pixel decoded yet
        if width < 1 or height < 1:
            raise _corrupt(f"image has no pixels ({width}x{height})")
        if max(width, height) > MAX_IMAGE_SIDE:
            raise _too_large(f"image is {width}x{height} pixels, a side longer than {MAX_IMAGE_SIDE}")
        if fmt == "JPEG":
            multi_scan = scans > 1 or bool(im.info.get("progressive"))
            cap = min(max_pixels, MAX_JPEG_MULTISCAN_PIXELS if multi_scan else MAX_JPEG_PIXELS)
            if multi_scan and len(data) > MAX_JPEG_MULTISCAN_BYTES:
                raise _too_large(
                    f"progressive/multi-scan JPEG has {len(data)} bytes, more than {MAX_JPEG_MULTISCAN_BYTES}"
                )
        else:
            # palette and gray pixels stay 1 byte each (16-bit gray: 2); colour ones take 4, and a colour
            # key (tRNS in an RGB or 16-bit gray PNG) costs a conversion to RGBA on top
            keyed = colour in (0, 2) and "transparency" in im.info and (colour == 2 or depth == 16)
            if keyed:
                cap = min(max_pixels, MAX_PNG_COLOUR_PIXELS // 2)
            else:
                cap = min(max_pixels, MAX_PNG_PIXELS if colour in (0, 3) else MAX_PNG_COLOUR_PIXELS)
        if width * height > cap:
            kind = "image"
            if cap < max_pixels:
                kind = "progressive/multi-scan JPEG" if fmt == "JPEG" else f"PNG of colour type {colour}"
            raise _too_large(f"{kind} has {width}x{height} pixels, more than {cap}")
        if raw > MAX_PNG_RAW_BYTES:
            raise _too_large(f"PNG inflates to {raw} bytes, more than {MAX_PNG_RAW_BYTES}")
        if fmt == "JPEG":
            # libjpeg scales by 1/2, 1/4 or 1/8 in the DCT domain and emits grayscale directly: a 12 MP photo
            # is decoded straight to 0.75 MP, never held at full size
            scale = _draft_scale(width, height)
            im.draft("L", (max(1, width // scale), max(1, height // scale)))
            if im.width * im.height > _WORK_PIXELS and scale > 1:  # draft refused: do not decode in full
                raise _too_large(f"JPEG of {width}x{height} pixels cannot be decoded scaled down")
        im.load()
        return _shrink(_to_gray(im))


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
            raise _too_large(f"image is a decompression bomb: {e}") from e
        except Exception as e:  # hostile input: OSError, ValueError, SyntaxError, struct.error, EOFError…
            raise _corrupt(f"cannot read {fmt} image: {type(e).__name__}: {e}") from e


# --- (6) QR codes ---------------------------------------------------------------------------------------

# Decoder passes, cheapest first; the first that finds any QR code decides. Other binarizers help with
# uneven light and blur; an upscaled copy of a small image helps with blurred, noisy modules. zxing also
# tries downscaled copies itself; rotation is off (the QR detector does not depend on orientation) and
# inverted symbols are looked for in the first pass only (each halves a pass's speed).
_QR_ONLY: Final = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # not Micro QR or rMQR
_PASSES: Final[tuple[tuple[zxingcpp.Binarizer, bool], ...]] = (
    (zxingcpp.Binarizer.LocalAverage, True),
    (zxingcpp.Binarizer.GlobalHistogram, False),
    (zxingcpp.Binarizer.FixedThreshold, False),
)


def _find_qr_codes(gray: Image.Image, deadline: float) -> tuple[list[zxingcpp.Barcode], int]:
    """The valid QR codes of the first pass that finds any, and how many passes were left out.

    The first pass always runs. Each later one runs only if, at the speed of the passes so far (seconds
    per pixel), it would end before ``deadline``: a pass costs roughly its pixel count times a factor set
    by the content, so a noisy or huge image gets one pass, and a clean small one all of them.
    """
    plan: list[tuple[Image.Image | None, zxingcpp.Binarizer, bool]] = [(gray, b, inv) for b, inv in _PASSES]
    if gray.width * gray.height <= _UPSCALE_MAX_PIXELS:
        plan += [(None, b, inv) for b, inv in _PASSES]  # None: the 2x copy, made when first needed
    upscaled: Image.Image | None = None
    spent = 0.0
    spent_pixels = 0
    for done, (image, binarizer, invert) in enumerate(plan):
        pixels = gray.width * gray.height * (4 if image is None else 1)
        if done and time.perf_counter() + spent / spent_pixels * pixels > deadline:
            return [], len(plan) - done
        start = time.perf_counter()
        if image is None:
            if upscaled is None:
                upscaled = gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.BICUBIC)
            image = upscaled
        found = zxingcpp.read_barcodes(
            image,
            formats=_QR_ONLY,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer,
            try_rotate=False,
            try_invert=invert,
        )
        spent += time.perf_counter() - start
        spent_pixels += pixels
        found = [b for b in found if b.valid]
        if found:
            return found, 0
    return [], 0


def decode_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """Return the text of the single QR code in a PNG or JPEG image (photos and scans included).

    The format is sniffed from the bytes, never taken from a file name. ``max_bytes`` and ``max_pixels``
    can only tighten the per-format caps (:data:`MAX_JPEG_BYTES`, :data:`MAX_PNG_PIXELS`, …), which bound
    the decoding time. Raises :class:`ImageError` with code ``image.too_large`` (over a byte, pixel or scan
    cap, or a decompression bomb), ``image.unsupported`` (neither PNG nor a Huffman-coded JPEG),
    ``image.corrupt`` (unreadable), ``image.no_qr`` or ``image.multiple_qr``; :class:`TypeError` if ``data``
    is not bytes.
    """
    deadline = time.perf_counter() + _TIME_BUDGET
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"decode_image() expects bytes, not {type(data).__name__}")
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive")
    # (1) byte cap, before anything looks inside
    if len(data) > max_bytes:
        raise _too_large(f"image has {len(data)} bytes, more than {max_bytes}")
    data = bytes(data)
    # (2) sniff, then the format's own byte cap
    fmt = sniff_image(data)
    if fmt is None:
        raise ImageError("not a PNG or JPEG image", code="image.unsupported")
    cap = MAX_JPEG_BYTES if fmt == "JPEG" else MAX_PNG_BYTES
    if len(data) > cap:
        raise _too_large(f"{fmt} image has {len(data)} bytes, more than {cap}")
    # (3)-(5) structure, header, pixel caps, pixels (scaled down to at most _WORK_PIXELS)
    gray = _open_checked(data, fmt, max_pixels)
    # (6) QR codes
    try:
        found, skipped = _find_qr_codes(gray, deadline)
    except Exception as e:  # zxing reports unusable input with ValueError/RuntimeError; never let it escape
        raise _corrupt(f"QR decoder failed: {type(e).__name__}: {e}") from e
    if not found:
        why = f" (time budget spent: {skipped} decoder passes left out)" if skipped else ""
        raise ImageError(f"no QR code found in the image{why}", code="image.no_qr")
    if len(found) > 1:
        raise ImageError(f"{len(found)} QR codes in the image; expected one", code="image.multiple_qr")
    return found[0].text
