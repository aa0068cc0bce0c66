"""The data-quality report in the seeds' terms: how many doses verified against the population registry.

The news of April 2022 counted doses: 212 million given, 43 million failing verification (wrong name, date of
birth, …), 3 million not found in the population database. This report counts the same way, **per dose**, by
the registry status of the dose's person:

=================  ===================================================================================
``doses``          doses recorded
``unchecked``      the person was never checked against the registry (``persons.registry_status`` NULL)
``verified``       ``VERIFIED``
``mismatch``       ``MISMATCH``: failing verification; ``mismatch_name`` / ``_dob`` / ``_gender`` count the
                   doses whose person's *newest* registry check names that field (one dose may count in
                   several fields, so they can sum to more than ``mismatch``)
``not_found``      ``NOT_FOUND``: not in the population registry
``invalid_id``     ``INVALID_ID``: the recorded citizen ID is malformed or contradicts the recorded dob/gender
``signed``         the dose has a current site signature (``unsigned`` = ``doses`` - ``signed``)
``contradictory``  the dose's person has a contradictory history (:mod:`vaxcred.pipeline.records.history`:
                   a dose number recorded twice, or a higher dose dated on or before a lower one); held
                   from issuance until a correction resolves it
=================  ===================================================================================

``unchecked + verified + mismatch + not_found + invalid_id == doses`` in every group. Groups: per vaccination
site (the site that recorded the dose), per province (the person's: the CCCD's first three digits,
``"unknown"`` for CMND and other IDs) and national.

:func:`build_quality_report` computes it with one aggregate query (``GROUP BY`` site, province, status, mismatch
fields, signed) — the database does the counting, Python folds the few hundred groups — so it runs unchanged on
hundreds of millions of doses. Outputs: :meth:`QualityReport.to_csv`, :meth:`QualityReport.to_json`,
:func:`format_text` (the console summary) and :func:`render_chart_png` (a stacked bar chart; the vendored DejaVu
Sans has the Vietnamese glyphs; drawn in :mod:`vaxcred.pipeline.reports.chart`, re-exported here). Counts only:
no personal data.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import sqlalchemy as sa

from vaxcred.pipeline.records.cccd import PROVINCES
from vaxcred.pipeline.registry.lookup import MISMATCH_FIELDS, RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, registry_checks, site_signatures, sites
from vaxcred.trust.store import require_utc

__all__ = [
    "COUNT_FIELDS",
    "UNKNOWN_PROVINCE",
    "QualityCounts",
    "QualityGroup",
    "QualityReport",
    "build_quality_report",
    "format_text",
]

#: the province key of persons whose ID carries no province (CMND, other numbers)
UNKNOWN_PROVINCE: Final = "unknown"
#: the counts of a group, in report order (CSV columns after ``scope``, ``key``, ``name``)
COUNT_FIELDS: Final = (
    "doses",
    "unchecked",
    "verified",
    "mismatch",
    "mismatch_name",
    "mismatch_dob",
    "mismatch_gender",
    "not_found",
    "invalid_id",
    "signed",
    "unsigned",
    "contradictory",
)
_CSV_HEADER: Final = ("scope", "key", "name", *COUNT_FIELDS)

Scope = Literal["national", "province", "site"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityCounts:
    """The dose counts of one group (see the module docstring for each field)."""

    doses: int = 0
    unchecked: int = 0
    verified: int = 0
    mismatch: int = 0
    mismatch_name: int = 0
    mismatch_dob: int = 0
    mismatch_gender: int = 0
    not_found: int = 0
    invalid_id: int = 0
    signed: int = 0
    contradictory: int = 0

    def __post_init__(self) -> None:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
            raise ValueError("counts must be non-negative ints")
        if self.unchecked + self.verified + self.mismatch + self.not_found + self.invalid_id != self.doses:
            raise ValueError("unchecked + verified + mismatch + not_found + invalid_id must equal doses")
        if (
            self.signed > self.doses
            or self.contradictory > self.doses
            or max(self.mismatch_name, self.mismatch_dob, self.mismatch_gender) > (self.mismatch)
        ):
            raise ValueError("signed and per-field mismatch counts cannot exceed their totals")

    @property
    def unsigned(self) -> int:
        """Doses without a current site signature."""
        return self.doses - self.signed

    @property
    def verified_share(self) -> float:
        """``verified / doses`` (0.0 without doses)."""
        return self.verified / self.doses if self.doses else 0.0

    def __add__(self, other: QualityCounts) -> QualityCounts:
        return QualityCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )

    def to_dict(self) -> dict[str, int]:
        """:data:`COUNT_FIELDS` → value."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityGroup:
    """The counts of one province or site: ``key`` is the province code / site id, ``name`` its name
    (the province's Vietnamese name; the site's name when known, else ``""``)."""

    scope: Scope
    key: str
    name: str
    counts: QualityCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityReport:
    """National totals, then per province (by code, ``unknown`` last) and per site (by id)."""

    generated_at: dt.datetime
    national: QualityCounts
    provinces: tuple[QualityGroup, ...] = ()
    sites: tuple[QualityGroup, ...] = ()

    def __post_init__(self) -> None:
        require_utc(self.generated_at, "generated_at")
        for groups in (self.provinces, self.sites):
            if not isinstance(groups, tuple) or not all(isinstance(g, QualityGroup) for g in groups):
                raise TypeError("provinces and sites must be tuples of QualityGroup")

    def province(self, code: str) -> QualityCounts:
        """The counts of province ``code`` (``"unknown"`` too); zero counts when it has no doses."""
        return next((g.counts for g in self.provinces if g.key == code), QualityCounts())

    def site(self, site_id: str) -> QualityCounts:
        """The counts of site ``site_id``; zero counts when it recorded no doses."""
        return next((g.counts for g in self.sites if g.key == site_id), QualityCounts())

    def to_rows(self) -> tuple[dict[str, str | int], ...]:
        """One flat row per group — the national row, then provinces, then sites — with the CSV columns."""
        groups = (QualityGroup(scope="national", key="VN", name="Việt Nam", counts=self.national),)
        return tuple(
            {"scope": g.scope, "key": g.key, "name": g.name, **g.counts.to_dict()}
            for g in groups + self.provinces + self.sites
        )

    def to_csv(self) -> str:
        """:meth:`to_rows` as CSV (header ``scope,key,name,doses,…``; ``\\r\\n`` line ends, UTF-8 text)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_CSV_HEADER)
        writer.writeheader()
        writer.writerows(self.to_rows())
        return buffer.getvalue()

    def to_json(self) -> str:
        """``{"generated_at", "national": {counts}, "provinces": [{"code", "name", counts…}], "sites":
        [{"site_id", "name", counts…}]}`` (UTF-8 text, names unescaped)."""
        document = {
            "generated_at": self.generated_at.isoformat().replace("+00:00", "Z"),
            "national": self.national.to_dict(),
            "provinces": [{"code": g.key, "name": g.name, **g.counts.to_dict()} for g in self.provinces],
            "sites": [{"site_id": g.key, "name": g.name, **g.counts.to_dict()} for g in self.sites],
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


# --- computing -------------------------------------------------------------------------------------------


def _aggregate_query() -> sa.Select[str, str | None, str | None, str, int, int, int]:
    status = persons.c.registry_status
    newest_fields = (
        sa.select(registry_checks.c.mismatch_fields)
        .where(registry_checks.c.person_id == persons.c.id)
        .order_by(registry_checks.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    per_dose = (
        sa.select(
            doses.c.site_id.label("site_id"),
            persons.c.province_code.label("province"),
            status.label("status"),
            # the fields only matter for MISMATCH: the newest check is looked up for those doses alone
            sa.case((status == RegistryStatus.MISMATCH.value, newest_fields), else_="").label("fields"),
            sa.case((site_signatures.c.id.is_(None), 0), else_=1).label("signed"),
            sa.case((_contradictory_history(), 1), else_=0).label("contradictory"),
        )
        .select_from(
            doses.join(persons, persons.c.id == doses.c.person_id).outerjoin(
                site_signatures,
                sa.and_(site_signatures.c.dose_id == doses.c.id, site_signatures.c.superseded_at.is_(None)),
            )
        )
        .where(doses.c.withdrawn_at.is_(None))  # a withdrawn record is not counted
        .subquery("per_dose")
    )
    keys = (
        per_dose.c.site_id,
        per_dose.c.province,
        per_dose.c.status,
        per_dose.c.fields,
        per_dose.c.signed,
        per_dose.c.contradictory,
    )
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys)


def _contradictory_history() -> sa.Exists:
    """EXISTS two doses of the dose's person that contradict each other (records.history, in SQL)."""
    one, other = doses.alias("one"), doses.alias("other")
    return sa.exists().where(
        one.c.person_id == persons.c.id,
        other.c.person_id == persons.c.id,
        one.c.id != other.c.id,
        one.c.withdrawn_at.is_(None),
        other.c.withdrawn_at.is_(None),
        sa.or_(
            one.c.dose_number == other.c.dose_number,
            sa.and_(one.c.dose_number < other.c.dose_number, other.c.date <= one.c.date),
        ),
    )


def _counts(status: str | None, fields: str | None, signed: int, contradictory: int, n: int) -> QualityCounts:
    named = set((fields or "").split(","))
    kind = "unchecked" if status is None else _STATUS_FIELD[RegistryStatus(status)]
    values = {"doses": n, kind: n, "signed": n if signed else 0, "contradictory": n if contradictory else 0}
    if kind == "mismatch":
        values.update({f"mismatch_{f}": n for f in MISMATCH_FIELDS if f in named})
    return QualityCounts(**values)


_STATUS_FIELD: Final = {
    RegistryStatus.VERIFIED: "verified",
    RegistryStatus.MISMATCH: "mismatch",
    RegistryStatus.NOT_FOUND: "not_found",
    RegistryStatus.INVALID_ID: "invalid_id",
}


def build_quality_report(db: Database, *, now: dt.datetime) -> QualityReport:
    """Count the stored doses (one aggregate query, one read transaction); ``now`` (aware) is the report's
    ``generated_at``."""
    now = require_utc(now)
    by_site: dict[str, QualityCounts] = {}
    by_province: dict[str, QualityCounts] = {}
    national = QualityCounts()
    with db.connect() as conn:
        groups = conn.execute(_aggregate_query()).all()
        site_names: dict[str, str | None] = dict(conn.execute(sa.select(sites.c.site_id, sites.c.name)).all())
    for site_id, province, status, fields, signed, contradictory, n in groups:
        counts = _counts(status, fields, int(signed), int(contradictory), int(n))
        province_key = province or UNKNOWN_PROVINCE
        by_site[site_id] = by_site.get(site_id, QualityCounts()) + counts
        by_province[province_key] = by_province.get(province_key, QualityCounts()) + counts
        national = national + counts
    return QualityReport(
        generated_at=now,
        national=national,
        provinces=tuple(
            QualityGroup(scope="province", key=code, name=_province_name(code), counts=by_province[code])
            for code in sorted(by_province, key=lambda c: (c == UNKNOWN_PROVINCE, c))
        ),
        sites=tuple(
            QualityGroup(
                scope="site", key=site_id, name=site_names.get(site_id) or "", counts=by_site[site_id]
            )
            for site_id in sorted(by_site)
        ),
    )


def _province_name(code: str) -> str:
    if code == UNKNOWN_PROVINCE:
        return "Không rõ (CMND, số khác)"
    return PROVINCES.get(code, code)


# --- console summary -------------------------------------------------------------------------------------


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "0.0 %"


def _headline(c: QualityCounts) -> str:
    return (
        f"{_n(c.doses)} doses; {_n(c.unchecked)} not yet checked; {_n(c.verified)} verified "
        f"({_pct(c.verified, c.doses)}); {_n(c.mismatch)} failing verification ({_pct(c.mismatch, c.doses)}: "
        f"name {_n(c.mismatch_name)}, dob {_n(c.mismatch_dob)}, gender {_n(c.mismatch_gender)}); "
        f"{_n(c.not_found)} not found in the population registry; {_n(c.invalid_id)} with an invalid ID; "
        f"{_n(c.signed)} site-signed, {_n(c.unsigned)} not yet signed; {_n(c.contradictory)} in contradictory "
        "histories (held from issuance: file corrections)."
    )


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_TABLE_COLUMNS: Final = (
    ("doses", "doses"),
    ("unchecked", "unchecked"),
    ("verified", "verified"),
    ("mismatch", "failing"),
    ("mismatch_name", "name"),
    ("mismatch_dob", "dob"),
    ("mismatch_gender", "gender"),
    ("not_found", "not found"),
    ("invalid_id", "invalid"),
    ("signed", "signed"),
    ("contradictory", "contradict"),
)


def _table(title: str, groups: Sequence[QualityGroup], *, label_width: int = 24) -> list[str]:
    widths = [
        max(len(header), *(len(_n(getattr(g.counts, field))) for g in groups))
        for field, header in _TABLE_COLUMNS
    ]
    lines = [
        f"{title:<{label_width}}"
        + "".join(f"  {header:>{w}}" for (_, header), w in zip(_TABLE_COLUMNS, widths, strict=True))
    ]
    for g in groups:
        label = _fit(f"{g.key} {g.name}".strip() if g.scope == "site" else g.name, label_width)
        lines.append(
            f"{label:<{label_width}}"
            + "".join(
                f"  {_n(getattr(g.counts, field)):>{w}}"
                for (field, _), w in zip(_TABLE_COLUMNS, widths, strict=True)
            )
        )
    return lines


def format_text(report: QualityReport, *, top_sites: int = 10) -> str:
    """The console summary: the seeds-style headline, a table per province, and the ``top_sites`` sites with
    the most doses failing verification (their heads answer for the data, seeds 000/003)."""
    when = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Dose data quality, {when}", _headline(report.national)]
    if report.provinces:
        lines += ["", *_table("Province", report.provinces)]
    worst = sorted(
        (g for g in report.sites if g.counts.mismatch + g.counts.not_found + g.counts.invalid_id),
        key=lambda g: (-(g.counts.mismatch + g.counts.not_found + g.counts.invalid_id), g.key),
    )[:top_sites]
    if worst:
        lines += ["", *_table(f"Sites: top {len(worst)} to fix", worst)]
    return "\n".join(lines) + "\n"
