"""Steps (0) input to (4) cose: from what the caller hands over to a COSE_Sign1 message and its CWT claims.

Nothing here is trusted yet: of the decoded message only ``alg`` and ``kid`` are used before the signature
holds (:mod:`vaxcred.verify.signer`).
"""

from __future__ import annotations

from collections.abc import Callable

from vaxcred import errors
from vaxcred._extras import MissingExtraError
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.codec.image import is_image
from vaxcred.result import Step
from vaxcred.verify.steps import PASS, Steps

MAX_INPUT_BYTES = 10 * 1024 * 1024

_OK_PREFIX = Step(name="prefix", result=PASS, code="prefix.ok", message="HC1: context identifier")
_OK_BASE45 = Step(name="base45", result=PASS, code="base45.ok", message="valid Base45")
_OK_ZLIB = Step(name="zlib", result=PASS, code="zlib.ok", message="zlib stream inflated")
_OK_COSE = Step(name="cose", result=PASS, code="cose.ok", message="COSE_Sign1 with CWT claims")


def read_text(
    data: str | bytes, steps: Steps, image_decoder: Callable[[bytes], str] | None = None
) -> str | None:
    """(0) input: images are read for their QR code (by ``image_decoder``, default
    :func:`vaxcred.qr.decode_image`); other bytes must be ASCII text."""
    if isinstance(data, str):
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"verify() takes str or bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > MAX_INPUT_BYTES:
        steps.fail("prefix", "prefix.too_long", "input larger than 10 MiB")
        return None
    if is_image(raw):
        if image_decoder is None:
            try:  # local import: image support pulls in Pillow and zxing-cpp (extra ``qr``)
                from vaxcred import qr
            except MissingExtraError as e:
                steps.fail("prefix", "image.extra_missing", f"cannot read a QR image here: {e}")
                return None
            image_decoder = qr.decode_image
        try:
            text: object = image_decoder(raw)
        except errors.ImageError as e:
            steps.fail("prefix", e.code, f"no readable QR code: {e.message}")
            return None
        if not isinstance(text, str):
            raise TypeError(f"image_decoder returned {type(text).__name__}, not str")
        return text
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        steps.fail("prefix", "prefix.not_text", "input is neither an image nor ASCII text")
        return None


def open_envelope(text: str, steps: Steps) -> tuple[cose.Sign1Message, cwt.Claims] | None:
    """(1) prefix, (2) base45, (3) zlib, (4) cose: the message and its claims, or ``None`` once a step failed."""
    # (1) prefix
    try:
        b45 = prefix.strip_prefix(text)
    except errors.PrefixError as e:
        steps.error("prefix", e)
        return None
    steps.items.append(_OK_PREFIX)

    # (2) base45
    try:
        compressed = base45.b45decode(b45)
    except errors.Base45Error as e:
        steps.error("base45", e)
        return None
    steps.items.append(_OK_BASE45)

    # (3) zlib
    try:
        cose_bytes = compress.decompress(compressed)
    except errors.ZlibError as e:
        steps.error("zlib", e)
        return None
    steps.items.append(_OK_ZLIB)

    # (4) cose: envelope and CWT claims; only alg and kid are *used* before the signature holds
    try:
        msg = cose.decode_sign1(cose_bytes)
        claims = cwt.decode_claims(msg.payload)
    except errors.DecodeError as e:
        steps.error("cose", e)
        return None
    if msg.alg is None:
        steps.fail("cose", "cose.no_alg", "no algorithm in either header")
        return None
    steps.items.append(_OK_COSE)
    return msg, claims
