"""EU DCC value sets and the issuing-side code check.

The value sets are vendored from ehn-dcc-development/eu-dcc-valuesets (``schemas/eu-dcc-valuesets/``,
loaded from the identical package copy ``vaxcred/data/schemas/eu-dcc-valuesets/``); :func:`load_value_sets`
reads them once.  Membership is not a schema check (DCC.md §2): verifiers report unknown codes as a ``rules``
finding, while the issuing side refuses to sign them — :func:`check_vaccination`:

- every code (``tg``, ``vp``, ``mp``, ``ma``, ``co``) must be in its value set *and active* (deprecated
  codes such as ``J07BX03``, still seen in older Vietnamese passports, are not issued any more) →
  :class:`~vaxcred.errors.IssuanceError` ``issue.valueset``;
- the ``mp``/``ma``/``vp`` triple must be one that ``vaccine-encoding-instructions.json`` (Annex A)
  allows: the product's marketing-authorisation holder and one of its listed vaccine types →
  ``issue.bad_combination``.

:data:`VIETNAM_VACCINES` maps the products used in Viet Nam's campaign to the codes to issue.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from vaxcred.errors import IssuanceError
from vaxcred.model import Vaccination

__all__ = [
    "VALUE_SET_NAMES",
    "VIETNAM_VACCINES",
    "EncodingInstruction",
    "VaccineCodes",
    "ValueSet",
    "ValueSetEntry",
    "ValueSets",
    "check_vaccination",
    "load_value_sets",
]

#: The value sets vaxcred loads (file names without ``.json``).
VALUE_SET_NAMES = (
    "disease-agent-targeted",
    "vaccine-prophylaxis",
    "vaccine-medicinal-product",
    "vaccine-mah-manf",
    "country-2-codes",
    "test-type",
    "test-result",
    "test-manf-example",
)
_ENCODING_INSTRUCTIONS = "vaccine-encoding-instructions"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueSetEntry:
    """One code of a value set."""

    code: str
    display: str
    active: bool
    system: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueSet:
    """A value set: its id, date (``valueSetDate``) and entries by code."""

    id: str
    date: str
    entries: Mapping[str, ValueSetEntry]


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodingInstruction:
    """One row of Annex A: product ``mp`` → its ``ma`` and the allowed ``vp`` codes."""

    name: str
    mp: str
    ma: str
    vp: tuple[str, ...]
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueSets:
    """All loaded value sets plus the encoding instructions (rows keyed by the product code ``mp``)."""

    sets: Mapping[str, ValueSet]
    encoding: Mapping[str, tuple[EncodingInstruction, ...]]
    encoding_date: str

    def _set(self, set_name: str) -> ValueSet:
        try:
            return self.sets[set_name]
        except KeyError:
            raise ValueError(f"unknown value set {set_name!r}") from None

    def is_valid(self, set_name: str, code: object, *, active_only: bool = False) -> bool:
        """True if ``code`` is in the value set (and active, with ``active_only``)."""
        entry = self._set(set_name).entries.get(code) if isinstance(code, str) else None
        return entry is not None and (entry.active or not active_only)

    def is_active(self, set_name: str, code: object) -> bool:
        """True if ``code`` is in the value set and flagged active."""
        return self.is_valid(set_name, code, active_only=True)

    def display(self, set_name: str, code: str) -> str | None:
        """The display text of ``code`` (``None`` if unknown)."""
        entry = self._set(set_name).entries.get(code)
        return entry.display if entry is not None else None

    def allowed_combination(self, *, mp: str, ma: str, vp: str) -> bool:
        """True if Annex A lists product ``mp`` with holder ``ma`` and vaccine type ``vp``."""
        return any(row.ma == ma and vp in row.vp for row in self.encoding.get(mp, ()))


def _read_json(name: str) -> Any:
    path = resources.files("vaxcred").joinpath("data", "schemas", "eu-dcc-valuesets", f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def load_value_sets() -> ValueSets:
    """Load the vendored value sets (once per process; the result is immutable)."""
    sets: dict[str, ValueSet] = {}
    for name in VALUE_SET_NAMES:
        raw = _read_json(name)
        entries = {
            code: ValueSetEntry(
                code=code,
                display=str(item.get("display", "")),
                active=item.get("active") is True,
                system=str(item.get("system", "")),
                version=str(item.get("version", "")),
            )
            for code, item in raw["valueSetValues"].items()
        }
        sets[name] = ValueSet(
            id=raw["valueSetId"], date=raw["valueSetDate"], entries=MappingProxyType(entries)
        )
    raw = _read_json(_ENCODING_INSTRUCTIONS)
    encoding: dict[str, list[EncodingInstruction]] = {}
    for row_name, row in raw["valueSetValues"].items():
        instruction = EncodingInstruction(
            name=row_name,
            mp=row["vaccine-code"],
            ma=row["vaccine-manufacturer"],
            vp=tuple(row["sct-codes"]),
            note=row.get("note", ""),
        )
        encoding.setdefault(instruction.mp, []).append(instruction)
    return ValueSets(
        sets=MappingProxyType(sets),
        encoding=MappingProxyType({mp: tuple(rows) for mp, rows in encoding.items()}),
        encoding_date=raw["valueSetDate"],
    )


def check_vaccination(entry: Vaccination, value_sets: ValueSets | None = None) -> None:
    """Refuse to issue ``entry`` unless its codes are current and its product triple is allowed.

    Raises :class:`IssuanceError` with code ``issue.valueset`` (a code outside its value set, or deprecated)
    or ``issue.bad_combination`` (``mp``/``ma``/``vp`` not allowed by the encoding instructions).
    """
    if value_sets is None:
        active, triples = _default_issuable()
        if (
            entry.tg in active["disease-agent-targeted"]
            and entry.vp in active["vaccine-prophylaxis"]
            and entry.mp in active["vaccine-medicinal-product"]
            and entry.ma in active["vaccine-mah-manf"]
            and entry.co in active["country-2-codes"]
            and (entry.mp, entry.ma, entry.vp) in triples
        ):
            return  # fast path (dict hits); any doubt goes through the checks below for the exact error
    vs = value_sets or load_value_sets()
    for field, set_name, code in (
        ("tg", "disease-agent-targeted", entry.tg),
        ("vp", "vaccine-prophylaxis", entry.vp),
        ("mp", "vaccine-medicinal-product", entry.mp),
        ("ma", "vaccine-mah-manf", entry.ma),
        ("co", "country-2-codes", entry.co),
    ):
        if not vs.is_valid(set_name, code):
            raise IssuanceError(f"{field} {code!r} is not in the {set_name} value set", code="issue.valueset")
        if not vs.is_active(set_name, code):
            raise IssuanceError(f"{field} {code!r} is deprecated in {set_name}", code="issue.valueset")
    rows = vs.encoding.get(entry.mp, ())
    if not rows:
        raise IssuanceError(f"no encoding instruction for product {entry.mp!r}", code="issue.bad_combination")
    if not vs.allowed_combination(mp=entry.mp, ma=entry.ma, vp=entry.vp):
        allowed = "; ".join(f"ma {row.ma}, vp {' or '.join(row.vp)}" for row in rows)
        raise IssuanceError(
            f"product {entry.mp!r} must be encoded with {allowed}", code="issue.bad_combination"
        )


@functools.cache
def _default_issuable() -> tuple[dict[str, frozenset[str]], frozenset[tuple[str, str, str]]]:
    """For the vendored value sets: the active codes of each set, and every allowed (mp, ma, vp)."""
    vs = load_value_sets()
    active = {
        name: frozenset(code for code, entry in value_set.entries.items() if entry.active)
        for name, value_set in vs.sets.items()
    }
    allowed = frozenset(
        (row.mp, row.ma, vp) for rows in vs.encoding.values() for row in rows for vp in row.vp
    )
    return active, allowed


@dataclass(frozen=True, slots=True, kw_only=True)
class VaccineCodes:
    """The codes to issue for one product: ``mp``, ``ma`` and ``vp`` (all from the value sets)."""

    mp: str
    ma: str
    vp: str


#: Vaccines of Viet Nam's COVID-19 campaign (Ministry of Health approvals 2021–2022) → the codes to issue.
#: ``mp``/``ma`` follow the encoding instructions (Annex A); ``vp`` is the most specific SNOMED CT type
#: Annex A allows for the product (the generic ``28531000087107`` "COVID-19 vaccine" only where it is the
#: sole option).
#: Keys are the names used on Vietnamese vaccination records.
VIETNAM_VACCINES: Mapping[str, VaccineCodes] = MappingProxyType(
    {
        # AstraZeneca (also the SK Bioscience / COVAX supply): viral vector
        "Vaxzevria": VaccineCodes(mp="EU/1/21/1529", ma="ORG-100001699", vp="29061000087103"),
        # Pfizer-BioNTech: mRNA
        "Comirnaty": VaccineCodes(mp="EU/1/20/1528", ma="ORG-100030215", vp="1119349007"),
        # Moderna: mRNA
        "Spikevax": VaccineCodes(mp="EU/1/20/1507", ma="ORG-100031184", vp="1119349007"),
        # Janssen (now Jcovden): viral vector
        "Janssen": VaccineCodes(mp="EU/1/20/1525", ma="ORG-100001417", vp="29061000087103"),
        # Sinopharm Beijing ("Vero Cell" in Viet Nam): inactivated
        "BBIBP-CorV": VaccineCodes(mp="BBIBP-CorV", ma="ORG-100020693", vp="1157024006"),
        # Gamaleya: viral vector
        "Sputnik-V": VaccineCodes(mp="Sputnik-V", ma="Gamaleya-Research-Institute", vp="29061000087103"),
        # Gulf Pharmaceutical Industries (Sinopharm licence, UAE): inactivated
        "Hayat-Vax": VaccineCodes(mp="Hayat-Vax", ma="ORG-100023050", vp="1157024006"),
        # CIGB Cuba: Annex A allows only the generic type
        "Abdala": VaccineCodes(mp="Abdala", ma="CIGB", vp="28531000087107"),
        # Bharat Biotech: inactivated
        "Covaxin": VaccineCodes(mp="Covaxin", ma="Bharat-Biotech", vp="1157024006"),
        # Sinovac: inactivated
        "CoronaVac": VaccineCodes(mp="CoronaVac", ma="Sinovac-Biotech", vp="1157024006"),
        # Novavax (Nuvaxovid): recombinant spike protein
        "Novavax": VaccineCodes(mp="EU/1/21/1618", ma="ORG-100032020", vp="1162643001"),
    }
)
