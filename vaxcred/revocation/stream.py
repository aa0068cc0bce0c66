"""Reading revocation batch files as published: one batch object, or a JSON array of them, streamed.

``vaxcred revocations export`` (the national pipeline) writes a JSON array of gateway batches; a gateway
download or a synced folder holds one batch per file.  :func:`read_batches` takes either from a binary
stream without reading the whole file into memory (an array of 10,000 batches is ~400 MB): elements are
decoded one at a time, each at most :data:`~vaxcred.revocation.batch.MAX_BATCH_BYTES`.

It yields, per element, a :class:`~vaxcred.revocation.batch.RevocationBatch` or the
:class:`~vaxcred.errors.TrustStoreError` (``revocation.malformed``) that refused it: a well-formed JSON
element that is no valid batch is reported and the next one read.  A file that is not JSON of that shape
(a syntax error, a truncated array, an element over the size cap, bad UTF-8) raises TrustStoreError: the
rest of it cannot be trusted to be read correctly, and callers drop the whole file.

Pure: reads only the stream it is given.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import BinaryIO, Final

from vaxcred.errors import TrustStoreError
from vaxcred.revocation.batch import MAX_BATCH_BYTES, RevocationBatch, json_decoder, malformed

__all__ = ["MAX_ARRAY_ELEMENTS", "read_batches"]

#: batches in one array file (10 M entries are 10,000 full batches)
MAX_ARRAY_ELEMENTS: Final = 1_000_000
_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"


class _Text:
    """A window of decoded text over a binary stream, refilled on demand."""

    __slots__ = ("at", "buffer", "decoder", "eof", "stream")

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buffer = ""
        self.at = 0
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk; ``False`` at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        try:
            text = self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise malformed("not UTF-8 text") from e
        if self.at > _CHUNK:  # drop what was consumed
            self.buffer, self.at = self.buffer[self.at :], 0
        self.buffer += text
        if not chunk:
            self.eof = True
        return True

    def peek(self) -> str:
        """The next non-blank character ('' at the end), consuming the blanks before it."""
        while True:
            buffer, at = self.buffer, self.at
            while at < len(buffer) and buffer[at] in _WHITESPACE:
                at += 1
            self.at = at
            if at < len(buffer):
                return buffer[at]
            if not self.fill():
                return ""

    def value(self, decoder: json.JSONDecoder) -> object:
        """Decode one JSON value at the next non-blank position (refilling until it is whole)."""
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, self.at)
            except ValueError as e:  # JSONDecodeError, duplicate keys, NaN: maybe just not read yet
                if len(self.buffer) - self.at > MAX_BATCH_BYTES:
                    raise malformed(f"an element exceeds {MAX_BATCH_BYTES} bytes or is not JSON") from e
                if not self.fill():
                    raise malformed(f"not valid JSON: {e}") from e
                continue
            if end - self.at > MAX_BATCH_BYTES:
                raise malformed(f"an element exceeds {MAX_BATCH_BYTES} bytes")
            self.at = end
            return value


def _batch(value: object) -> RevocationBatch | TrustStoreError:
    if not isinstance(value, dict):
        return malformed("an element is not a JSON object")
    try:
        return RevocationBatch.from_document(value)
    except TrustStoreError as e:
        return e


def read_batches(stream: BinaryIO) -> Iterator[RevocationBatch | TrustStoreError]:
    """The batches of a batch file or a JSON array of batches (see the module docstring)."""
    text = _Text(stream)
    decoder = json_decoder()
    first = text.peek()
    if first == "{":
        yield _batch(text.value(decoder))
    elif first == "[":
        text.at += 1
        if text.peek() == "]":
            text.at += 1
        else:
            for count in range(MAX_ARRAY_ELEMENTS + 1):
                if count == MAX_ARRAY_ELEMENTS:
                    raise malformed(f"more than {MAX_ARRAY_ELEMENTS} batches in one array")
                yield _batch(text.value(decoder))
                separator = text.peek()
                text.at += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise malformed("the array of batches is truncated or not JSON")
    else:
        raise malformed("neither a batch object nor an array of batches")
    if text.peek() != "":
        raise malformed("trailing data after the batches")
