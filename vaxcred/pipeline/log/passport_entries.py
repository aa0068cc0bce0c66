"""A passport's issuance-log entry (kind ``passport``: :mod:`vaxcred.pipeline.log.entries` has the format), written by
hand on issuance's hot path: one per passport, byte for byte ``cbor.dumps`` of the entry (a hypothesis test holds
it to cbor2's canonical encoding). Issuance writes it in two steps: :func:`passport_entry_draft` before its
storing transaction, :meth:`PassportEntryDraft.entry` under the lock with the passport id and its predecessor;
:func:`passport_entry` does both at once (the audit, PostgreSQL's batch call)."""

from __future__ import annotations

__all__ = ["PassportEntryDraft", "passport_entry", "passport_entry_draft"]

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from vaxcred.codec import cbor
from vaxcred.pipeline.log.entries import ENTRY_VERSION, Kind, _entry, _micros, _sha256


def passport_entry(
    *,
    passport_id: int,
    person_id: int,
    hc1: str,
    kid: bytes,
    iat: datetime,
    exp: datetime,
    issued_at: datetime,
    registry_check_id: int | None,
    doses: Iterable[tuple[int, int]],
    supersedes: int | None,
) -> bytes:
    """The entry of one passport from its stored values (``doses``: its (dose id, site signature id) links, in
    any order). :func:`~vaxcred.pipeline.log.stored.build_entries` reads them from the database; issuance builds the entry from the values it
    has just inserted, in the same transaction (the audit recomputes it from the rows)."""
    draft = passport_entry_draft(
        person_id=person_id,
        hc1=hc1,
        kid=kid,
        iat=iat,
        exp=exp,
        issued_at=issued_at,
        registry_check_id=registry_check_id,
        doses=doses,
    )
    return draft.entry(passport_id, supersedes)


#: a passport entry's fixed start: the five-item array, the version and the kind
_PASSPORT_START: Final = (
    cbor.encode_head(4, 5) + cbor.encode_head(0, ENTRY_VERSION) + cbor.encode_text("passport")
)
#: the trace's keys in canonical order (UTF-8 length, then bytes: RFC 8949 §4.2.1 as cbor2 applies it), each with
#: its CBOR item
_PASSPORT_TRACE: Final = tuple(
    (key, cbor.encode_text(key))
    for key in sorted(
        ("person_id", "kid", "iat", "exp", "issued_at", "registry_check_id", "doses", "supersedes"),
        key=lambda k: (len(k.encode()), k.encode()),
    )
)
_NULL: Final = b"\xf6"
_PAIR: Final = cbor.encode_head(4, 2)


def _id_item(value: object, *, nullable: bool) -> bytes | None:
    """An id's CBOR item (``nullable``: ``None`` as null), or ``None`` outside the unsigned 64-bit range."""
    if value is None:
        return _NULL if nullable else None
    if type(value) is int and 0 <= value < 1 << 64:
        return cbor.encode_head(0, value)
    return None


def _passport_parts(object_hash: bytes, trace: Mapping[str, object]) -> tuple[bytes, bytes, bytes] | None:
    """A passport entry's bytes but for its passport id and the ``supersedes`` value: the object hash's item, the
    trace up to and including the ``supersedes`` key, the trace after that value (``trace["supersedes"]`` is
    not read), written by hand. ``None`` for any value outside its forms (unsigned integers below 2**64, ``None``
    where a trace allows it, byte strings, [int, int] pairs): the general encoder takes those."""
    head = cbor.encode_head
    if type(object_hash) is not bytes:
        return None
    parts = [head(5, len(_PASSPORT_TRACE))]
    before: list[bytes] = []
    for key, item in _PASSPORT_TRACE:
        parts.append(item)
        if key == "supersedes":
            before, parts = parts, []
            continue
        value = trace[key]
        kind = type(value)
        if kind is int and 0 <= value < 1 << 64:  # type: ignore[operator]
            parts.append(head(0, value))  # type: ignore[arg-type]
        elif value is None and key == "registry_check_id":
            parts.append(_NULL)
        elif kind is bytes and key == "kid":
            parts.append(head(2, len(value)))  # type: ignore[arg-type]
            parts.append(value)  # type: ignore[arg-type]
        elif kind is list and key == "doses":
            pairs: list[list[object]] = value  # type: ignore[assignment]
            parts.append(head(4, len(pairs)))
            for dose_id, signature_id in pairs:
                if (
                    type(dose_id) is not int
                    or type(signature_id) is not int
                    or not 0 <= dose_id < 1 << 64
                    or not 0 <= signature_id < 1 << 64
                ):
                    return None
                parts.append(_PAIR)
                parts.append(head(0, dose_id))
                parts.append(head(0, signature_id))
        else:
            return None
    return head(2, len(object_hash)) + object_hash, b"".join(before), b"".join(parts)


@dataclass(frozen=True, slots=True)
class PassportEntryDraft:
    """A passport's entry before its passport id and predecessor are known (:func:`passport_entry_draft`):
    issuance writes everything else before its storing transaction, which then only adds the two ids
    (:meth:`entry`). :func:`passport_entry` is a draft completed at once: one encoder."""

    object_hash: bytes
    trace: Mapping[str, object]  # the trace but ``supersedes``
    #: :func:`_passport_parts`' bytes, written by hand (a hypothesis test holds them to cbor2's canonical
    #: encoding: cbor2's canonical mode sorting the trace's keys cost more than the rest of the entry); None for
    #: values outside the forms written there (a time before 1970, an id outside 0 ≤ id < 2**64): cbor2 writes it
    parts: tuple[bytes, bytes, bytes] | None

    def entry(self, passport_id: int, supersedes: int | None) -> bytes:
        """The entry with this ``passport_id`` and ``supersedes`` (the predecessor, None for a first passport)."""
        parts = self.parts
        passport = _id_item(passport_id, nullable=False)
        predecessor = _id_item(supersedes, nullable=True)
        if parts is not None and passport is not None and predecessor is not None:
            return b"".join((_PASSPORT_START, passport, parts[0], parts[1], predecessor, parts[2]))
        trace = {**self.trace, "supersedes": supersedes}
        return _entry(Kind.PASSPORT, passport_id, self.object_hash, trace)


def passport_entry_draft(
    *,
    person_id: int,
    hc1: str,
    kid: bytes,
    iat: datetime,
    exp: datetime,
    issued_at: datetime,
    registry_check_id: int | None,
    doses: Iterable[tuple[int, int]],
) -> PassportEntryDraft:
    """:func:`passport_entry` but for the passport id and ``supersedes``, done ahead (issuance: outside its write
    transaction, :mod:`vaxcred.pipeline.issuance.store`)."""
    trace: dict[str, object] = {
        "person_id": person_id,  # whose passport it is: moving it to another person is a change
        "kid": kid,
        "iat": _micros(iat),
        "exp": _micros(exp),
        "issued_at": _micros(issued_at),
        "registry_check_id": registry_check_id,
        "doses": [[dose_id, signature_id] for dose_id, signature_id in sorted(doses)],
    }
    object_hash = _sha256(hc1.encode("utf-8"))
    return PassportEntryDraft(object_hash, trace, _passport_parts(object_hash, trace))
