"""The typed DCC payload (schema 1.3.x): one vaccination, test or recovery entry for one holder.

:meth:`DCC.to_json` gives the JSON-like mapping that goes into the CWT (``hcert`` claim): text, integers and
lists only — dates stay ISO text, never ``date`` objects (cbor2 would tag those).  :meth:`DCC.from_json`
reads a decoded payload back; it is tolerant of what other issuers put on the wire and the schema admits
(date-times in date fields, partial dates of birth, extra fields), and raises
:class:`~vaxcred.errors.ModelError` for structural problems.  Extra fields (for example ``dr`` of schema
1.0.x tests) are not kept.

Every text field is NFC-normalised on construction.

Model error codes: ``model.bad_payload`` (structure), ``model.bad_field`` (a field of the wrong type or
range), ``model.entry_count`` (not exactly one v/t/r entry), ``model.bad_name``, ``model.bad_date``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal

from vaxcred.errors import ModelError
from vaxcred.model.dates import DateOfBirth
from vaxcred.model.names import Name

__all__ = ["DCC", "DCC_VERSION", "Entry", "PayloadType", "Recovery", "Test", "Vaccination"]

#: The schema version vaxcred emits (as deployed in Viet Nam, DCC.md §10).
DCC_VERSION = "1.3.0"
MAX_TEXT_LENGTH = 80

PayloadType = Literal["v", "t", "r"]


def _json_key(attr: str) -> str:
    return "is" if attr == "is_" else attr


_JSON_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _json_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """``(attribute, JSON key)`` of an entry class's fields, in order (``dataclasses.fields`` is slow)."""
    found = _JSON_FIELDS.get(cls)
    if found is None:
        found = _JSON_FIELDS[cls] = tuple((f.name, _json_key(f.name)) for f in fields(cls))
    return found


_FIELD_CHECKS: dict[type, tuple[tuple[str, str, bool, bool, bool], ...]] = {}


def _field_checks(cls: type[_EntryBase]) -> tuple[tuple[str, str, bool, bool, bool], ...]:
    """``(attribute, JSON key, integer, required, length-limited)`` of an entry class's fields, in order, worked
    out once per class (``dataclasses.fields`` on every entry built cost more than the checks themselves)."""
    found = _FIELD_CHECKS.get(cls)
    if found is None:
        ints, limited = cls._ints, cls._limited
        found = _FIELD_CHECKS[cls] = tuple(
            (f.name, _json_key(f.name), f.name in ints, f.default is not None, f.name in limited)
            for f in fields(cls)  # type: ignore[arg-type]
        )
    return found


class _EntryBase:
    """Shared checks and JSON mapping of the three entry types (dataclass fields, ``is_`` ↔ ``"is"``)."""

    __slots__ = ()
    _ints: ClassVar[frozenset[str]] = frozenset()
    _limited: ClassVar[frozenset[str]] = frozenset({"is_", "ci", "nm", "tc"})

    def _validate(self) -> None:
        for name, key, is_int, required, limited in _field_checks(type(self)):
            value = getattr(self, name)
            if is_int:
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ModelError(f"{key} must be a positive integer", code="model.bad_field")
            elif value is None:
                if required:
                    raise ModelError(f"{key} is required", code="model.bad_field")
            elif not isinstance(value, str):
                raise ModelError(f"{key} must be a string", code="model.bad_field")
            else:
                if not unicodedata.is_normalized("NFC", value):  # the usual text is NFC already: kept as is
                    value = unicodedata.normalize("NFC", value)
                    object.__setattr__(self, name, value)
                if limited and len(value) > MAX_TEXT_LENGTH:
                    raise ModelError(f"{key} is longer than {MAX_TEXT_LENGTH} chars", code="model.bad_field")

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (``is_`` becomes ``"is"``; absent optional fields omitted)."""
        out: dict[str, Any] = {}
        for name, key in _json_fields(type(self)):
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def _kwargs_from_json(cls, data: object, where: str) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ModelError(f"{where} must be an object", code="model.bad_payload")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            key = _json_key(f.name)
            if key not in data:
                if f.default is MISSING:
                    raise ModelError(f"{where} has no {key!r}", code="model.bad_field")
                continue
            value = data[key]
            if f.name in cls._ints and isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON Schema "integer" admits 2.0
            kwargs[f.name] = value
        return kwargs


@dataclass(frozen=True, slots=True, kw_only=True)
class Vaccination(_EntryBase):
    """A ``v`` entry.  ``dn``/``sd`` are dose number and total doses in the series (≥ 1)."""

    _ints: ClassVar[frozenset[str]] = frozenset({"dn", "sd"})

    tg: str
    vp: str
    mp: str
    ma: str
    dn: int
    sd: int
    dt: str
    co: str
    is_: str
    ci: str

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_json(cls, data: object) -> Vaccination:
        """Read a ``v`` entry (JSON object)."""
        return cls(**cls._kwargs_from_json(data, "v[0]"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Test(_EntryBase):
    """A ``t`` entry.  ``sc`` is the sample-collection date-time (ISO text); ``nm``/``ma``/``tc`` optional."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    tg: str
    tt: str
    sc: str
    tr: str
    co: str
    is_: str
    ci: str
    nm: str | None = None
    ma: str | None = None
    tc: str | None = None

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_json(cls, data: object) -> Test:
        """Read a ``t`` entry (JSON object)."""
        return cls(**cls._kwargs_from_json(data, "t[0]"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery(_EntryBase):
    """An ``r`` entry: first positive result ``fr``, validity ``df`` … ``du`` (ISO dates as text)."""

    tg: str
    fr: str
    co: str
    is_: str
    df: str
    du: str
    ci: str

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_json(cls, data: object) -> Recovery:
        """Read an ``r`` entry (JSON object)."""
        return cls(**cls._kwargs_from_json(data, "r[0]"))


Entry = Vaccination | Test | Recovery
_ENTRY_TYPES: tuple[tuple[PayloadType, type[Vaccination] | type[Test] | type[Recovery]], ...] = (
    ("v", Vaccination),
    ("t", Test),
    ("r", Recovery),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DCC:
    """A DCC payload: schema version, holder name, date of birth and exactly one entry.

    ``DCC(nam=Name.create(fn="Nguyễn", gn="Văn Đức"), dob=DateOfBirth.from_text("1985-03-07"),
    entry=Vaccination(…))``; ``ver`` defaults to ``"1.3.0"``.
    """

    ver: str = DCC_VERSION
    nam: Name
    dob: DateOfBirth
    entry: Entry

    def __post_init__(self) -> None:
        if not isinstance(self.ver, str) or not self.ver:
            raise ModelError("ver must be a non-empty string", code="model.bad_payload")
        if not isinstance(self.nam, Name):
            raise TypeError("nam must be a Name")
        if not isinstance(self.dob, DateOfBirth):
            raise TypeError("dob must be a DateOfBirth")
        if not isinstance(self.entry, Vaccination | Test | Recovery):
            raise TypeError("entry must be a Vaccination, Test or Recovery")

    @property
    def payload_type(self) -> PayloadType:
        """``"v"``, ``"t"`` or ``"r"``."""
        for key, cls in _ENTRY_TYPES:
            if isinstance(self.entry, cls):
                return key
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def v(self) -> Vaccination | None:
        """The vaccination entry, if this is a vaccination certificate."""
        return self.entry if isinstance(self.entry, Vaccination) else None

    @property
    def t(self) -> Test | None:
        """The test entry, if this is a test certificate."""
        return self.entry if isinstance(self.entry, Test) else None

    @property
    def r(self) -> Recovery | None:
        """The recovery entry, if this is a recovery certificate."""
        return self.entry if isinstance(self.entry, Recovery) else None

    def to_json(self) -> dict[str, Any]:
        """The payload as JSON-like data: ``{"ver", "nam", "dob", "v"|"t"|"r": [entry]}``."""
        return {
            "ver": self.ver,
            "nam": self.nam.to_json(),
            "dob": self.dob.text,
            self.payload_type: [self.entry.to_json()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DCC:
        """Read a decoded payload.  Raises :class:`ModelError` if it is not one holder with one entry."""
        if not isinstance(data, Mapping):
            raise ModelError("the DCC payload must be an object", code="model.bad_payload")
        for key in ("ver", "nam", "dob"):
            if key not in data:
                raise ModelError(f"the DCC payload has no {key!r}", code="model.bad_payload")
        present = [(key, entry_cls) for key, entry_cls in _ENTRY_TYPES if key in data]
        if len(present) != 1:
            raise ModelError("the DCC payload needs exactly one of v, t, r", code="model.entry_count")
        key, entry_cls = present[0]
        entries = data[key]
        if not isinstance(entries, list | tuple):
            raise ModelError(f"{key} must be an array", code="model.bad_payload")
        if len(entries) != 1:
            raise ModelError(f"{key} must hold exactly one entry", code="model.entry_count")
        nam = data["nam"]
        if not isinstance(nam, Mapping):
            raise ModelError("nam must be an object", code="model.bad_payload")
        return cls(
            ver=data["ver"],
            nam=Name(fn=nam.get("fn"), gn=nam.get("gn"), fnt=nam.get("fnt"), gnt=nam.get("gnt")),
            dob=DateOfBirth.from_text(data["dob"], lenient=True),
            entry=entry_cls.from_json(entries[0]),
        )
