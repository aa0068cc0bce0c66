"""Vaccine names as sites write them → the canonical vaccine (a :data:`~vaxcred.valuesets.VIETNAM_VACCINES` key or
an active EU ``mp`` code) → the ``mp``/``ma``/``vp`` codes a passport carries.  Pure (the value sets are read once
from the package data)."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from vaxcred.pipeline.records.fields import echo_code
from vaxcred.valuesets import VIETNAM_VACCINES, VaccineCodes, load_value_sets

__all__ = ["VACCINE_ALIASES", "canonical_vaccines", "resolve_vaccine", "vaccine_codes"]

#: Friendly names seen on Vietnamese records → the ``VIETNAM_VACCINES`` key.  Keys are compared after
#: case-folding and dropping everything but letters, digits and ``/`` (so ``"Astra Zeneca"`` = ``"astrazeneca"``).
#: The key names themselves and their ``mp`` codes are matched too.
VACCINE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # AstraZeneca (incl. the SK Bioscience and COVAX supply)
        "AstraZeneca": "Vaxzevria",
        "AZ": "Vaxzevria",
        "AZD1222": "Vaxzevria",
        "ChAdOx1": "Vaxzevria",
        "ChAdOx1-S": "Vaxzevria",
        # Pfizer-BioNTech
        "Pfizer": "Comirnaty",
        "Pfizer-BioNTech": "Comirnaty",
        "BioNTech": "Comirnaty",
        "BNT162b2": "Comirnaty",
        # Moderna
        "Moderna": "Spikevax",
        "mRNA-1273": "Spikevax",
        # Janssen / Johnson & Johnson
        "Jcovden": "Janssen",
        "Johnson & Johnson": "Janssen",
        "J&J": "Janssen",
        "Ad26.COV2.S": "Janssen",
        # Sinopharm Beijing, called "Vero Cell" in Viet Nam; the deprecated EU code for it too
        "Vero Cell": "BBIBP-CorV",
        "Sinopharm": "BBIBP-CorV",
        "Sinopharm Vero Cell": "BBIBP-CorV",
        "Inactivated-SARS-CoV-2-Vero-Cell": "BBIBP-CorV",
        # Gamaleya
        "Sputnik V": "Sputnik-V",
        "Sputnik": "Sputnik-V",
        "Gam-COVID-Vac": "Sputnik-V",
        # Gulf Pharmaceutical Industries
        "Hayat Vax": "Hayat-Vax",
        # CIGB
        "CIGB-66": "Abdala",
        # Bharat Biotech
        "Bharat": "Covaxin",
        "BBV152": "Covaxin",
        # Sinovac
        "Sinovac": "CoronaVac",
        # Novavax (Nuvaxovid); NVX-CoV2373 is its deprecated EU code
        "Nuvaxovid": "Novavax",
        "NVX-CoV2373": "Novavax",
    }
)


def _alias_key(text: str) -> str:
    folded = unicodedata.normalize("NFC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum() or ch == "/")


#: the few vaccine spellings of an import repeat on every row: their keys are remembered (a pure function)
_cached_alias_key = functools.lru_cache(maxsize=4096)(_alias_key)


@functools.cache
def _vaccine_lookup() -> tuple[Mapping[str, str], frozenset[str]]:
    """(alias key → canonical vaccine, the canonical vaccines)."""
    value_sets = load_value_sets()
    products = value_sets.sets["vaccine-medicinal-product"].entries
    by_mp = {codes.mp: key for key, codes in VIETNAM_VACCINES.items()}
    lookup: dict[str, str] = {}
    canonical: set[str] = set(VIETNAM_VACCINES)
    for mp, entry in products.items():  # active mp codes, mapped to the Vietnamese key when there is one
        if entry.active:
            target = by_mp.get(mp, mp)
            canonical.add(mp)
            lookup[_alias_key(mp)] = target
    for key, codes in VIETNAM_VACCINES.items():
        lookup[_alias_key(key)] = key
        lookup[_alias_key(codes.mp)] = key
    for alias, key in VACCINE_ALIASES.items():
        lookup[_alias_key(alias)] = key
    return MappingProxyType(lookup), frozenset(canonical)


def resolve_vaccine(text: str) -> str:
    """The canonical vaccine for a product name, alias or ``mp`` code; ``ValueError`` if unknown."""
    if not isinstance(text, str):
        raise TypeError("vaccine must be str")
    lookup, _ = _vaccine_lookup()
    key = _cached_alias_key(text)
    if not key or key not in lookup:
        raise ValueError(f"unknown vaccine {echo_code(text)}")
    return lookup[key]


def vaccine_codes(vaccine: str) -> VaccineCodes:
    """The ``mp``/``ma``/``vp`` codes to issue for a canonical vaccine (a ``VIETNAM_VACCINES`` key or ``mp``).

    For an ``mp`` outside ``VIETNAM_VACCINES`` the first encoding instruction (Annex A) gives ``ma`` and ``vp``.
    """
    if vaccine in VIETNAM_VACCINES:
        return VIETNAM_VACCINES[vaccine]
    rows = load_value_sets().encoding.get(vaccine, ())
    if not rows or not rows[0].vp:
        raise ValueError(f"no encoding instruction for vaccine {vaccine!r}")
    return VaccineCodes(mp=vaccine, ma=rows[0].ma, vp=rows[0].vp[0])


def canonical_vaccines() -> frozenset[str]:
    """The vaccines a :class:`~vaxcred.pipeline.records.row.DoseRecord` may name (what :func:`resolve_vaccine`
    returns)."""
    return _vaccine_lookup()[1]
