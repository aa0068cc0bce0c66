"""Hostile inputs: the worst time ``verify()`` takes per class of input, one process, one core.

Run as ``taskset -c 0 .venv/bin/python -m benchmarks.bench_hostile`` (``--quick``: fewer samples per class).

The promise checked: any input whatsoever yields a result or a typed error, never another exception,
within 50 ms and bounded memory. Each class below is a corpus built at start-up (seeded, so every run
feeds the same bytes, except the sensor noise Pillow draws for the phone photo); every input goes through
``verify(data, store, now=...)`` against a store holding the DSC of a valid passport. Per input the time
is the median of ``--repeats`` calls (after one warm-up call for the whole run), so a single scheduler
hiccup does not count as the input's cost; per class the script prints the maximum and the 99th
percentile over its inputs, the result codes seen, and the peak RSS growth during the class (VmHWM,
reset per class through ``/proc/self/clear_refs``: Pillow's and libjpeg's buffers are not Python objects,
so tracemalloc would not see them).

Classes: random bytes and text; 4,296-character HC1 of junk Base45; zlib bombs at the largest size an HC1
holds; deeply nested, huge-length-header and duplicate-key CBOR (as the COSE message and inside the
claims); random bit flips of a valid passport (in the COSE bytes and in the HC1 text); images at every cap
of ``vaxcred.qr`` (PNG noise and blank in each pixel format, JPEG noise and blank, progressive and
multi-scan JPEG, chunk and marker floods, a bomb header); a 12 MP phone-photo-like JPEG of a valid
passport; the Viet Nam sample (a 252x235 JPEG); and a grid of QR finder patterns, the worst case known for
zxing-cpp's detector. The ``isolated_*`` classes feed the Viet Nam sample and the finder grids through
``verify(..., image_decoder=IsolatedImageDecoder(deadline=ISOLATED_DEADLINE).decode)``: a child process,
killed at the deadline (its start-up and restarts are paid before each timed call; the child's memory is
not in the peak RSS column).

The last line of output is one JSON object: ``{"max_ms": ..., "classes": {name: {...}}, ...}``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import os
import platform
import random
import re
import statistics
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import PIL
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image, ImageDraw, ImageFilter, features

from vaxcred import keys, qr
from vaxcred.codec import base45, compress, cwt, prefix
from vaxcred.issue import Issuer
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.qr.isolated import IsolatedImageDecoder
from vaxcred.result import Status, StepResult, VerificationResult
from vaxcred.trust import TrustStore
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.verify import verify

NOW = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
BUDGET_MS = 50.0
#: the isolated decoder's deadline (s): the rest of the budget is for the pipe, the kill and verify's steps
ISOLATED_DEADLINE = 0.045
ROOT = Path(__file__).resolve().parent.parent
VN_IMAGE = ROOT / "tests" / "data" / "vietnam" / "VAC_VN.png"  # a JPEG, as published
B45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
MAX_HC1 = 4296
#: bytes whose Base45 text fills an HC1 to its 4,296 characters (3 characters per 2 bytes)
MAX_HC1_BYTES = (MAX_HC1 - len("HC1:")) // 3 * 2

Input = str | bytes


# --- fixtures --------------------------------------------------------------------------------------------


def make_passport() -> tuple[str, bytes, TrustStore]:
    """A valid one-dose passport (HC1 text and COSE bytes) and a store trusting its DSC."""
    csca = keys.make_csca(now=NOW - timedelta(days=30))
    dsc = keys.make_dsc(csca, now=NOW - timedelta(days=30))
    codes = VIETNAM_VACCINES[sorted(VIETNAM_VACCINES)[0]]
    dcc = DCC(
        nam=Name.create(fn="Nguyễn", gn="Văn Đức"),
        dob=DateOfBirth.from_text("1990-04-12"),
        entry=Vaccination(
            tg="840539006",
            vp=codes.vp,
            mp=codes.mp,
            ma=codes.ma,
            dn=1,
            sd=2,
            dt="2021-09-01",
            co="VN",
            is_="Ministry of Health of Viet Nam",
            ci=generate_uvci(rng=random.Random(7)),
        ),
    )
    issued = Issuer(dsc.signer()).issue(dcc, now=NOW - timedelta(days=1))
    store = TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])
    return issued.hc1, issued.cose, store


def hc1_of(payload: bytes, *, level: int = 9) -> str:
    """``payload`` zlib-compressed, Base45-encoded, prefixed (no check on size: hostile)."""
    return prefix.add_prefix(base45.b45encode(zlib.compress(payload, level)))


def png(im: Image.Image, **options: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **options)
    return buf.getvalue()


def jpeg(im: Image.Image, quality: int = 75, **options: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, **options)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width: int, height: int, depth: int, colour: int, rows: Callable[[int], bytes]) -> bytes:
    """A PNG assembled by hand (16-bit RGBA and other formats Pillow does not write)."""
    z = zlib.compressobj(6)
    idat = b"".join(z.compress(b"\x00" + rows(y)) for y in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunks = [png_chunk(b"IDAT", idat[i : i + 65536]) for i in range(0, len(idat), 65536)]
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + b"".join(chunks) + png_chunk(b"IEND", b"")


def noise(mode: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    width, height = size
    if mode == "1":
        return Image.frombytes("1", size, rng.randbytes((width + 7) // 8 * height))
    return Image.frombytes(mode, size, rng.randbytes(width * height * len(mode)))


def fit_side(pixels: int, ratio: float = 1.0) -> tuple[int, int]:
    """The largest width x height with that aspect ratio and at most ``pixels`` pixels."""
    height = int(math.sqrt(pixels / ratio))
    width = int(height * ratio)
    while width * height > pixels:
        width -= 1
    return width, height


def png_noise_at_cap(mode: str, rng: random.Random) -> bytes:
    """Noise in ``mode``, as many pixels as the PNG caps (bytes, pixels, raw bytes) allow."""
    bpp = {"1": 1 / 8, "L": 1, "RGB": 3, "RGBA": 4}[mode]
    cap = qr.MAX_PNG_PIXELS if mode in ("1", "L") else qr.MAX_PNG_COLOUR_PIXELS
    pixels = min(cap, int(qr.MAX_PNG_RAW_BYTES / (bpp + 0.001)), int(qr.MAX_PNG_BYTES / bpp))
    size = fit_side(int(pixels * 0.995))
    while True:
        data = png(noise(mode, size, rng), compress_level=1)
        if len(data) <= qr.MAX_PNG_BYTES:
            return data
        size = (int(size[0] * 0.99), int(size[1] * 0.99))


def jpeg_at_byte_cap(make: Callable[[float], Image.Image], cap: int, quality: int, **options: Any) -> bytes:
    """The largest image ``make(scale)`` (scale in (0, 1]) whose JPEG fits ``cap`` bytes."""
    lo, hi, best = 0.05, 1.0, b""
    for _ in range(12):
        mid = (lo + hi) / 2
        data = jpeg(make(mid), quality, **options)
        if len(data) <= cap:
            lo, best = mid, data
        else:
            hi = mid
    return best


def split_jpeg(data: bytes) -> list[bytes]:
    """The file cut before every marker (entropy-coded data stays with its SOS)."""
    marker = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
    cuts, pos = [0], 2
    while (m := marker.search(data, pos)) is not None:
        cuts.append(m.start())
        code = data[m.start() + 1]
        if code == 0xD9:
            break
        pos = m.end() + int.from_bytes(data[m.end() : m.end() + 2], "big")
    cuts.append(len(data))
    return [data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def jpeg_with_scans(progressive: bytes, scans: int, cap: int) -> bytes:
    """A progressive JPEG whose last scan (with the tables before it) is repeated up to ``scans`` scans,
    as long as the file stays within ``cap`` bytes."""
    parts = split_jpeg(progressive)
    sos = [i for i, p in enumerate(parts) if p.startswith(b"\xff\xda")]
    last = first = sos[-1]
    while first > 0 and parts[first - 1][:2] in (b"\xff\xc4", b"\xff\xdb", b"\xff\xdd"):
        first -= 1
    unit = b"".join(parts[first : last + 1])
    head = b"".join(parts[: last + 1])
    tail = b"".join(parts[last + 1 :])
    extra = max(0, min(scans - len(sos), (cap - len(head) - len(tail)) // len(unit)))
    return head + unit * extra + tail


def finder_grid(size: tuple[int, int], module: int, gap: int) -> Image.Image:
    """A page tiled with QR finder patterns (1:1:3:1:1): every one is a candidate for zxing's detector."""
    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    step = (7 + gap) * module
    for y in range(0, size[1] - 7 * module, step):
        for x in range(0, size[0] - 7 * module, step):
            draw.rectangle((x, y, x + 7 * module - 1, y + 7 * module - 1), fill=0)
            draw.rectangle((x + module, y + module, x + 6 * module - 1, y + 6 * module - 1), fill=255)
            draw.rectangle((x + 2 * module, y + 2 * module, x + 5 * module - 1, y + 5 * module - 1), fill=0)
    return im


def phone_photo(hc1: str, *, width_fraction: float, seed: int, quality: int = 88) -> bytes:
    """A 4000x3000 colour JPEG like a phone's: a printed QR code on a desk, tilted, defocused, noisy."""
    rng = random.Random(seed)
    size = (4000, 3000)
    desk = Image.linear_gradient("L").resize(size).point(lambda v: 60 + v // 3)
    photo = Image.merge("RGB", (desk, desk.point(lambda v: v * 9 // 10), desk.point(lambda v: v * 7 // 10)))
    paper = Image.new("RGB", (2600, 2200), (236, 233, 226))
    code = Image.open(io.BytesIO(qr.render_png(hc1, box_size=4))).convert("L")
    side = int(size[0] * width_fraction)
    code = code.resize((side, side), Image.Resampling.NEAREST).convert("RGB")
    paper.paste(code, ((paper.width - side) // 2, (paper.height - side) // 2))
    angle = rng.uniform(4, 9)
    mask = Image.new("L", paper.size, 255).rotate(angle, expand=True, fillcolor=0)
    paper = paper.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    photo.paste(paper, ((size[0] - paper.width) // 2, (size[1] - paper.height) // 2), mask)
    photo = photo.filter(ImageFilter.GaussianBlur(2.2))
    grain = Image.effect_noise(size, 6).convert("L")
    photo = Image.merge("RGB", [Image.blend(c, grain, 0.5) for c in photo.split()])
    return jpeg(photo, quality, subsampling=2)


# --- corpus ----------------------------------------------------------------------------------------------


def numbered(items: Sequence[Input]) -> list[tuple[str, Input]]:
    return [(f"#{i}", item) for i, item in enumerate(items)]


def corpus(hc1: str, cose_bytes: bytes, quick: bool) -> Iterator[tuple[str, list[tuple[str, Input]]]]:
    """(class name, [(label, input), ...]) for every class; each class is built when its turn comes."""
    rng = random.Random(20260110)
    n = 40 if quick else 200

    yield (
        "random_bytes",
        numbered(
            [rng.randbytes(rng.choice((1, 16, 256, 4096, 65536))) for _ in range(n)]
            + [rng.randbytes(1 << 20), rng.randbytes(10 * 1024 * 1024), rng.randbytes(10 * 1024 * 1024 + 1)]
        ),
    )

    printable = "".join(chr(c) for c in range(32, 127))
    yield (
        "random_text",
        numbered(
            [
                "".join(rng.choices(printable, k=rng.choice((1, 100, 1000, MAX_HC1, MAX_HC1 + 1))))
                for _ in range(n)
            ]
            + ["HC1:" + "".join(rng.choices(printable, k=1 << 20)), "x" * (10 * 1024 * 1024)]
        ),
    )

    yield (
        "hc1_junk_base45",
        numbered(
            ["HC1:" + "".join(rng.choices(B45_ALPHABET, k=MAX_HC1 - 4)) for _ in range(n // 2)]
            + [prefix.add_prefix(base45.b45encode(rng.randbytes(MAX_HC1_BYTES))) for _ in range(n // 2)]
        ),
    )

    bombs: list[tuple[str, Input]] = []
    for filler in (b"\x00", b"\xff", b"\x5a\x5a\x5a\x5a\x00"):
        lo, hi = 1, 16 * 1024 * 1024
        while lo < hi:  # the longest run of filler that still fits one HC1
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if len(hc1_of(filler * (mid // len(filler)))) <= MAX_HC1 else (lo, mid - 1)
        bombs.append((f"{lo} bytes of {filler.hex()}", hc1_of(filler * (lo // len(filler)))))
        # a COSE_Sign1 head whose payload claims to be a 4 GiB byte string, then the filler
        head = b"\xd2\x84\x43\xa1\x01\x26\xa0\x5a\xff\xff\xff\xff"
        bombs.append(
            (
                f"COSE head + {lo // 2} bytes of {filler.hex()}",
                hc1_of(head + filler * (lo // 2 // len(filler))),
            )
        )
    yield "zlib_bomb", bombs

    deep: list[tuple[str, Input]] = []
    for depth in (16, 17, 64, 65, 1000, MAX_HC1_BYTES):
        for opener in (b"\x81", b"\xa1\x01", b"\xd8\x18", b"\x9f"):
            body = (opener * (depth // len(opener) + 1))[: max(depth, len(opener))]
            deep.append((f"{opener.hex()} x{depth} as message", hc1_of(body)))
            claims_head = b"\xd2\x84\x43\xa1\x01\x26\xa0\x59" + struct.pack(">H", min(len(body), 65535))
            deep.append((f"{opener.hex()} x{depth} as claims", hc1_of(claims_head + body[:65535] + b"\x40")))
    yield "cbor_deep", deep

    huge: list[tuple[str, Input]] = []
    for major in (0x40, 0x60, 0x80, 0xA0):  # bstr, tstr, array, map
        for arg in (
            b"\x1a\xff\xff\xff\xff",
            b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x1b\x7f" + b"\xff" * 7,
        ):
            head = bytes([major | arg[0] & 0x1F]) + arg[1:]
            label = head.hex()
            huge.append((f"{label} alone", hc1_of(head)))
            huge.append((f"{label} + 1000 zeros", hc1_of(head + b"\x00" * 1000)))
            huge.append((f"{label} as COSE field 1", hc1_of(b"\x84" + head)))
            huge.append((f"{label} as unprotected", hc1_of(b"\xd2\x84\x43\xa1\x01\x26" + head)))
            huge.append((f"{label} as payload", hc1_of(b"\xd2\x84\x43\xa1\x01\x26\xa0" + head)))
    yield "cbor_huge_length", huge

    dup: list[tuple[str, Input]] = [
        ("protected {1:-7, 1:-7}", hc1_of(b"\xd2\x84\x46\xa2\x01\x26\x01\x26\xa0\x41\x00\x40")),
        (
            "unprotected {4:h'00', 4:h'00'}",
            hc1_of(b"\xd2\x84\x43\xa1\x01\x26\xa2\x04\x41\x00\x04\x41\x00\x41\x00\x40"),
        ),
    ]
    for pairs in (2, 100, 1000):
        m = b"\xb9" + struct.pack(">H", pairs) + b"\x01\x01" * pairs
        dup.append((f"{pairs} x {{1:1}} as message", hc1_of(m)))
        wrapped = b"\xd2\x84\x43\xa1\x01\x26\xa0\x59" + struct.pack(">H", len(m)) + m + b"\x40"
        dup.append((f"{pairs} x {{1:1}} as claims", hc1_of(wrapped)))
    claims = cwt.encode_claims(iss="VN", iat=0, exp=1, dcc={"ver": "1.3.0"})
    twice_iss = claims[:1] + b"\x01\x62VN" + claims[1:]
    dup.append(
        (
            "claims with iss twice",
            hc1_of(b"\xd2\x84\x43\xa1\x01\x26\xa0" + bytes([0x58, len(twice_iss)]) + twice_iss + b"\x40"),
        )
    )
    yield "cbor_duplicate_keys", dup

    flips: list[Input] = []
    for _ in range(n):
        mutated = bytearray(cose_bytes)
        for _ in range(rng.randint(1, 8)):
            bit = rng.randrange(len(mutated) * 8)
            mutated[bit // 8] ^= 1 << (bit % 8)
        flips.append(prefix.add_prefix(base45.b45encode(compress.compress(bytes(mutated)))))
    for _ in range(n // 2):
        text = bytearray(hc1.encode("ascii"))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(4, len(text))
            text[i] ^= 1 << rng.randrange(7)
        flips.append(bytes(text))
    yield "bit_flips", numbered(flips)

    # --- images at the caps of vaxcred.qr ---------------------------------------------------------------
    yield (
        "png_noise_max",
        [(f"{mode} noise", png_noise_at_cap(mode, rng)) for mode in ("1", "L", "RGB", "RGBA")],
    )

    blank: list[tuple[str, Input]] = []
    for mode, bpp in (("1", 1 / 8), ("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4), ("I;16", 2)):
        cap = qr.MAX_PNG_PIXELS if mode in ("1", "L", "I;16") else qr.MAX_PNG_COLOUR_PIXELS
        dims = fit_side(min(cap, int(qr.MAX_PNG_RAW_BYTES / (bpp + 0.01))))
        fill: Any = {
            "1": 1,
            "L": 255,
            "LA": (255, 0),
            "RGB": (255,) * 3,
            "RGBA": (255, 255, 255, 0),
            "I;16": 65535,
        }[mode]
        blank.append((f"{mode} {dims[0]}x{dims[1]}", png(Image.new(mode, dims, fill))))
        if mode in ("RGB", "RGBA"):
            blank.append(
                (f"{mode} {dims[0]}x{dims[1]} interlaced", png(Image.new(mode, dims, fill), interlace=1))
            )
    w, h = fit_side(min(qr.MAX_PNG_COLOUR_PIXELS, qr.MAX_PNG_RAW_BYTES // 8 - 1))
    blank.append((f"RGBA 16-bit {w}x{h}", raw_png(w, h, 16, 6, lambda _y: b"\xff" * (w * 8))))
    palette = Image.new("P", fit_side(min(qr.MAX_PNG_PIXELS, int(qr.MAX_PNG_RAW_BYTES * 0.999))), 0)
    palette.putpalette([255, 255, 255] * 256)
    blank.append((f"P+tRNS {palette.width}x{palette.height}", png(palette, transparency=0)))
    gray = Image.new("L", palette.size, 255)
    blank.append((f"L+tRNS {gray.width}x{gray.height}", png(gray, transparency=0)))
    rgb = fit_side(int(qr.MAX_PNG_COLOUR_PIXELS // 2 * 0.999))
    blank.append(
        (f"RGB+tRNS {rgb[0]}x{rgb[1]}", png(Image.new("RGB", rgb, (255, 255, 255)), transparency=(0, 0, 0)))
    )
    long_side = qr.MAX_IMAGE_SIDE
    blank.append(
        (
            f"L {long_side}x{qr.MAX_PNG_PIXELS // long_side}",
            png(Image.new("L", (long_side, qr.MAX_PNG_PIXELS // long_side), 255)),
        )
    )
    tall = (qr.MAX_PNG_COLOUR_PIXELS // long_side, long_side)
    blank.append((f"RGB {tall[0]}x{tall[1]}", png(Image.new("RGB", tall, (255, 255, 255)))))
    yield "png_blank_max", blank

    side = fit_side(qr.MAX_JPEG_PIXELS, 4 / 3)

    def scaled(mode: str, pixels: int) -> Callable[[float], Image.Image]:
        return lambda s: noise(mode, fit_side(int(pixels * s * s), 4 / 3), rng)

    def blank_with_noise(s: float) -> Image.Image:  # 40 MP of blocks and a byte cap's worth of noise
        im = Image.new("L", side, 255)
        im.paste(noise("L", fit_side(int(side[0] * side[1] * s * s)), rng), (0, 0))
        return im

    cap = qr.MAX_JPEG_BYTES
    yield (
        "jpeg_noise_max",
        [
            ("gray noise q30", jpeg_at_byte_cap(scaled("L", qr.MAX_JPEG_PIXELS), cap, 30)),
            ("gray noise q90", jpeg_at_byte_cap(scaled("L", qr.MAX_JPEG_PIXELS), cap, 90)),
            (
                "colour 4:4:4 noise q30",
                jpeg_at_byte_cap(scaled("RGB", qr.MAX_JPEG_PIXELS), cap, 30, subsampling=0),
            ),
            (f"{side[0]}x{side[1]} white + noise", jpeg_at_byte_cap(blank_with_noise, cap, 50)),
        ],
    )

    yield (
        "jpeg_blank_max",
        [
            (f"gray {side[0]}x{side[1]}", jpeg(Image.new("L", side, 255))),
            (
                f"colour 4:4:4 {side[0]}x{side[1]}",
                jpeg(Image.new("RGB", side, (255, 255, 255)), subsampling=0),
            ),
            (f"CMYK {side[0]}x{side[1]}", jpeg(Image.new("CMYK", side, (0, 0, 0, 0)))),
            (
                f"gray {qr.MAX_IMAGE_SIDE}x{qr.MAX_JPEG_PIXELS // qr.MAX_IMAGE_SIDE}",
                jpeg(Image.new("L", (qr.MAX_IMAGE_SIDE, qr.MAX_JPEG_PIXELS // qr.MAX_IMAGE_SIDE), 255)),
            ),
        ],
    )

    multi = fit_side(qr.MAX_JPEG_MULTISCAN_PIXELS, 4 / 3)
    mcap = qr.MAX_JPEG_MULTISCAN_BYTES
    gray_noise = jpeg_at_byte_cap(scaled("L", qr.MAX_JPEG_MULTISCAN_PIXELS), mcap, 30, progressive=True)
    colour_noise = jpeg_at_byte_cap(
        scaled("RGB", qr.MAX_JPEG_MULTISCAN_PIXELS), mcap, 30, progressive=True, subsampling=0
    )
    colour_blank = jpeg(Image.new("RGB", multi, (255, 255, 255)), progressive=True, subsampling=0)
    tiny = jpeg(Image.new("L", (64, 64), 255), progressive=True)
    yield (
        "jpeg_progressive_max",
        [
            (f"gray {multi[0]}x{multi[1]}", jpeg(Image.new("L", multi, 255), progressive=True)),
            (f"colour 4:4:4 {multi[0]}x{multi[1]}", colour_blank),
            ("gray noise q30", gray_noise),
            ("colour 4:4:4 noise q30", colour_noise),
            (
                f"colour {multi[0]}x{multi[1]}, {qr.MAX_JPEG_SCANS} scans",
                jpeg_with_scans(colour_blank, qr.MAX_JPEG_SCANS, mcap),
            ),
            (f"gray noise, {qr.MAX_JPEG_SCANS} scans", jpeg_with_scans(gray_noise, qr.MAX_JPEG_SCANS, mcap)),
            ("64x64, scans to the byte cap", jpeg_with_scans(tiny, 10**9, qr.MAX_JPEG_BYTES)),
        ],
    )

    small_png = png(Image.new("L", (64, 64), 255))
    small_jpeg = jpeg(Image.new("L", (64, 64), 255))
    sig, ihdr, rest = small_png[:8], small_png[8:33], small_png[33:]
    empty = png_chunk(b"zzZz", b"")
    floods: list[tuple[str, Input]] = [
        ("PNG at the chunk cap", sig + ihdr + empty * (qr.MAX_PNG_CHUNKS - 3) + rest),
        ("PNG of empty chunks", sig + ihdr + empty * ((qr.MAX_PNG_BYTES - len(small_png)) // 12) + rest),
        (
            "JPEG at the marker cap",
            small_jpeg[:2] + b"\xff\xfe\x00\x02" * (qr.MAX_JPEG_MARKERS - 20) + small_jpeg[2:],
        ),
        (
            "JPEG of empty COM segments",
            small_jpeg[:2]
            + b"\xff\xfe\x00\x02" * ((qr.MAX_JPEG_BYTES - len(small_jpeg)) // 4)
            + small_jpeg[2:],
        ),
    ]
    for dims in ((100_000, 100_000), (2**31 - 1, 2**31 - 1), (qr.MAX_PNG_PIXELS, 1)):
        head = struct.pack(">IIBBBBB", *dims, 8, 0, 0, 0, 0)
        bomb = (
            sig
            + png_chunk(b"IHDR", head)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + png_chunk(b"IEND", b"")
        )
        floods.append((f"PNG header {dims[0]}x{dims[1]}", bomb))
    yield "container_floods", floods

    yield (
        "qr_finder_grid",
        [
            (f"{module}-px modules, {pixels // 1000} kP", png(finder_grid(fit_side(pixels), module, gap)))
            for pixels in (60_000, 250_000, 1_000_000)
            for module, gap in ((1, 1), (2, 1))
        ],
    )

    yield (
        "phone_photo_12mp",
        [
            *(
                (f"QR {f:.0%} of the width, q88", phone_photo(hc1, width_fraction=f, seed=i))
                for i, f in enumerate((0.33, 0.2, 0.15))
            ),
            ("QR 33% of the width, q95", phone_photo(hc1, width_fraction=0.33, seed=9, quality=95)),
        ],
    )

    yield "vac_vn_jpeg", [("VAC_VN.png (JPEG, 252x235)", VN_IMAGE.read_bytes())]
    yield "isolated_vac_vn", [("VAC_VN.png in a child process", VN_IMAGE.read_bytes())]
    yield (
        "isolated_finder_grid",
        [
            (
                f"{module}-px modules, {pixels // 1000} kP, child",
                png(finder_grid(fit_side(pixels), module, gap)),
            )
            for pixels in (60_000, 250_000, 1_000_000)
            for module, gap in ((1, 1), (2, 1))
        ],
    )

    yield (
        "rendered_png",
        [
            ("render_png default", qr.render_png(hc1)),
            ("render_png box 2, ECC L", qr.render_png(hc1, box_size=2, ecc="L")),
        ],
    )


# --- measuring -------------------------------------------------------------------------------------------


def _peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        match = re.search(r"VmHWM:\s+(\d+)", f.read())
    return int(match.group(1)) if match else 0


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        match = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def outcome(result: VerificationResult) -> str:
    failed = [s for s in result.steps if s.result is StepResult.FAIL]
    return failed[0].code if failed else result.status.value


def measure(
    inputs: Sequence[tuple[str, Input]],
    store: TrustStore,
    repeats: int,
    verbose: bool,
    decoder: IsolatedImageDecoder | None = None,
) -> dict[str, Any]:
    times: list[tuple[float, str]] = []
    codes: Counter[str] = Counter()
    can_reset = _reset_peak()
    base = _rss_kib()
    for label, data in inputs:
        samples = []
        code = ""
        for _ in range(repeats):
            if decoder is not None:
                decoder.start()  # a child killed at the deadline is replaced outside the clock
            start = time.perf_counter()
            try:
                code = outcome(
                    verify(data, store, now=NOW, image_decoder=None if decoder is None else decoder.decode)
                )
            except Exception as e:  # the promise is broken: report, do not hide
                code = f"EXCEPTION {type(e).__name__}: {e}"
            samples.append((time.perf_counter() - start) * 1000)
        times.append((statistics.median(samples), label))
        codes[code] += 1
        if verbose:
            print(f"    {statistics.median(samples):8.1f} ms  {len(data):>9} B  {label}: {code}", flush=True)
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)][0]
    return {
        "n": len(inputs),
        "max_ms": round(ordered[-1][0], 2),
        "p99_ms": round(p99, 2),
        "median_ms": round(ordered[len(ordered) // 2][0], 2),
        "slowest": ordered[-1][1],
        "max_input_bytes": max(len(d) for _, d in inputs),
        "peak_rss_growth_mib": round((_peak_kib() - base) / 1024, 1) if can_reset else None,
        "codes": dict(codes.most_common()),
    }


def environment() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    turbo = "libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
    return (
        f"CPU {model}; pinned to cores {affinity}; Python {platform.python_version()}; "
        f"Pillow {PIL.__version__} ({turbo} {features.version('jpg')}, zlib {features.version('zlib')})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples in the generated classes")
    parser.add_argument("--repeats", type=int, default=3, help="calls per input; its time is their median")
    parser.add_argument("--only", action="append", default=[], help="run only this class (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every input's time and outcome")
    args = parser.parse_args(argv)
    print(environment())
    print(
        f"caps: JPEG {qr.MAX_JPEG_BYTES} B, {qr.MAX_JPEG_PIXELS} px (progressive/multi-scan: "
        f"{qr.MAX_JPEG_MULTISCAN_BYTES} B, {qr.MAX_JPEG_MULTISCAN_PIXELS} px, {qr.MAX_JPEG_SCANS} scans); "
        f"PNG {qr.MAX_PNG_BYTES} B, {qr.MAX_PNG_PIXELS} px, "
        f"{qr.MAX_PNG_RAW_BYTES} B inflated"
    )
    hc1, cose_bytes, store = make_passport()
    warm = verify(hc1, store, now=NOW)
    assert warm.status is Status.VALID, warm.steps
    verify(qr.render_png(hc1), store, now=NOW)
    verify(VN_IMAGE.read_bytes(), store, now=NOW)

    classes: dict[str, dict[str, Any]] = {}
    print(
        f"\n{'class':22} {'n':>4} {'max ms':>8} {'p99 ms':>8} {'median':>8} {'peak RSS +MiB':>13}  outcomes"
    )
    for name, inputs in corpus(hc1, cose_bytes, args.quick):
        if args.only and name not in args.only:
            continue
        if args.verbose:
            print(f"  {name}:")
        decoder = IsolatedImageDecoder(deadline=ISOLATED_DEADLINE) if name.startswith("isolated_") else None
        if decoder is not None:
            verify(VN_IMAGE.read_bytes(), store, now=NOW, image_decoder=decoder.decode)  # start-up, warm-up
        try:
            row = measure(inputs, store, args.repeats, args.verbose, decoder)
        finally:
            if decoder is not None:
                decoder.close()
        classes[name] = row
        flag = "  OVER" if row["max_ms"] > BUDGET_MS else ""
        rss = row["peak_rss_growth_mib"]
        print(
            f"{name:22} {row['n']:>4} {row['max_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['median_ms']:>8.1f} "
            f"{'?' if rss is None else rss:>13}  {', '.join(f'{k} x{v}' for k, v in row['codes'].items())}"
            f"{flag}  [slowest: {row['slowest']}]",
            flush=True,
        )
    worst = max(classes, key=lambda k: classes[k]["max_ms"])
    over = [k for k, v in classes.items() if v["max_ms"] > BUDGET_MS]
    exceptions = [k for k, v in classes.items() if any(c.startswith("EXCEPTION") for c in v["codes"])]
    print(
        f"\noverall max {classes[worst]['max_ms']:.1f} ms ({worst}); budget {BUDGET_MS:.0f} ms; "
        f"over budget: {', '.join(over) or 'none'}; untyped exceptions: {', '.join(exceptions) or 'none'}"
    )
    print(
        json.dumps(
            {
                "max_ms": classes[worst]["max_ms"],
                "worst_class": worst,
                "budget_ms": BUDGET_MS,
                "over_budget": over,
                "exceptions": exceptions,
                "peak_rss_mib": round(_peak_kib() / 1024, 1),
                "classes": classes,
            }
        )
    )
    return 1 if exceptions else 0


if __name__ == "__main__":
    sys.exit(main())
