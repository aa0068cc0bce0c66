"""DCC payloads, Vietnamese-name strategies and an independent HC1 wrapper for the interop and property tests.

The wrapper uses the ``base45`` PyPI package and the standard :mod:`zlib`, never vaxcred's codec, so that a
message built by another COSE library reaches :func:`vaxcred.verify.verify` through code vaxcred did not write.
"""

from __future__ import annotations

import random
import unicodedata
import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import base45
from hypothesis import strategies as st

from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.valuesets import VIETNAM_VACCINES

#: the fixed "now" of the deterministic tests (the library never reads the clock)
NOW = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = timedelta(days=365)
ISSUER_TEXT = "Bộ Y tế (Ministry of Health of Viet Nam)"

SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Ngô")
_ONSETS = (
    "",
    "b",
    "c",
    "ch",
    "d",
    "đ",
    "g",
    "gi",
    "h",
    "kh",
    "l",
    "m",
    "n",
    "ng",
    "nh",
    "ph",
    "qu",
    "t",
    "th",
    "tr",
    "v",
)
_NUCLEI = ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y", "ươ", "iê", "uô")
#: no tone, huyền, sắc, ngã, hỏi, nặng (as combining marks; the syllable is NFC-composed afterwards)
_TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
_CODAS = ("", "c", "ch", "m", "n", "ng", "nh", "p", "t", "i", "o", "u")


@st.composite
def vietnamese_syllables(draw: st.DrawFn) -> str:
    """One capitalised Vietnamese-looking syllable with vowel and tone marks, NFC (``Đức``, ``Hưởng``)."""
    nucleus = draw(st.sampled_from(_NUCLEI))
    tone = draw(st.sampled_from(_TONES))
    word = draw(st.sampled_from(_ONSETS)) + nucleus[0] + tone + nucleus[1:] + draw(st.sampled_from(_CODAS))
    return unicodedata.normalize("NFC", word).capitalize()


surnames = st.one_of(st.sampled_from(SURNAMES), vietnamese_syllables())
given_names = st.lists(vietnamese_syllables(), min_size=1, max_size=3).map(" ".join)


def icao_oracle(name: str) -> str:
    """The ICAO 9303 form of a name made only of Vietnamese letters and spaces, computed independently."""
    text = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in text if not unicodedata.combining(ch))
    return "<".join(bare.upper().split())


def vaccination(
    product: str = "Comirnaty", *, dn: int = 2, sd: int = 2, dt: str = "2021-09-12", ci: str | None = None
) -> Vaccination:
    """A vaccination entry for one of :data:`VIETNAM_VACCINES`."""
    codes = VIETNAM_VACCINES[product]
    return Vaccination(
        tg="840539006",
        vp=codes.vp,
        mp=codes.mp,
        ma=codes.ma,
        dn=dn,
        sd=sd,
        dt=dt,
        co="VN",
        is_=ISSUER_TEXT,
        ci=ci or generate_uvci(),
    )


def sample_dcc(**entry: Any) -> DCC:
    """Nguyễn Văn Đức, born 1990-05-17, a Comirnaty dose (``entry`` overrides :func:`vaccination`)."""
    return DCC(
        nam=Name.create(fn="Nguyễn", gn="Văn Đức"),
        dob=DateOfBirth.from_text("1990-05-17"),
        entry=vaccination(**entry),
    )


def _dob_text(day: date, precision: int) -> str:
    return day.isoformat()[: (4, 7, 10)[precision]]


@st.composite
def dccs(draw: st.DrawFn) -> DCC:
    """Valid, issuable vaccination DCCs: Vietnamese names, campaign products, dn <= sd, partial birth dates."""
    sd = draw(st.integers(min_value=1, max_value=9))
    dn = draw(st.integers(min_value=1, max_value=sd))
    dob = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2021, 12, 31)))
    dt = draw(st.dates(min_value=date(2021, 1, 1), max_value=date(2025, 12, 31)))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    entry = vaccination(
        draw(st.sampled_from(sorted(VIETNAM_VACCINES))),
        dn=dn,
        sd=sd,
        dt=dt.isoformat(),
        ci=generate_uvci(rng=random.Random(seed)),
    )
    return DCC(
        nam=Name.create(fn=draw(surnames), gn=draw(given_names)),
        dob=DateOfBirth.from_text(_dob_text(dob, draw(st.integers(min_value=0, max_value=2)))),
        entry=entry,
    )


def claims_for(dcc: DCC, *, iat: datetime = NOW, exp: datetime | None = None) -> dict[int, Any]:
    """CWT claims ``{1: "VN", 4: exp, 6: iat, -260: {1: dcc}}`` (exp defaults to iat + 1 year)."""
    exp = exp or iat + YEAR
    return {1: "VN", 4: int(exp.timestamp()), 6: int(iat.timestamp()), -260: {1: dcc.to_json()}}


def wrap_hc1(cose_bytes: bytes) -> str:
    """``HC1:`` + Base45(zlib(cose)) with the ``base45`` package and :mod:`zlib`."""
    return "HC1:" + base45.b45encode(zlib.compress(cose_bytes, 9)).decode("ascii")


def unwrap_hc1(hc1: str) -> bytes:
    """The COSE bytes of an HC1 string, through the ``base45`` package and :mod:`zlib`."""
    assert hc1.startswith("HC1:")
    return zlib.decompress(base45.b45decode(hc1[4:]))
