"""Tests for vaxcred.qr: rendering HC1 as QR codes and decoding hostile images."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import time
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import qrcode.util
import zxingcpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageFile, ImageFilter

from vaxcred import qr
from vaxcred.errors import ImageError

DATA = Path(__file__).resolve().parent / "data"
VN_IMAGE = (DATA / "vietnam" / "VAC_VN.png").read_bytes()  # a JPEG named .png, as published
VN_TEXT = (DATA / "vietnam" / "VAC_VN.qr.txt").read_text(encoding="ascii")
#: A realistic ~600-character HC1 (a one-dose DCC with ES256 is about 550-650 characters).
HC1_600 = VN_TEXT[:600]

_DGC_DIRS = (DATA / "dgc-testdata", Path("/work/shared/data/dgc-testdata"))
DGC_DIR = next((d for d in _DGC_DIRS if d.is_dir()), None)
DGC_2DCODE_VECTORS = (
    sorted(
        p for p in DGC_DIR.glob("*/2DCode/*/*.json") if "2DCODE" in json.loads(p.read_text(encoding="utf-8"))
    )
    if DGC_DIR is not None
    else []
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(png: bytes) -> zxingcpp.Barcode:
    """The one QR code zxing finds in ``png`` (an independent read, not via vaxcred.qr)."""
    (barcode,) = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    return barcode


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.convert("L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny 8-bit grayscale PNG whose header declares ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _code(data: bytes) -> str | None:
    """Decode, returning None on success and the error code on ImageError (anything else propagates)."""
    try:
        qr.decode_image(data)
    except ImageError as e:
        return e.code
    return None


def _text_or_code(data: bytes) -> str:
    """The decoded text, or the ImageError code (anything else propagates)."""
    try:
        return qr.decode_image(data)
    except ImageError as e:
        return e.code


def _alphanumeric_bits(n: int, version: int) -> int:
    """ISO/IEC 18004 §7.4.4: mode indicator + character count + 11 bits per pair, 6 for an odd last one."""
    count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
    return 4 + count_bits + 11 * (n // 2) + 6 * (n % 2)


def _byte_bits(n: int, version: int) -> int:
    return 4 + (8 if version <= 9 else 16) + 8 * n


def _min_version(bits_for: Any, n: int, level: int) -> int:
    return next(v for v in range(1, 41) if bits_for(n, v) <= qrcode.util.BIT_LIMIT_TABLE[level][v])


def _photo(png: bytes, *, angle: float, blur: float, noise: float, scale: float, quality: int) -> bytes:
    """Simulate a phone photo of a printed QR: tilt, defocus, downscale, sensor noise, JPEG (seeded)."""
    im = Image.open(io.BytesIO(png)).convert("L")
    im = im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    im = im.filter(ImageFilter.GaussianBlur(blur))
    im = im.resize((int(im.width * scale), int(im.height * scale)), Image.Resampling.BILINEAR)
    rng = random.Random(f"{angle}/{blur}/{noise}")
    grain = bytes(max(0, min(255, round(rng.gauss(128, noise)))) for _ in range(im.width * im.height))
    im = ImageChops.add(im, Image.frombytes("L", im.size, grain), offset=-128)
    return _jpeg(im, quality)


# --- decode: the Viet Nam sample ------------------------------------------------------------------------


def test_vac_vn_jpeg_named_png_decodes_to_published_text() -> None:
    """VAC_VN.png (really a JPEG) decodes exactly to VAC_VN.qr.txt."""
    assert VN_IMAGE[:3] == b"\xff\xd8\xff"
    assert qr.decode_image(VN_IMAGE) == VN_TEXT


def test_vac_vn_text_is_all_qr_alphanumeric() -> None:
    """Base45 plus the HC1: prefix stays inside the QR alphanumeric set (the sample proves it)."""
    assert set(VN_TEXT) <= set(qr.QR_ALPHANUMERIC)
    assert len(qr.QR_ALPHANUMERIC) == 45


# --- is_image -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (VN_IMAGE, True),
        (b"\x89PNG\r\n\x1a\n", True),
        (VN_TEXT.encode("ascii"), False),
        (b"GIF89a", False),
        (b"\xff\xd8", False),
        (b"", False),
    ],
    ids=["jpeg-named-png", "png-magic", "hc1-text", "gif", "short-jpeg-magic", "empty"],
)
def test_is_image_sniffs_png_and_jpeg_magic(data: bytes, expected: bool) -> None:
    """is_image tells PNG/JPEG bytes from HC1 text and other formats by magic bytes alone."""
    assert qr.is_image(data) is expected


# --- render ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ecc", ["L", "M", "Q", "H"])
def test_render_png_round_trips_at_each_ecc_level(ecc: qr.EccLevel) -> None:
    """A rendered PNG decodes back to the same HC1 and carries the requested ECC level."""
    png = qr.render_png(HC1_600, ecc=ecc)
    assert qr.decode_image(png) == HC1_600
    assert _read(png).ec_level == ecc


def test_render_png_defaults_to_ecc_q() -> None:
    """Without ecc=, the symbol uses error correction level Q (DCC.md §1)."""
    assert _read(qr.render_png(HC1_600)).ec_level == "Q"


@pytest.mark.parametrize("ecc", ["L", "Q"])
def test_render_uses_smallest_version_for_one_alphanumeric_segment(ecc: str) -> None:
    """The symbol is the minimal version for the whole text in alphanumeric mode (byte mode needs more)."""
    level = {"L": qrcode.constants.ERROR_CORRECT_L, "Q": qrcode.constants.ERROR_CORRECT_Q}[ecc]
    expected = _min_version(_alphanumeric_bits, len(HC1_600), level)
    assert _min_version(_byte_bits, len(HC1_600), level) > expected  # the check can tell the modes apart
    png = qr.render_png(HC1_600, ecc=ecc, box_size=3, border=4)  # type: ignore[arg-type]
    width, height = Image.open(io.BytesIO(png)).size
    assert width == height == (17 + 4 * expected + 2 * 4) * 3
    assert _read(png).extra["Version"] == str(expected)  # type: ignore[index]


def test_render_svg_is_well_formed_xml_with_svg_root() -> None:
    """render_svg returns a standalone SVG document: parseable XML whose root is <svg>."""
    svg = qr.render_svg(HC1_600)
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == root.get("height")
    assert svg.startswith(b"<?xml")


@pytest.mark.parametrize(
    "text",
    ["hc1:ABC", "HC1:AB\n", "HC1:ÀB", "HC1:A_B", ""],
    ids=["lower-case", "newline", "non-ascii", "underscore", "empty"],
)
def test_render_rejects_text_outside_alphanumeric_set(text: str) -> None:
    """Characters QR alphanumeric mode cannot hold (or no text at all) raise ValueError."""
    with pytest.raises(ValueError):
        qr.render_png(text)


def test_render_rejects_more_than_4296_characters() -> None:
    """Text longer than any QR code holds raises ValueError."""
    with pytest.raises(ValueError, match="4296"):
        qr.render_png("A" * 4297, ecc="L")


def test_render_rejects_text_too_long_for_the_ecc_level() -> None:
    """2,421 characters fit at ECC L but not at Q (whose maximum is 2,420)."""
    assert qr.decode_image(qr.render_png("A" * 2421, ecc="L", box_size=2)) == "A" * 2421
    with pytest.raises(ValueError, match="ECC level Q"):
        qr.render_png("A" * 2421, ecc="Q")


def test_render_rejects_unknown_ecc_level() -> None:
    """ecc must be one of L, M, Q, H."""
    with pytest.raises(ValueError, match="ecc"):
        qr.render_png(HC1_600, ecc="X")  # type: ignore[arg-type]


def test_write_png_writes_render_png_bytes(tmp_path: Path) -> None:
    """write_png stores exactly what render_png returns."""
    path = tmp_path / "hc1.png"
    qr.write_png(path, HC1_600)
    assert path.read_bytes() == qr.render_png(HC1_600)


# --- decode: failures -----------------------------------------------------------------------------------


def test_decode_blank_image_is_no_qr() -> None:
    """A white page has no QR code: image.no_qr."""
    assert _code(_png(Image.new("L", (400, 400), 255))) == "image.no_qr"


def test_decode_two_qr_codes_is_multiple_qr() -> None:
    """An image with two QR codes is ambiguous: image.multiple_qr."""
    a = Image.open(io.BytesIO(qr.render_png("HC1:FIRST", box_size=6)))
    b = Image.open(io.BytesIO(qr.render_png("HC1:SECOND", box_size=6)))
    page = Image.new("L", (a.width + b.width, max(a.height, b.height)), 255)
    page.paste(a, (0, 0))
    page.paste(b, (a.width, 0))
    assert _code(_png(page)) == "image.multiple_qr"


@pytest.mark.parametrize(
    "data",
    [b"GIF89a\x01\x00\x01\x00", b"BM" + bytes(64), VN_TEXT.encode("ascii"), b""],
    ids=["gif", "bmp", "hc1-text", "empty"],
)
def test_decode_other_formats_is_unsupported(data: bytes) -> None:
    """Anything not sniffed as PNG or JPEG is image.unsupported."""
    assert _code(data) == "image.unsupported"


def test_decode_real_gif_is_unsupported_although_pillow_reads_it() -> None:
    """Only PNG and JPEG parsers are ever used, even for formats Pillow understands."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(qr.render_png("HC1:GIF"))).save(buf, format="GIF")
    assert _code(buf.getvalue()) == "image.unsupported"


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n" + bytes(100), b"\xff\xd8\xff" + bytes(100)], ids=["png", "jpeg"]
)
def test_decode_magic_then_garbage_is_corrupt(data: bytes) -> None:
    """Right magic, unreadable body: image.corrupt."""
    assert _code(data) == "image.corrupt"


def test_decode_over_byte_cap_is_too_large() -> None:
    """Input longer than max_bytes is refused before parsing: image.too_large."""
    assert len(VN_IMAGE) > 1000
    with pytest.raises(ImageError) as info:
        qr.decode_image(VN_IMAGE, max_bytes=1000)
    assert info.value.code == "image.too_large"


def test_decode_over_pixel_cap_is_too_large() -> None:
    """An image with more pixels than max_pixels is refused: image.too_large."""
    with pytest.raises(ImageError) as info:
        qr.decode_image(VN_IMAGE, max_pixels=252 * 235 - 1)
    assert info.value.code == "image.too_large"


@pytest.mark.parametrize(
    ("width", "height"),
    [(7_000, 7_000), (10_000, 10_000), (100_000, 100_000), (2**31 - 1, 2**31 - 1)],
    ids=["over-our-cap", "pillow-warning", "pillow-error", "max-dimensions"],
)
def test_decompression_bomb_png_is_too_large_without_decoding(
    width: int, height: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny PNG declaring a huge canvas is image.too_large, quickly, with no pixel decoded."""
    loads: list[object] = []
    original_load = ImageFile.ImageFile.load

    def spy_load(self: ImageFile.ImageFile) -> Any:
        loads.append(self)
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    bomb = _bomb_png(width, height)
    assert len(bomb) < 200
    start = time.perf_counter()
    assert _code(bomb) == "image.too_large"
    assert time.perf_counter() - start < 1.0
    assert loads == []


def test_decode_str_is_type_error() -> None:
    """Passing text instead of bytes is a caller mistake: TypeError."""
    with pytest.raises(TypeError):
        qr.decode_image(VN_TEXT)  # type: ignore[arg-type]


# --- decode: hostile input never raises anything but ImageError (SECURITY.md #17, #23) ------------------

_RENDERED_PNG = qr.render_png("HC1:FUZZ", box_size=4)


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_raise_only_image_error(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ImageError."""
    _code(data)


@FUZZ
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]), st.binary(max_size=4096))
def test_fuzz_magic_plus_random_bytes_raise_only_image_error(magic: bytes, body: bytes) -> None:
    """Random bytes behind PNG/JPEG magic reach the parsers and still raise only ImageError."""
    _code(magic + body)


@FUZZ
@given(st.integers(min_value=0, max_value=len(_RENDERED_PNG) - 1))
def test_fuzz_truncated_png_raises_only_image_error(cut: int) -> None:
    """A cut PNG raises ImageError (or, missing only its IEND, still decodes correctly)."""
    assert _text_or_code(_RENDERED_PNG[:cut]) in {"HC1:FUZZ", "image.corrupt", "image.unsupported"}


@FUZZ
@given(st.integers(min_value=0, max_value=len(VN_IMAGE) - 1))
def test_fuzz_truncated_jpeg_raises_only_image_error(cut: int) -> None:
    """A cut JPEG raises ImageError (or, missing only its EOI marker, still decodes correctly)."""
    assert _text_or_code(VN_IMAGE[:cut]) in {VN_TEXT, "image.corrupt", "image.unsupported"}


@FUZZ
@given(
    st.sampled_from([_RENDERED_PNG, VN_IMAGE]),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_fuzz_mutated_images_raise_only_image_error(image: bytes, edits: list[tuple[int, int]]) -> None:
    """Valid images with a few bytes overwritten either decode or raise ImageError."""
    mutated = bytearray(image)
    for position, value in edits:
        mutated[position % len(mutated)] = value
    _code(bytes(mutated))


# --- decode: images that are not clean renderings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("angle", "blur", "noise", "scale", "quality"),
    [(5, 1.0, 20, 0.6, 60), (7, 1.5, 25, 0.5, 50), (-8, 2.5, 40, 0.4, 35)],
    ids=["mild", "moderate", "hard"],
)
def test_decode_photo_like_degraded_qr(
    angle: float, blur: float, noise: float, scale: float, quality: int
) -> None:
    """A tilted, blurred, noisy, downscaled JPEG of a rendered QR still decodes exactly."""
    png = qr.render_png(HC1_600)
    assert (
        qr.decode_image(_photo(png, angle=angle, blur=blur, noise=noise, scale=scale, quality=quality))
        == HC1_600
    )


def test_decode_transparent_background_png() -> None:
    """Black modules on a transparent background are read as on white paper."""
    im = Image.open(io.BytesIO(qr.render_png(HC1_600))).convert("L")
    rgba = Image.new("RGBA", im.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(im, lambda v: 255 - v))  # black where modules are, transparent elsewhere
    assert qr.decode_image(_png(rgba)) == HC1_600


def test_decode_16_bit_grayscale_png() -> None:
    """16-bit samples are scaled to 8 bits, not clipped to white."""
    im = Image.open(io.BytesIO(qr.render_png(HC1_600))).convert("L")
    im16 = im.point(lambda v: v * 0.8).convert("I").point(lambda v: v * 257).convert("I;16")
    assert qr.decode_image(_png(im16)) == HC1_600


def test_decode_inverted_qr() -> None:
    """Light modules on a dark background decode."""
    im = Image.open(io.BytesIO(qr.render_png(HC1_600))).convert("L")
    assert qr.decode_image(_png(Image.eval(im, lambda v: 255 - v))) == HC1_600


# --- dgc-testdata 2DCODE pictures ---------------------------------------------------------------------------


def _picture_decode_expected(vector: dict[str, Any]) -> bool:
    results = vector.get("EXPECTEDRESULTS")
    flags = results if isinstance(results, dict) else vector
    return flags.get("EXPECTEDPICTUREDECODE") is not False


@pytest.mark.skipif(DGC_DIR is None, reason="dgc-testdata not available")
@pytest.mark.parametrize(
    "path", DGC_2DCODE_VECTORS, ids=[f"{p.parent.parent.parent.name}/{p.name}" for p in DGC_2DCODE_VECTORS]
)
def test_dgc_testdata_2dcode_decodes_to_prefix(path: Path) -> None:
    """Each 2DCODE picture reads as its PREFIX, unless EXPECTEDPICTUREDECODE is false (common/Q1)."""
    vector = json.loads(path.read_text(encoding="utf-8"))
    image = base64.b64decode(vector["2DCODE"])
    if _picture_decode_expected(vector):
        assert qr.decode_image(image) == vector["PREFIX"]
    else:
        with pytest.raises(ImageError):
            qr.decode_image(image)


def test_all_zero_data_block_is_reported_as_such_not_as_too_long() -> None:
    """python-qrcode#330 (RS coding crashes on an all-zero block) gets its own message, not "does not fit"."""
    with pytest.raises(ValueError, match="python-qrcode#330"):
        qr.render_png("HC1:" + "0" * 100, ecc="Q")
