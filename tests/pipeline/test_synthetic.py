"""The synthetic data generator: deterministic, the seeds' error mix, and rows that always parse."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import unicodedata

import pytest

from vaxcred.pipeline.records.cccd import Gender, IdType, check_consistency, parse_citizen_id
from vaxcred.pipeline.records.model import parse_row
from vaxcred.pipeline.records.names import NameDifference
from vaxcred.pipeline.registry.lookup import RegistryStatus, TableRegistry, match
from vaxcred.pipeline.synthetic import (
    DEFAULT_PROVINCES,
    SURNAMES,
    SyntheticPerson,
    default_sites,
    generate_people,
)

NOW = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
TODAY = NOW.date()
N = 4000


@pytest.fixture(scope="module")
def people() -> list[SyntheticPerson]:
    """One sample shared by the statistical tests."""
    return list(generate_people(N, seed=20220415))


def _fingerprint(person: SyntheticPerson) -> tuple[object, ...]:
    return (tuple(row.to_fields().items() for row in person.rows), person.entry)


def test_same_seed_gives_the_same_people() -> None:
    """Deterministic for a seed (and independent of how much is consumed)."""
    a = [_fingerprint(p) for p in generate_people(300, seed=7)]
    b = [_fingerprint(p) for p in generate_people(300, seed=7)]
    c = [_fingerprint(p) for p in itertools.islice(generate_people(1000, seed=7), 300)]
    assert a == b == c


def test_another_seed_gives_other_people() -> None:
    """Different seeds give different data."""
    a = [_fingerprint(p) for p in generate_people(50, seed=1)]
    b = [_fingerprint(p) for p in generate_people(50, seed=2)]
    assert a != b


def test_generation_is_lazy() -> None:
    """A generator: asking for a billion people costs nothing until consumed."""
    first = next(iter(generate_people(10**9, seed=1)))
    assert first.rows


def test_every_generated_row_parses_back(people: list[SyntheticPerson]) -> None:
    """Each row's text fields pass parse_row (with a clock after the last dose) and give the same row."""
    for person in people:
        for row in person.rows:
            assert parse_row(row.to_fields(), today=TODAY) == row


def test_rows_of_a_person_share_the_person_and_number_their_doses(people: list[SyntheticPerson]) -> None:
    """One Person per generated person, doses numbered 1..k in date order."""
    for person in people:
        assert len({row.person for row in person.rows}) == 1
        assert [row.dose.dose_number for row in person.rows] == list(range(1, len(person.rows) + 1))
        dates = [row.dose.date for row in person.rows]
        assert dates == sorted(dates)


def test_about_two_and_a_half_doses_per_person(people: list[SyntheticPerson]) -> None:
    """The issue's ~2.5 doses per person."""
    mean = sum(len(p.rows) for p in people) / len(people)
    assert 2.3 <= mean <= 2.7


def test_citizen_ids_are_unique_and_consistent(people: list[SyntheticPerson]) -> None:
    """IDs never repeat; every CCCD agrees with the registry's dob and gender (and the recorded ones)."""
    ids = [p.rows[0].person.citizen_id for p in people]
    assert len(set(ids)) == len(ids)
    for p in people:
        person = p.rows[0].person
        cid = parse_citizen_id(person.citizen_id)
        assert cid.id_type is person.id_type
        assert check_consistency(cid, person.dob, person.gender) == ()
        if p.entry is not None:
            assert check_consistency(cid, p.entry.date_of_birth, p.entry.gender) == ()
    assert collections.Counter(parse_citizen_id(i).id_type for i in ids)[IdType.CMND] > 0


def test_ids_stay_unique_in_a_crowded_bucket() -> None:
    """One province: many people share province, year and gender, still no repeated CCCD."""
    ids = [p.rows[0].person.citizen_id for p in generate_people(20_000, seed=3, provinces=("001",))]
    assert len(set(ids)) == len(ids)


def test_error_mix_matches_the_seeds_within_tolerance(people: list[SyntheticPerson]) -> None:
    """~20 % MISMATCH, ~1.5 % NOT_FOUND, the rest VERIFIED, judged by match() against the registry entry."""
    statuses = collections.Counter(match(p.rows[0].person, p.entry, now=NOW).status for p in people)
    assert statuses[RegistryStatus.INVALID_ID] == 0
    assert abs(statuses[RegistryStatus.MISMATCH] / N - 0.20) < 0.025
    assert abs(statuses[RegistryStatus.NOT_FOUND] / N - 0.015) < 0.008
    assert sum(statuses.values()) == N


def test_custom_error_mix() -> None:
    """error_mix shares are honoured, including none at all."""
    clean = [
        match(p.rows[0].person, p.entry, now=NOW).status for p in generate_people(500, seed=5, error_mix={})
    ]
    assert set(clean) == {RegistryStatus.VERIFIED}
    mix = {"mismatch": 0.5, "not_found": 0.1}
    statuses = collections.Counter(
        match(p.rows[0].person, p.entry, now=NOW).status for p in generate_people(3000, seed=5, error_mix=mix)
    )
    assert abs(statuses[RegistryStatus.MISMATCH] / 3000 - 0.5) < 0.04
    assert abs(statuses[RegistryStatus.NOT_FOUND] / 3000 - 0.1) < 0.025


def test_mismatches_are_realistic_data_entry_errors(people: list[SyntheticPerson]) -> None:
    """Missing tone marks dominate; đ/d, other name errors, wrong dob and wrong gender all occur."""
    results = [match(p.rows[0].person, p.entry, now=NOW) for p in people]
    mismatches = [r for r in results if r.status is RegistryStatus.MISMATCH]
    kinds = collections.Counter(r.name_difference for r in mismatches if r.mismatch_fields == ("name",))
    fields = collections.Counter(r.mismatch_fields for r in mismatches)
    assert kinds.most_common(1)[0][0] is NameDifference.TONE_MARKS
    assert kinds[NameDifference.D_STROKE] > 0
    assert kinds[NameDifference.OTHER] > 0
    assert fields[("dob",)] > 0.2 * len(mismatches)
    assert fields[("gender",)] > 0
    assert set(fields) <= {("name",), ("dob",), ("gender",)}


def test_verified_people_include_harmless_variation(people: list[SyntheticPerson]) -> None:
    """Upper-case names, double spaces and year-only dobs occur and still verify."""
    results = [match(p.rows[0].person, p.entry, now=NOW) for p in people]
    verified = [r for r in results if r.status is RegistryStatus.VERIFIED]
    kinds = collections.Counter(r.name_difference for r in verified)
    assert kinds[NameDifference.CASE] > 0
    assert kinds[NameDifference.SPACING] > 0
    assert any(len(p.rows[0].person.dob.text) == 4 for p in people)


def test_names_are_vietnamese_with_realistic_surname_frequencies(people: list[SyntheticPerson]) -> None:
    """Nguyễn ~38 %, then Trần and Lê; names are NFC with a surname, middle and given name."""
    names = [p.entry.full_name for p in people if p.entry is not None]
    surnames = collections.Counter(name.split()[0] for name in names)
    assert abs(surnames["Nguyễn"] / len(names) - 0.38) < 0.04
    assert [s for s, _ in surnames.most_common(3)] == ["Nguyễn", "Trần", "Lê"]
    assert set(surnames) <= set(SURNAMES)
    assert all(unicodedata.is_normalized("NFC", n) and len(n.split()) >= 3 for n in names)
    female = [p.entry.full_name for p in people if p.entry is not None and p.entry.gender is Gender.FEMALE]
    assert sum(" Thị " in n for n in female) > 0.2 * len(female)


def test_not_found_people_have_no_entry_but_valid_rows(people: list[SyntheticPerson]) -> None:
    """A person absent from the registry still has well-formed rows."""
    absent = [p for p in people if p.entry is None]
    assert absent
    registry = TableRegistry(p.entry for p in people if p.entry is not None)
    assert not any(p.rows[0].person.citizen_id in registry for p in absent)


def test_sites_and_provinces_are_configurable() -> None:
    """Rows use only the given sites; CCCDs only the given provinces."""
    people = list(generate_people(200, seed=9, sites=["BV-BACHMAI", "TTYT-HOANKIEM"], provinces=["001"]))
    assert {row.dose.site_id for p in people for row in p.rows} == {"BV-BACHMAI", "TTYT-HOANKIEM"}
    assert {p.rows[0].person.citizen_id[:3] for p in people if p.rows[0].person.id_type is IdType.CCCD} == {
        "001"
    }
    assert len(default_sites()) == 3 * len(DEFAULT_PROVINCES)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_mix": {"typo": 0.1}},
        {"error_mix": {"mismatch": 0.9, "not_found": 0.2}},
        {"error_mix": {"mismatch": -0.1}},
        {"provinces": ["003"]},
        {"provinces": []},
        {"sites": []},
        {"sites": ["Bệnh viện"]},
        {"cmnd_share": 2.0},
    ],
)
def test_bad_parameters_are_refused_up_front(kwargs: dict[str, object]) -> None:
    """Configuration errors raise before anything is generated."""
    with pytest.raises(ValueError):
        generate_people(10, seed=1, **kwargs)  # type: ignore[arg-type]
