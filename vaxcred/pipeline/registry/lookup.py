"""The population registry check (Cơ sở dữ liệu quốc gia về dân cư): lookup adapters and the pure matching rule.

- :class:`PopulationRegistry` — the protocol: a *batch* lookup by citizen ID; an absent ID is not found.
- :func:`match` (pure, ``now`` passed in) — compares the person as recorded with the registry entry:

  1. ``INVALID_ID`` — the recorded ID is not a well-formed CCCD / CMND / other number, or its digits 4–6
     disagree with the recorded date of birth / gender (``mismatch_fields`` then names ``dob`` / ``gender``);
  2. ``NOT_FOUND`` — the registry has no entry for the ID;
  3. ``MISMATCH`` — one or more of ``name`` (:func:`~vaxcred.pipeline.records.names.names_match`; the kind of
     difference is kept in ``name_difference``), ``dob`` (:func:`dates_of_birth_match`), ``gender`` (compared
     only when both sides know it) differ;
  4. ``VERIFIED`` — otherwise.

  ``name_difference`` is ``NONE`` when no name was compared (``INVALID_ID``, ``NOT_FOUND``).

- Adapters: :class:`TableRegistry` (in memory; :meth:`TableRegistry.from_csv` is the file edge) and
  :class:`~vaxcred.pipeline.registry.http.HttpRegistry` (JSON over HTTP with :mod:`urllib.request` only: batches, timeout, retries with
  exponential backoff, a response-size cap and strict validation of the answer), defined in
  :mod:`vaxcred.pipeline.registry.http` and re-exported here.

Personal data never reaches a log line or an error message: IDs, names and dates are not logged at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import functools
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeAlias, runtime_checkable

from vaxcred.errors import ModelError
from vaxcred.model import DateOfBirth
from vaxcred.pipeline.errors import BAD_REGISTRY_DATA, PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType, id_problems
from vaxcred.pipeline.records.model import Person
from vaxcred.pipeline.records.names import MATCHING_DIFFERENCES, NameDifference, compare_names
from vaxcred.privacy import mask_dob, mask_id, mask_name

__all__ = [
    "MISMATCH_FIELDS",
    "REGISTRY_FIELDS",
    "PopulationRegistry",
    "RegistryEntry",
    "RegistryResult",
    "RegistryStatus",
    "TableRegistry",
    "dates_of_birth_match",
    "match",
    "write_registry_csv",
]

#: the registry adapters' logger (:class:`HttpRegistry` logs batch numbers and sizes, never IDs)
logger = logging.getLogger(__name__)

#: The columns of a registry table (CSV header) and the keys of an HTTP result object.
REGISTRY_FIELDS = ("citizen_id", "full_name", "dob", "gender")
#: The fields a ``MISMATCH`` can name, in this order.
MISMATCH_FIELDS = ("name", "dob", "gender")


class RegistryStatus(enum.StrEnum):
    """The outcome of checking one person against the population registry."""

    VERIFIED = "VERIFIED"
    MISMATCH = "MISMATCH"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"


@functools.lru_cache(maxsize=1 << 16)
def _dob(text: str) -> DateOfBirth:
    """Parse (and cache: dates repeat, ``DateOfBirth`` is immutable) a registry date of birth."""
    return DateOfBirth.from_text(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryEntry:
    """A person as the registry knows them.  ``dob`` is DCC-style text (``YYYY[-MM[-DD]]`` or ``""``).

    Registry data is untrusted input: an invalid entry raises :class:`PipelineError`
    (``pipeline.bad_registry_data``, ``field`` set).  ``full_name`` is kept exactly as received (its Unicode
    form is what :func:`match` reports).
    """

    citizen_id: str
    full_name: str
    dob: str
    gender: Gender

    def __post_init__(self) -> None:
        for field in ("citizen_id", "full_name", "dob"):
            if not isinstance(getattr(self, field), str):
                raise PipelineError(f"{field} must be a string", code=BAD_REGISTRY_DATA, field=field)
        if not self.citizen_id:
            raise PipelineError("citizen_id is empty", code=BAD_REGISTRY_DATA, field="citizen_id")
        if not self.full_name.strip() or not self.full_name.isprintable():
            raise PipelineError(
                "full_name is empty or not printable", code=BAD_REGISTRY_DATA, field="full_name"
            )
        try:
            _dob(self.dob)
        except ModelError as e:
            raise PipelineError(f"dob: {e.message}", code=BAD_REGISTRY_DATA, field="dob") from e
        if not isinstance(self.gender, Gender):
            raise PipelineError("gender must be M, F or empty", code=BAD_REGISTRY_DATA, field="gender")

    def __repr__(self) -> str:  # personal data: masked
        return (
            f"RegistryEntry(citizen_id={mask_id(self.citizen_id)!r}, full_name={mask_name(self.full_name)!r}, "
            f"dob={mask_dob(self.dob)!r}…)"
        )

    @property
    def date_of_birth(self) -> DateOfBirth:
        """``dob`` as a :class:`~vaxcred.model.DateOfBirth`."""
        return _dob(self.dob)

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> RegistryEntry:
        """Build from a row / JSON object with :data:`REGISTRY_FIELDS` (all strings; ``gender`` ``M``/``F``/``""``).

        Extra keys are ignored; a missing key or a non-string value raises ``pipeline.bad_registry_data``.
        """
        values: dict[str, str] = {}
        for field in REGISTRY_FIELDS:
            value = fields.get(field)
            if not isinstance(value, str):
                raise PipelineError(
                    f"{field} is missing or not a string", code=BAD_REGISTRY_DATA, field=field
                )
            values[field] = value
        try:
            gender = Gender(values["gender"])
        except ValueError:
            raise PipelineError(
                "gender must be M, F or empty", code=BAD_REGISTRY_DATA, field="gender"
            ) from None
        return cls(
            citizen_id=values["citizen_id"], full_name=values["full_name"], dob=values["dob"], gender=gender
        )

    def to_fields(self) -> dict[str, str]:
        """The entry as :data:`REGISTRY_FIELDS` text (CSV row / JSON object)."""
        return {
            "citizen_id": self.citizen_id,
            "full_name": self.full_name,
            "dob": self.dob,
            "gender": self.gender.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryResult:
    """The result of one registry check, with the time it was made (aware UTC)."""

    citizen_id: str
    status: RegistryStatus
    mismatch_fields: tuple[str, ...] = ()
    name_difference: NameDifference = NameDifference.NONE
    checked_at: dt.datetime

    def __post_init__(self) -> None:
        if not isinstance(self.status, RegistryStatus):
            raise TypeError("status must be a RegistryStatus")
        if not isinstance(self.name_difference, NameDifference):
            raise TypeError("name_difference must be a NameDifference")
        if (
            not isinstance(self.mismatch_fields, tuple)
            or tuple(f for f in MISMATCH_FIELDS if f in self.mismatch_fields) != self.mismatch_fields
        ):
            raise ValueError(f"mismatch_fields must be an ordered tuple drawn from {MISMATCH_FIELDS}")
        if self.status is RegistryStatus.MISMATCH and not self.mismatch_fields:
            raise ValueError("a MISMATCH names its fields")
        if self.status in (RegistryStatus.VERIFIED, RegistryStatus.NOT_FOUND) and self.mismatch_fields:
            raise ValueError(f"a {self.status.value} result names no mismatch fields")
        if not isinstance(self.checked_at, dt.datetime) or self.checked_at.utcoffset() != dt.timedelta(0):
            raise ValueError("checked_at must be an aware UTC datetime")

    def __repr__(self) -> str:
        return (
            f"RegistryResult(citizen_id={mask_id(self.citizen_id)!r}, status={self.status.value!r}, "
            f"mismatch_fields={self.mismatch_fields!r}, name_difference={self.name_difference.value!r}, "
            f"checked_at={self.checked_at.isoformat()!r})"
        )


def dates_of_birth_match(recorded: DateOfBirth, registry: DateOfBirth) -> bool:
    """The date-of-birth rule of :func:`match`, tolerant of partial dates.

    Two empty dates match.  Otherwise both must know at least the year, and every component *both* know
    (year, then month, then day) must be equal: a recorded ``1985`` matches a registry ``1985-03-17``, a recorded
    ``1985-03`` does not match ``1985-04-17``.  One side empty and the other not is a mismatch: nothing could be
    verified, and the record needs a correction (or the registry entry is incomplete).
    """
    if recorded.year is None or registry.year is None:
        return recorded.year is None and registry.year is None
    pairs = ((recorded.year, registry.year), (recorded.month, registry.month), (recorded.day, registry.day))
    for mine, theirs in pairs:
        if mine is None or theirs is None:
            return True
        if mine != theirs:
            return False
    return True


def _utc(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


#: a registry entry's fields as :func:`judge` compares them: citizen ID, full name, date of birth, gender
EntryFields: TypeAlias = tuple[str, str, DateOfBirth, Gender]
#: :func:`judge`'s answer: the status, the mismatch fields (in :data:`MISMATCH_FIELDS` order), the name difference
Judgement: TypeAlias = tuple[RegistryStatus, tuple[str, ...], NameDifference]


def match(person: Person, entry: RegistryEntry | None, *, now: dt.datetime) -> RegistryResult:
    """Check ``person`` (as recorded) against the registry's ``entry`` (``None``: not found); pure.

    See the module docstring for the order of the checks.  ``entry`` must be for the same citizen ID
    (``ValueError`` otherwise: a caller mistake).
    """
    if not isinstance(person, Person):
        raise TypeError("person must be a Person")
    if entry is not None and not isinstance(entry, RegistryEntry):
        raise TypeError("entry must be a RegistryEntry or None")
    checked_at = _utc(now)
    fields = None if entry is None else (entry.citizen_id, entry.full_name, entry.date_of_birth, entry.gender)
    status, mismatch_fields, difference = judge(person, fields)
    return RegistryResult(
        citizen_id=person.citizen_id,
        status=status,
        mismatch_fields=mismatch_fields,
        name_difference=difference,
        checked_at=checked_at,
    )


def judge(person: Person, entry: EntryFields | None) -> Judgement:
    """:func:`match`'s rule on the entry's fields (``None``: not found), without building a result: what a
    batch stores (:mod:`vaxcred.pipeline.registry.batch`). ``ValueError`` when the entry is for another ID."""
    return judge_recorded(
        person.citizen_id, person.id_type, person.full_name, person.dob, person.gender, entry
    )


def judge_recorded(
    citizen_id: str,
    id_type: IdType,
    full_name: str,
    dob: DateOfBirth,
    gender: Gender,
    entry: EntryFields | None,
) -> Judgement:
    """:func:`judge` on the fields of a :class:`Person` (a batch's rows are judged without building one)."""
    # (1) the ID itself
    problems = id_problems(citizen_id, id_type, dob, gender)
    if problems is None:
        return RegistryStatus.INVALID_ID, (), NameDifference.NONE
    if problems:
        named = {"gender" if p == "gender" else "dob" for p in problems}
        return RegistryStatus.INVALID_ID, tuple(f for f in MISMATCH_FIELDS if f in named), NameDifference.NONE

    # (2) presence
    if entry is None:
        return RegistryStatus.NOT_FOUND, (), NameDifference.NONE
    entry_id, entry_name, entry_dob, entry_gender = entry
    if entry_id != citizen_id:
        raise ValueError("the registry entry is for another citizen ID")

    # (3) the fields
    difference = compare_names(full_name, entry_name)
    fields: list[str] = []
    if difference not in MATCHING_DIFFERENCES:  # names_match(), without comparing the names again
        fields.append("name")
    if not dates_of_birth_match(dob, entry_dob):
        fields.append("dob")
    if Gender.UNKNOWN not in (gender, entry_gender) and gender is not entry_gender:
        fields.append("gender")
    return (RegistryStatus.MISMATCH if fields else RegistryStatus.VERIFIED), tuple(fields), difference


@runtime_checkable
class PopulationRegistry(Protocol):
    """A population registry with batch lookup by citizen ID."""

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """The entries found for ``citizen_ids``; an ID absent from the answer is not found."""
        ...


def _check_ids(citizen_ids: Sequence[str]) -> list[str]:
    if isinstance(citizen_ids, str) or not isinstance(citizen_ids, Sequence):
        raise TypeError("citizen_ids must be a sequence of str")
    if not all(isinstance(c, str) for c in citizen_ids):
        raise TypeError("citizen_ids must be a sequence of str")
    return list(dict.fromkeys(citizen_ids))  # de-duplicated, order kept


class TableRegistry:
    """An in-memory registry (reference implementation and demo): entries keyed by citizen ID."""

    def __init__(self, entries: Iterable[RegistryEntry]) -> None:
        table: dict[str, RegistryEntry] = {}
        for entry in entries:
            if not isinstance(entry, RegistryEntry):
                raise TypeError("entries must be RegistryEntry objects")
            if entry.citizen_id in table:
                raise ValueError(f"duplicate citizen ID {mask_id(entry.citizen_id)!r}")
            table[entry.citizen_id] = entry
        self._table = table

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> TableRegistry:
        """Build from rows with :data:`REGISTRY_FIELDS`; an invalid or duplicate row raises
        ``pipeline.bad_registry_data`` naming its (1-based) row number."""
        return cls(_entries_from_rows(rows, first=1, what="row"))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TableRegistry:
        """Read a UTF-8 CSV (BOM tolerated) with the header :data:`REGISTRY_FIELDS` (the I/O edge).

        Errors name the file's line number, never the personal data on it.
        """
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REGISTRY_FIELDS if c not in (reader.fieldnames or ())]
            if missing:
                raise PipelineError(
                    f"registry CSV lacks column(s) {', '.join(missing)}", code=BAD_REGISTRY_DATA
                )
            return cls(_entries_from_rows(reader, first=2, what="line"))

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """The entries for ``citizen_ids`` that the table holds."""
        table = self._table
        return MappingProxyType({c: table[c] for c in _check_ids(citizen_ids) if c in table})

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, citizen_id: object) -> bool:
        return citizen_id in self._table

    def __repr__(self) -> str:
        return f"<TableRegistry: {len(self._table)} entries>"


def _entries_from_rows(
    rows: Iterable[Mapping[str, object]], *, first: int, what: str
) -> Iterator[RegistryEntry]:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first):
        try:
            entry = RegistryEntry.from_fields(row)
        except PipelineError as e:
            raise PipelineError(f"{what} {number}: {e.message}", code=BAD_REGISTRY_DATA, field=e.field) from e
        if entry.citizen_id in seen:
            raise PipelineError(
                f"{what} {number}: duplicate citizen ID", code=BAD_REGISTRY_DATA, field="citizen_id"
            )
        seen.add(entry.citizen_id)
        yield entry


def write_registry_csv(path: str | os.PathLike[str], entries: Iterable[RegistryEntry]) -> int:
    """Write ``entries`` as a registry CSV (streaming; the I/O edge for demos and benchmarks); returns the count."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REGISTRY_FIELDS)
        writer.writeheader()
        for entry in entries:
            writer.writerow(entry.to_fields())
            count += 1
    return count
