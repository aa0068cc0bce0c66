"""Synthetic vaccination records and registry entries for tests, the demo and the benchmark.

:func:`generate_people` yields, per person, the import rows a site would have entered (about 2.5 doses each)
and the registry's entry for that person (``None`` for a person the registry does not know).  The registry entry
is the truth; the rows carry the seeds' error mix (../shared/seeds: ~20 % failing verification, ~1.5 % not
found) as realistic data-entry errors:

- ``tone_marks`` — the name typed without diacritics (``Nguyen Van Duc`` for ``Nguyễn Văn Đức``);
- ``d_stroke`` — ``đ`` typed as ``d``, other marks kept;
- ``dob_day`` — day and month swapped (DD/MM confusion) or the day off by one; the year stays, so the CCCD
  still agrees with it;
- ``name_other`` — a middle name left out, or another given name;
- ``gender`` — the wrong gender, for CMND holders only (a CCCD's digit 4 would make the row fail on import).

Verified people also get harmless variation (an upper-case name, a double space, a year-only date of birth) that
the matching rules accept.  Every row passes :func:`~vaxcred.pipeline.records.model.parse_row`; CCCDs are consistent
with the date of birth and gender and unique within one run.

Deterministic for a ``seed`` (:class:`random.Random`; this is test data, not security) and lazy: memory does not
grow with ``n``.  Pure: no I/O, no clock (dose dates lie in 2021–2022).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.records.cccd import PROVINCES, Gender, IdType, build_cccd
from vaxcred.pipeline.records.model import SITE_ID_PATTERN, DoseRecord, ImportRow, Person
from vaxcred.pipeline.registry.lookup import RegistryEntry

__all__ = [
    "DEFAULT_ERROR_MIX",
    "DEFAULT_PROVINCES",
    "MISMATCH_KINDS",
    "SURNAMES",
    "SyntheticPerson",
    "default_sites",
    "generate_people",
]


class SyntheticPerson(NamedTuple):
    """One generated person: the rows as recorded, and the registry's entry (``None``: not in the registry)."""

    rows: tuple[ImportRow, ...]
    entry: RegistryEntry | None


#: The seeds' error mix: shares of people whose records fail verification / are not in the registry.
DEFAULT_ERROR_MIX: Mapping[str, float] = MappingProxyType({"mismatch": 0.20, "not_found": 0.015})
#: Hà Nội, Hồ Chí Minh, Đà Nẵng, Hải Phòng, Cần Thơ, Thanh Hóa, Nghệ An.
DEFAULT_PROVINCES = ("001", "079", "048", "031", "092", "038", "040")
#: The injected mismatch kinds and their relative weights.
MISMATCH_KINDS: Mapping[str, float] = MappingProxyType(
    {"tone_marks": 0.40, "dob_day": 0.30, "name_other": 0.10, "d_stroke": 0.10, "gender": 0.10}
)

#: Surnames (họ) with their approximate share of the population in percent.
SURNAMES: Mapping[str, float] = MappingProxyType(
    {
        "Nguyễn": 38.4,
        "Trần": 12.1,
        "Lê": 9.5,
        "Phạm": 7.0,
        "Hoàng": 3.0,
        "Huỳnh": 2.1,
        "Phan": 4.5,
        "Vũ": 2.0,
        "Võ": 1.9,
        "Đặng": 2.1,
        "Bùi": 2.0,
        "Đỗ": 1.4,
        "Hồ": 1.3,
        "Ngô": 1.3,
        "Dương": 1.0,
        "Lý": 0.5,
        "Đinh": 0.6,
        "Trịnh": 0.5,
        "Mai": 0.5,
        "Trương": 0.5,
        "Lưu": 0.4,
        "Lâm": 0.4,
        "Đoàn": 0.5,
        "Tô": 0.3,
        "Hà": 0.4,
        "Cao": 0.4,
        "Lương": 0.4,
        "Tạ": 0.3,
        "Châu": 0.3,
        "Quách": 0.2,
        "Kiều": 0.2,
        "Lã": 0.1,
    }
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Middle names (tên đệm) and given names (tên) by gender.
_MIDDLE = {
    Gender.MALE: _words("Văn Hữu Đức Minh Quang Thành Công Đình Xuân Ngọc Quốc Anh"),
    Gender.FEMALE: _words("Thị Ngọc Thu Thanh Mai Kim Thúy Hồng Minh Phương Bảo Diệu"),
}
#: Relative weights of the middle names above: Văn and Thị lead (most of all among older people).
_MIDDLE_CUM = {
    Gender.MALE: tuple(itertools.accumulate((40, 6, 8, 10, 6, 5, 5, 6, 4, 4, 4, 2))),
    Gender.FEMALE: tuple(itertools.accumulate((45, 8, 7, 7, 3, 5, 4, 5, 4, 5, 3, 4))),
}
_GIVEN = {
    Gender.MALE: _words(
        "Anh Bảo Bình Cường Dũng Đức Dương Hải Hiếu Hoàng Hùng Huy Khánh Khoa Long Minh Nam Phong Phúc Quân "
        "Quang Sơn Tài Thắng Thành Trung Tuấn Việt Vinh Đạt Lộc Nghĩa Toàn Tùng"
    ),
    Gender.FEMALE: _words(
        "Anh Châu Chi Dung Giang Hà Hạnh Hằng Hoa Hương Huyền Lan Linh Loan Mai My Nga Ngân Ngọc Nhung Oanh "
        "Phương Quỳnh Thảo Thủy Trang Trâm Tuyết Vân Yến Đào Diệp Hiền Lệ"
    ),
}
_SURNAME_LIST = tuple(SURNAMES)
_SURNAME_CUM = tuple(itertools.accumulate(SURNAMES.values()))
_KIND_LIST = tuple(MISMATCH_KINDS)
_KIND_CUM = tuple(itertools.accumulate(MISMATCH_KINDS.values()))

# Doses per person (1–4, mean 2.55) and the vaccines of Viet Nam's campaign with rough shares.
_DOSE_COUNTS = (1, 2, 3, 4)
_DOSE_CUM = tuple(itertools.accumulate((10, 35, 45, 10)))
_PRIMARY = ("Vaxzevria", "BBIBP-CorV", "Comirnaty", "Spikevax", "Sputnik-V", "Hayat-Vax", "Abdala")
_PRIMARY_CUM = tuple(itertools.accumulate((32, 30, 22, 10, 2, 2, 2)))
_BOOSTER = ("Comirnaty", "Spikevax", "Vaxzevria")
_BOOSTER_CUM = tuple(itertools.accumulate((50, 35, 15)))
_LOT_PREFIX = {
    "Vaxzevria": "ABV",
    "BBIBP-CorV": "2021",
    "Comirnaty": "FK",
    "Spikevax": "MOD",
    "Sputnik-V": "SPV",
    "Hayat-Vax": "HV",
    "Abdala": "ABD",
}
_CAMPAIGN_START = dt.date(2021, 3, 8)
_FIRST_DOSE_SPAN = (dt.date(2022, 2, 28) - _CAMPAIGN_START).days
_LAST_DOSE = dt.date(2022, 12, 31)
_SEQ_MULT = 7919  # prime, coprime to 10: k -> (k * 7919 + offset) mod 10**n permutes the sequence numbers
_STROKE = str.maketrans({"đ": "d", "Đ": "D"})
_SITE_RE = re.compile(SITE_ID_PATTERN + r"\Z", re.ASCII)


def default_sites(provinces: Sequence[str] = DEFAULT_PROVINCES, per_province: int = 3) -> tuple[str, ...]:
    """Site IDs ``VN<province>-S<nn>``: ``per_province`` vaccination sites in each province."""
    return tuple(f"VN{code}-S{k:02d}" for code in provinces for k in range(1, per_province + 1))


def _strip_marks(name: str) -> str:
    text = unicodedata.normalize("NFD", name.translate(_STROKE))
    return unicodedata.normalize("NFC", "".join(ch for ch in text if not unicodedata.combining(ch)))


class _Generator:
    def __init__(
        self,
        *,
        seed: int,
        error_mix: Mapping[str, float],
        sites: Sequence[str],
        provinces: Sequence[str],
        cmnd_share: float,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
        self.not_found = float(error_mix.get("not_found", 0.0))
        self.mismatch = float(error_mix.get("mismatch", 0.0))
        self.sites = tuple(sites)
        self.provinces = tuple(provinces)
        self.cmnd_share = cmnd_share
        self.offset = self.rng.randrange(1_000_000)
        self.buckets: dict[tuple[str, int, int], int] = {}
        self.cmnd_count = 0

    def citizen_id(self, province: str, dob: dt.date, gender: Gender, id_type: IdType) -> str:
        if id_type is IdType.CMND:
            k = self.cmnd_count
            self.cmnd_count += 1
            if k >= 10**9:
                raise ValueError("too many CMND numbers for one run")
            return f"{(k * _SEQ_MULT + self.offset) % 10**9:09d}"
        key = (province, dob.year, 0 if gender is Gender.MALE else 1)
        k = self.buckets.get(key, 0)
        if k >= 1_000_000:
            raise ValueError("more than a million people in one province, year and gender")
        self.buckets[key] = k + 1
        sequence = (k * _SEQ_MULT + self.offset) % 1_000_000
        return build_cccd(province_code=province, birth_year=dob.year, gender=gender, sequence=sequence)

    def name(self, gender: Gender) -> str:
        rng = self.rng
        middle, middle_cum = _MIDDLE[gender], _MIDDLE_CUM[gender]
        words = [
            rng.choices(_SURNAME_LIST, cum_weights=_SURNAME_CUM)[0],
            rng.choices(middle, cum_weights=middle_cum)[0],
        ]
        if rng.random() < 0.2:
            extra = rng.choices(middle, cum_weights=middle_cum)[0]
            if extra not in words:  # a second middle name; Thị / Văn come first (Nguyễn Thị Thu Hương)
                words.insert(1 if extra in ("Thị", "Văn") else len(words), extra)
        given = rng.choice(_GIVEN[gender])
        if given == words[-1]:
            given = _GIVEN[gender][(_GIVEN[gender].index(given) + 1) % len(_GIVEN[gender])]
        words.append(given)
        return " ".join(words)

    def birth_date(self) -> dt.date:
        rng = self.rng
        year = int(rng.triangular(1932, 2009, 1988))
        start = dt.date(year, 1, 1)
        return start + dt.timedelta(days=rng.randrange((dt.date(year + 1, 1, 1) - start).days))

    def inject(
        self, kind: str, name: str, dob: dt.date, gender: Gender, id_type: IdType
    ) -> tuple[str, str, Gender]:
        """(recorded name, recorded dob text, recorded gender) with one error of ``kind``, or a fallback."""
        rng = self.rng
        for attempt in (kind, "tone_marks", "dob_day"):
            if attempt == "tone_marks" and (plain := _strip_marks(name)) != name:
                return plain, dob.isoformat(), gender
            if attempt == "d_stroke" and (plain := name.translate(_STROKE)) != name:
                return plain, dob.isoformat(), gender
            if attempt == "gender" and id_type is IdType.CMND:
                other = Gender.FEMALE if gender is Gender.MALE else Gender.MALE
                return name, dob.isoformat(), other
            if attempt == "name_other":
                words = name.split()
                if len(words) >= 3 and rng.random() < 0.5:
                    del words[rng.randrange(1, len(words) - 1)]  # a middle name left out
                else:  # another given name
                    choices = [g for g in _GIVEN[gender] if g != words[-1]]
                    words[-1] = rng.choice(choices)
                return " ".join(words), dob.isoformat(), gender
            if attempt == "dob_day":
                if dob.day <= 12 and dob.day != dob.month:
                    wrong = dob.replace(month=dob.day, day=dob.month)  # DD/MM confusion
                else:
                    wrong = dob + dt.timedelta(days=-1 if dob.day > 1 else 1)
                    if wrong.year != dob.year:
                        wrong = dob + dt.timedelta(days=1)
                return name, wrong.isoformat(), gender
        raise AssertionError("unreachable: dob_day always applies")  # pragma: no cover

    def benign(self, name: str, dob: dt.date) -> tuple[str, str]:
        """Variation that still verifies: upper case, a double space, a year-only date of birth."""
        r = self.rng.random()
        if r < 0.03:
            return name.upper(), dob.isoformat()
        if r < 0.05:
            return name.replace(" ", "  ", 1), dob.isoformat()
        if r < 0.08:
            return name, str(dob.year)
        return name, dob.isoformat()

    def doses(self, citizen_id: str, born: dt.date) -> tuple[DoseRecord, ...]:
        rng = self.rng
        count = rng.choices(_DOSE_COUNTS, cum_weights=_DOSE_CUM)[0]
        primary = rng.choices(_PRIMARY, cum_weights=_PRIMARY_CUM)[0]
        date = _CAMPAIGN_START + dt.timedelta(days=rng.randrange(_FIRST_DOSE_SPAN))
        if date < born:  # pragma: no cover - births end in 2009
            date = born
        site = rng.choice(self.sites)
        out: list[DoseRecord] = []
        for number in range(1, count + 1):
            if number > 1:
                gap = rng.randint(28, 90) if number == 2 else rng.randint(120, 240)
                date += dt.timedelta(days=gap)
                if date > _LAST_DOSE:
                    break
                if rng.random() < 0.3:
                    site = rng.choice(self.sites)
            vaccine = primary if number <= 2 else rng.choices(_BOOSTER, cum_weights=_BOOSTER_CUM)[0]
            lot = f"{_LOT_PREFIX.get(vaccine, 'LOT')}{rng.randint(1000, 99999)}"
            out.append(
                DoseRecord(
                    citizen_id=citizen_id,
                    vaccine=vaccine,
                    lot=lot,
                    date=date.isoformat(),
                    dose_number=number,
                    site_id=site,
                )
            )
        return tuple(out)

    def person(self) -> SyntheticPerson:
        rng = self.rng
        gender = Gender.MALE if rng.random() < 0.5 else Gender.FEMALE
        born = self.birth_date()
        name = self.name(gender)
        province = rng.choice(self.provinces)
        id_type = IdType.CMND if rng.random() < self.cmnd_share else IdType.CCCD
        citizen_id = self.citizen_id(province, born, gender, id_type)
        r = rng.random()
        entry: RegistryEntry | None = RegistryEntry(
            citizen_id=citizen_id, full_name=name, dob=born.isoformat(), gender=gender
        )
        recorded_gender = gender
        if r < self.not_found:
            entry = None
            recorded_name, recorded_dob = self.benign(name, born)
        elif r < self.not_found + self.mismatch:
            kind = rng.choices(_KIND_LIST, cum_weights=_KIND_CUM)[0]
            recorded_name, recorded_dob, recorded_gender = self.inject(kind, name, born, gender, id_type)
        else:
            recorded_name, recorded_dob = self.benign(name, born)
        person = Person(
            citizen_id=citizen_id,
            id_type=id_type,
            full_name=recorded_name,
            dob=DateOfBirth.from_text(recorded_dob),
            gender=recorded_gender,
        )
        rows = tuple(ImportRow(person=person, dose=dose) for dose in self.doses(citizen_id, born))
        return SyntheticPerson(rows=rows, entry=entry)


def generate_people(
    n: int,
    *,
    seed: int,
    error_mix: Mapping[str, float] = DEFAULT_ERROR_MIX,
    sites: Sequence[str] | None = None,
    provinces: Sequence[str] = DEFAULT_PROVINCES,
    cmnd_share: float = 0.08,
) -> Iterator[SyntheticPerson]:
    """Yield ``n`` synthetic people (see the module docstring); the same ``seed`` gives the same people.

    ``error_mix`` keys: ``"mismatch"``, ``"not_found"`` (shares of people, summing to at most 1).  ``sites``
    defaults to :func:`default_sites` of ``provinces`` (CCCD province codes, birth registration).
    ``cmnd_share`` is the share of people recorded with a legacy 9-digit CMND instead of a CCCD.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative int")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError("seed must be an int")
    unknown = set(error_mix) - {"mismatch", "not_found"}
    if unknown:
        raise ValueError(f"unknown error_mix keys: {sorted(unknown)}")
    shares = [float(v) for v in error_mix.values()]
    if any(not 0.0 <= v <= 1.0 for v in shares) or sum(shares) > 1.0:
        raise ValueError("error_mix shares must be within 0–1 and sum to at most 1")
    if not provinces or any(code not in PROVINCES for code in provinces):
        raise ValueError("provinces must be non-empty CCCD province codes")
    site_ids = tuple(sites) if sites is not None else default_sites(provinces)
    if not site_ids:
        raise ValueError("sites must not be empty")
    if any(not isinstance(site, str) or not _SITE_RE.match(site) for site in site_ids):
        raise ValueError(f"site IDs must match {SITE_ID_PATTERN}")
    if not 0.0 <= cmnd_share <= 1.0:
        raise ValueError("cmnd_share must be within 0–1")
    return _generate(
        n,
        _Generator(
            seed=seed, error_mix=error_mix, sites=site_ids, provinces=provinces, cmnd_share=cmnd_share
        ),
    )


def _generate(n: int, generator: _Generator) -> Iterator[SyntheticPerson]:
    for _ in range(n):
        yield generator.person()
