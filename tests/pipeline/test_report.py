"""The data-quality report on both backends: SQL aggregation against a brute-force count; CSV, JSON, PNG, text."""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence

import pytest
import sqlalchemy as sa
from PIL import Image

from tests.pipeline.test_registry_check import SITES, load_people, registry_for
from vaxcred import keys
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry
from vaxcred.pipeline.reports.chart import CHART_WIDTH, chart_size, render_chart_png
from vaxcred.pipeline.reports.quality import (
    COUNT_FIELDS,
    UNKNOWN_PROVINCE,
    QualityCounts,
    QualityReport,
    build_quality_report,
    format_text,
)
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.pipeline.synthetic import generate_people
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, registry_checks, site_signatures

NOW = dt.datetime(2023, 1, 3, 8, 0, tzinfo=dt.UTC)
CHECKED = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
LATE_PEOPLE = tuple(generate_people(40, seed=99, sites=SITES))


class RenamingRegistry:
    """Every entry under another name: everyone fails on ``name`` (an old check the newest one replaces)."""

    def __init__(self, inner: TableRegistry) -> None:
        self.inner = inner

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        return {
            cid: dataclasses.replace(entry, full_name="Ngô Bảo Châu")
            for cid, entry in self.inner.lookup(citizen_ids).items()
        }


@pytest.fixture
def populated(database: Database) -> Database:
    """Every state at once: checked twice (the newest check decides), never checked, invalid IDs, signed."""
    load_people(database)
    registry = registry_for()
    run_registry_check(database, RenamingRegistry(registry), now=CHECKED)
    with database.connect() as conn:
        ids = list(conn.execute(sa.select(persons.c.id).order_by(persons.c.id)).scalars())
    run_registry_check(database, registry, now=CHECKED + dt.timedelta(hours=1), person_ids=ids[:240])
    load_people(database, LATE_PEOPLE, invalid=False)  # recorded after the check: not yet checked
    site_ca = keys.make_site_ca(now=CHECKED)
    site = keys.make_site_certificate(
        site_ca, site_id=SITES[0], site_name="Trạm Y tế Phường Láng", now=CHECKED
    )
    run_site_signing(database, {SITES[0]: site.signer()}, now=NOW)
    return database


def brute_force(db: Database) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """National, per-province and per-site counts, one dose at a time in Python."""
    with db.connect() as conn:
        dose_rows = conn.execute(
            sa.select(
                doses.c.id,
                doses.c.site_id,
                doses.c.person_id,
                persons.c.registry_status,
                persons.c.province_code,
            ).join(persons, persons.c.id == doses.c.person_id)
        ).all()
        newest: dict[int, tuple[int, str]] = {}
        for check_id, person_id, fields in conn.execute(
            sa.select(registry_checks.c.id, registry_checks.c.person_id, registry_checks.c.mismatch_fields)
        ):
            if person_id not in newest or check_id > newest[person_id][0]:
                newest[person_id] = (check_id, fields)
        signed = set(
            conn.execute(
                sa.select(site_signatures.c.dose_id).where(site_signatures.c.superseded_at.is_(None))
            ).scalars()
        )
    national: dict[str, int] = collections.Counter()
    provinces: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
    sites: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
    for dose_id, site_id, person_id, status, province in dose_rows:
        keys_ = ["doses"]
        keys_.append(
            {None: "unchecked", "VERIFIED": "verified", "MISMATCH": "mismatch", "NOT_FOUND": "not_found"}.get(
                status, "invalid_id"
            )
        )
        if status == "MISMATCH":
            keys_ += [f"mismatch_{f}" for f in newest[person_id][1].split(",")]
        keys_.append("signed" if dose_id in signed else "unsigned")
        for counter in (national, provinces[province or UNKNOWN_PROVINCE], sites[site_id]):
            for key in keys_:
                counter[key] += 1
    return national, provinces, sites


def as_dict(counts: QualityCounts) -> dict[str, int]:
    return {k: v for k, v in counts.to_dict().items() if v}


def test_report_agrees_with_a_brute_force_count(populated: Database) -> None:
    """National, per-province and per-site counts equal a dose-by-dose count in Python."""
    report = build_quality_report(populated, now=NOW)
    national, provinces, sites = brute_force(populated)
    assert as_dict(report.national) == dict(national)
    assert {g.key: as_dict(g.counts) for g in report.provinces} == {k: dict(v) for k, v in provinces.items()}
    assert {g.key: as_dict(g.counts) for g in report.sites} == {k: dict(v) for k, v in sites.items()}
    # every state occurs, so the comparison means something
    n = report.national
    assert min(n.unchecked, n.verified, n.mismatch, n.not_found, n.invalid_id, n.signed, n.unsigned) > 0
    assert n.mismatch_name > 0
    assert n.mismatch_dob > 0
    assert UNKNOWN_PROVINCE in {g.key for g in report.provinces}  # CMND holders


def test_the_newest_check_decides_the_failing_fields(populated: Database) -> None:
    """Persons re-checked after a name fix no longer count as name mismatches; the others still do."""
    report = build_quality_report(populated, now=NOW)
    with populated.connect() as conn:
        stale = conn.execute(
            sa.select(sa.func.count())
            .select_from(doses.join(persons, persons.c.id == doses.c.person_id))
            .where(persons.c.registry_status == "MISMATCH", persons.c.registry_checked_at == CHECKED)
        ).scalar_one()
    assert stale > 0
    assert report.national.mismatch_name >= stale  # renamed by the old registry: all fail on name


def test_groups_are_named_and_ordered(populated: Database) -> None:
    """Provinces by code with their Vietnamese names (unknown last), sites by id with their stored names."""
    report = build_quality_report(populated, now=NOW)
    codes = [g.key for g in report.provinces]
    assert codes[-1] == UNKNOWN_PROVINCE
    assert codes[:-1] == sorted(codes[:-1])
    names = {g.key: g.name for g in report.provinces}
    assert names["001"] == "Hà Nội"
    assert names["079"] == "Hồ Chí Minh"
    assert [g.key for g in report.sites] == sorted(SITES)
    assert report.site(SITES[0]).signed == report.national.signed
    assert report.province("001") == next(g.counts for g in report.provinces if g.key == "001")
    assert report.site("nowhere") == QualityCounts()


def test_csv_parses_back(populated: Database) -> None:
    """The CSV holds the national row, then every province and site, with every count."""
    report = build_quality_report(populated, now=NOW)
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(rows) == 1 + len(report.provinces) + len(report.sites)
    assert rows[0]["scope"] == "national"
    assert {k: int(rows[0][k]) for k in COUNT_FIELDS} == report.national.to_dict()
    by_key = {(r["scope"], r["key"]): r for r in rows}
    for group in report.provinces + report.sites:
        row = by_key[(group.scope, group.key)]
        assert row["name"] == group.name
        assert {k: int(row[k]) for k in COUNT_FIELDS} == group.counts.to_dict()
    assert [{k: str(v) for k, v in r.items()} for r in report.to_rows()] == rows


def test_json_parses_back(populated: Database) -> None:
    """The JSON document carries the time, national counts and each group with its name."""
    report = build_quality_report(populated, now=NOW)
    document = json.loads(report.to_json())
    assert document["generated_at"] == "2023-01-03T08:00:00Z"
    assert document["national"] == report.national.to_dict()
    assert [(p["code"], p["name"]) for p in document["provinces"]] == [
        (g.key, g.name) for g in report.provinces
    ]
    assert "Hà Nội" in report.to_json()  # names unescaped
    for entry, group in zip(document["sites"], report.sites, strict=True):
        assert entry["site_id"] == group.key
        assert {k: entry[k] for k in COUNT_FIELDS} == group.counts.to_dict()


@pytest.mark.parametrize(("by", "top"), [("province", 15), ("province", 3), ("site", 2)])
def test_chart_png_decodes_at_the_expected_size(populated: Database, by: str, top: int) -> None:
    """A PNG Pillow reads back, sized for the bars drawn, with the segments' colours in it."""
    report = build_quality_report(populated, now=NOW)
    png = render_chart_png(report, by=by, top=top)  # type: ignore[arg-type]
    groups = report.provinces if by == "province" else report.sites
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == chart_size(min(top, len(groups)))
        assert image.size[0] == CHART_WIDTH
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
    assert {(46, 125, 50), (245, 166, 35), (198, 40, 40), (176, 190, 197)} <= colours
    assert render_chart_png(report, by=by, top=top) == png  # type: ignore[arg-type]  # deterministic


def test_text_summary_in_the_seeds_terms(populated: Database) -> None:
    """The headline counts doses the way the news did, with failing verification broken down by field."""
    report = build_quality_report(populated, now=NOW)
    n = report.national
    text = format_text(report)
    assert f"{n.doses:,} doses; {n.unchecked:,} not yet checked; {n.verified:,} verified" in text
    assert f"{n.mismatch:,} failing verification" in text
    assert f"name {n.mismatch_name:,}, dob {n.mismatch_dob:,}, gender {n.mismatch_gender:,}" in text
    assert f"{n.not_found:,} not found" in text
    assert "Hà Nội" in text
    assert "2023-01-03 08:00 UTC" in text


def test_an_empty_database_gives_a_zero_report(database: Database) -> None:
    """No doses: zero counts, no groups, and the chart and text still render."""
    report = build_quality_report(database, now=NOW)
    assert report == QualityReport(generated_at=NOW, national=QualityCounts())
    with Image.open(io.BytesIO(render_chart_png(report))) as image:
        assert image.size == chart_size(0)
    assert "0 doses; 0 not yet checked" in format_text(report)
    assert json.loads(report.to_json())["provinces"] == []


def test_counts_must_add_up() -> None:
    """A group's statuses sum to its doses; fields and signatures cannot exceed their totals."""
    QualityCounts(doses=2, verified=1, mismatch=1, mismatch_name=1, mismatch_dob=1, signed=1)
    for bad in (
        {"doses": 1},
        {"doses": 1, "verified": 1, "signed": 2},
        {"doses": 1, "verified": 1, "mismatch_name": 1},
        {"doses": -1, "unchecked": -1},
    ):
        with pytest.raises(ValueError):
            QualityCounts(**bad)


def test_chart_and_report_refuse_caller_mistakes(database: Database) -> None:
    """Unknown grouping, no bars, naive time: ValueError."""
    report = QualityReport(generated_at=NOW, national=QualityCounts())
    with pytest.raises(ValueError):
        render_chart_png(report, by="district")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_chart_png(report, top=0)
    with pytest.raises(ValueError):
        build_quality_report(database, now=NOW.replace(tzinfo=None))
