"""A standalone site-signed dose record as text: what the certificate's per-dose QR codes and
``vaxcred records export`` carry, and what ``vaxcred records verify`` reads back.

::

    VXSR1:<Base45 (RFC 9285) of the record's bytes>

The record is the one :func:`vaxcred.pipeline.site_signing.record.verify_dose` verifies with the site certificate
alone: a batch member's ``[2, head, index, audit path, payload]`` or a v1 COSE_Sign1. No compression: signatures,
hashes and the salted citizen hash do not compress, and a verifier then needs no inflater (no zlib bomb).
``VXSR1:`` plus Base45 is the QR alphanumeric set, so the text is one alphanumeric QR segment, like ``HC1:``; the
prefix keeps a site record from being mistaken for a passport (an HC1 reader stops at its prefix) and names the
format's version.

Decoding is bounded (:data:`MAX_RECORD_TEXT_CHARS` before anything is decoded) and raises only
:class:`~vaxcred.errors.DecodeError` subclasses: ``sitesign.too_large``, ``sitesign.bad_prefix``
(:class:`~vaxcred.errors.PrefixError`), ``base45.*``. Pure: no I/O, no clock.
"""

from __future__ import annotations

__all__ = [
    "MAX_RECORD_TEXT_CHARS",
    "RECORD_TEXT_PREFIX",
    "decode_record_text",
    "encode_record_text",
    "read_record",
]

from typing import Final

from vaxcred.codec import base45
from vaxcred.errors import DecodeError, PrefixError

#: the text form's prefix (version 1 of the text form; the record inside carries its own version)
RECORD_TEXT_PREFIX: Final = "VXSR1:"
#: the longest text decoded: a record of the largest batch a site may sign (16 audit-path nodes) with room to
#: spare; the certificate's QR codes hold far less (a QR code holds at most 4,296 alphanumeric characters)
MAX_RECORD_TEXT_CHARS: Final = 16_384
#: the first bytes of a record in binary form: COSE tag 18 (v1) or ``[2, …`` (batch member)
_BINARY_STARTS: Final = (b"\xd2", b"\x85\x02")
#: what surrounds a record in a file or a scanner's output: whitespace, a final newline
_WHITESPACE: Final = " \t\r\n"


def encode_record_text(record: bytes) -> str:
    """``VXSR1:`` + Base45 of ``record`` (a standalone site-signed dose record, binary)."""
    if not isinstance(record, bytes) or not record:
        raise ValueError("a site record is non-empty bytes")
    return RECORD_TEXT_PREFIX + base45.b45encode(record)


def decode_record_text(text: str) -> bytes:
    """The record's bytes from its text form (surrounding whitespace ignored); DecodeError if malformed."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, not {type(text).__name__}")
    if len(text) > MAX_RECORD_TEXT_CHARS:
        raise DecodeError(
            f"{len(text)} characters: more than a site record's text ({MAX_RECORD_TEXT_CHARS})",
            code="sitesign.too_large",
        )
    trimmed = text.strip(_WHITESPACE)
    if not trimmed.startswith(RECORD_TEXT_PREFIX):
        raise PrefixError(
            f"a site record's text starts with {RECORD_TEXT_PREFIX!r}", code="sitesign.bad_prefix"
        )
    record = base45.b45decode(trimmed.removeprefix(RECORD_TEXT_PREFIX))
    if not record:
        raise DecodeError("the site record is empty", code="sitesign.bad_prefix")
    return record


def read_record(data: bytes) -> bytes:
    """A record from a file's bytes: binary as :func:`~vaxcred.pipeline.log.entries.site_record` writes it
    (returned as is) or its text form (decoded); DecodeError for anything else."""
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes, not {type(data).__name__}")
    if data.startswith(_BINARY_STARTS):
        return data
    if len(data) > MAX_RECORD_TEXT_CHARS:
        raise DecodeError(
            f"{len(data)} bytes: more than a site record's text ({MAX_RECORD_TEXT_CHARS})",
            code="sitesign.too_large",
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise PrefixError(
            f"neither a binary site record nor its text form ({RECORD_TEXT_PREFIX}…)",
            code="sitesign.bad_prefix",
        ) from e
    return decode_record_text(text)
