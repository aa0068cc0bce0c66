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
=================  ===================================================================================

``unchecked + verified + mismatch + not_found + invalid_id == doses`` in every group. Groups: per vaccination
site (the site that recorded the dose), per province (the person's: the CCCD's first three digits,
``"unknown"`` for CMND and other IDs) and national.

:func:`build_quality_report` computes it with one aggregate query (``GROUP BY`` site, province, status, mismatch
fields, signed) — the database does the counting, Python folds the few hundred groups — so it runs unchanged on
hundreds of millions of doses. Outputs: :meth:`QualityReport.to_csv`, :meth:`QualityReport.to_json`,
:func:`format_text` (the console summary) and :func:`render_chart_png` (a stacked bar chart; the vendored DejaVu
Sans has the Vietnamese glyphs). Counts only: no personal data.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final, Literal

import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFont

from vaxcred.pipeline.cccd import PROVINCES
from vaxcred.pipeline.registry import MISMATCH_FIELDS, RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, registry_checks, site_signatures, sites
from vaxcred.trust.store import require_utc

__all__ = [
    "CHART_WIDTH",
    "COUNT_FIELDS",
    "UNKNOWN_PROVINCE",
    "QualityCounts",
    "QualityGroup",
    "QualityReport",
    "build_quality_report",
    "chart_size",
    "format_text",
    "render_chart_png",
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

    def __post_init__(self) -> None:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
            raise ValueError("counts must be non-negative ints")
        if self.unchecked + self.verified + self.mismatch + self.not_found + self.invalid_id != self.doses:
            raise ValueError("unchecked + verified + mismatch + not_found + invalid_id must equal doses")
        if self.signed > self.doses or max(self.mismatch_name, self.mismatch_dob, self.mismatch_gender) > (
            self.mismatch
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


def _aggregate_query() -> sa.Select[str, str | None, str | None, str, int, int]:
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
        )
        .select_from(
            doses.join(persons, persons.c.id == doses.c.person_id).outerjoin(
                site_signatures,
                sa.and_(site_signatures.c.dose_id == doses.c.id, site_signatures.c.superseded_at.is_(None)),
            )
        )
        .subquery("per_dose")
    )
    keys = (per_dose.c.site_id, per_dose.c.province, per_dose.c.status, per_dose.c.fields, per_dose.c.signed)
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys)


def _counts(status: str | None, fields: str | None, signed: int, n: int) -> QualityCounts:
    named = set((fields or "").split(","))
    kind = "unchecked" if status is None else _STATUS_FIELD[RegistryStatus(status)]
    values = {"doses": n, kind: n, "signed": n if signed else 0}
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
    for site_id, province, status, fields, signed, n in groups:
        counts = _counts(status, fields, int(signed), int(n))
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
        f"{_n(c.signed)} site-signed, {_n(c.unsigned)} not yet signed."
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


# --- chart -----------------------------------------------------------------------------------------------

#: the chart's width in pixels; its height grows with the number of bars (:func:`chart_size`)
CHART_WIDTH: Final = 1200
_MARGIN: Final = 28
_ROW: Final = 34
_BAR: Final = 22
_PLOT_TOP: Final = 150  # title, subtitle, legend
_PLOT_BOTTOM: Final = 92  # x ticks, axis title, footnote
_LABEL_MAX: Final = 330
_END_LABEL: Final = 130
#: the stacked segments, left to right: (count field, label, colour)
_SEGMENTS: Final = (
    ("verified", "Đã xác thực / verified", (46, 125, 50)),
    ("mismatch", "Sai thông tin / mismatch", (245, 166, 35)),
    ("not_found", "Không tìm thấy / not found", (198, 40, 40)),
    ("invalid_id", "Số định danh sai / invalid ID", (106, 27, 154)),
    ("unchecked", "Chưa kiểm tra / not checked", (176, 190, 197)),
)
_TEXT: Final = (33, 33, 33)
_MUTED: Final = (97, 97, 97)
_GRID: Final = (224, 224, 224)


@functools.lru_cache(maxsize=16)
def _font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    data = resources.files("vaxcred").joinpath("data", "fonts", name).read_bytes()
    return ImageFont.truetype(io.BytesIO(data), size)


def chart_size(bars: int) -> tuple[int, int]:
    """The (width, height) in pixels of a chart with ``bars`` bars (at least one row is drawn)."""
    return CHART_WIDTH, _PLOT_TOP + max(bars, 1) * _ROW + _PLOT_BOTTOM


def _nice_step(maximum: int, ticks: int = 5) -> int:
    raw = max(maximum, 1) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= raw and step == int(step):
            return int(step)
    return int(10 * magnitude)  # pragma: no cover - factor 10 always qualifies


def _bars(report: QualityReport, by: str, top: int) -> tuple[list[tuple[str, QualityCounts]], str]:
    """The ``top`` largest groups as (label, counts), and a note on the groups left out (``""`` if none)."""
    if by == "province":
        groups, others = report.provinces, ("tỉnh khác", "other provinces")
    elif by == "site":
        groups, others = report.sites, ("cơ sở khác", "other sites")
    else:
        raise ValueError('by must be "province" or "site"')
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError("top must be an int >= 1")
    ranked = sorted(groups, key=lambda g: (-g.counts.doses, g.key))
    rest = ranked[top:]
    note = ""
    if rest:
        total = sum((g.counts for g in rest), QualityCounts())
        note = (
            f"Không hiển thị / not shown: {len(rest)} {others[0]} / {others[1]}, {_n(total.doses)} doses, "
            f"{_pct(total.verified, total.doses)} verified, {_n(total.mismatch)} mismatch, "
            f"{_n(total.not_found)} not found, {_n(total.unchecked)} not checked"
        )
    return [(_bar_label(g), g.counts) for g in ranked[:top]], note


def _bar_label(group: QualityGroup) -> str:
    if group.scope == "province":
        return group.name
    return f"{group.key} · {group.name}" if group.name else group.key


def _ellipsize(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def render_chart_png(
    report: QualityReport,
    *,
    by: Literal["province", "site"] = "province",
    top: int = 15,
) -> bytes:
    """A horizontal stacked bar chart of the doses per province or site — verified / mismatch / not found /
    invalid ID / not yet checked — for the ``top`` largest groups (the others summed up in a note), as PNG.

    Size: :func:`chart_size` of the number of bars drawn. Deterministic: same report, same bytes.
    """
    bars, left_out = _bars(report, by, top)
    width, height = chart_size(len(bars))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title_font, sub_font, label_font, small_font = _font(24, bold=True), _font(15), _font(14), _font(12)

    # title and subtitle
    what = ("tỉnh, thành phố", "province") if by == "province" else ("cơ sở tiêm chủng", "vaccination site")
    draw.text((_MARGIN, 20), f"Chất lượng dữ liệu tiêm chủng theo {what[0]}", font=title_font, fill=_TEXT)
    n = report.national
    subtitle = (
        f"Vaccination record quality by {what[1]} · {_n(n.doses)} doses, {_pct(n.verified, n.doses)} verified "
        f"against the population registry · {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}"
    )
    draw.text(
        (_MARGIN, 56), _ellipsize(draw, subtitle, sub_font, width - 2 * _MARGIN), font=sub_font, fill=_MUTED
    )

    # legend, one row
    x = float(_MARGIN)
    for _, label, colour in _SEGMENTS:
        draw.rectangle((x, 100, x + 16, 116), fill=colour)
        draw.text((x + 22, 100), label, font=label_font, fill=_TEXT)
        x += 22 + draw.textlength(label, font=label_font) + 26

    # plot geometry
    label_width = min(
        _LABEL_MAX, max((draw.textlength(label, font=label_font) for label, _ in bars), default=80)
    )
    left = _MARGIN + label_width + 12
    right = width - _MARGIN - _END_LABEL
    top_y, bottom_y = _PLOT_TOP, _PLOT_TOP + max(len(bars), 1) * _ROW
    maximum = max((c.doses for _, c in bars), default=0)
    step = _nice_step(maximum)
    axis_max = step * max(1, math.ceil(maximum / step))
    scale = (right - left) / axis_max

    # grid and x ticks
    for tick in range(0, axis_max + 1, step):
        gx = left + tick * scale
        draw.line((gx, top_y - 6, gx, bottom_y), fill=_GRID, width=1)
        text = _n(tick)
        draw.text(
            (gx - draw.textlength(text, font=small_font) / 2, bottom_y + 6),
            text,
            font=small_font,
            fill=_MUTED,
        )
    axis_title = "Số liều / doses"
    draw.text(
        (left + (right - left - draw.textlength(axis_title, font=label_font)) / 2, bottom_y + 28),
        axis_title,
        font=label_font,
        fill=_TEXT,
    )

    # bars
    for row, (label, counts) in enumerate(bars):
        y = top_y + row * _ROW + (_ROW - _BAR) // 2
        text = _ellipsize(draw, label, label_font, label_width)
        draw.text(
            (left - 12 - draw.textlength(text, font=label_font), y + 3), text, font=label_font, fill=_TEXT
        )
        x0 = float(left)
        for field, _, colour in _SEGMENTS:
            value = getattr(counts, field)
            if value:
                x1 = x0 + value * scale
                draw.rectangle((round(x0), y, max(round(x0), round(x1) - 1), y + _BAR), fill=colour)
                x0 = x1
        end = f"{_n(counts.doses)}  ({_pct(counts.verified, counts.doses).replace(' ', '')})"
        draw.text((x0 + 8, y + 4), end, font=small_font, fill=_TEXT)
    if not bars:
        empty = "Chưa có liều nào được ghi nhận / no doses recorded"
        draw.text((left + 12, top_y + 8), empty, font=label_font, fill=_MUTED)
    draw.line((left, top_y - 6, left, bottom_y), fill=_MUTED, width=1)

    # y axis title, above the labels
    y_title = "Tỉnh, thành phố / province" if by == "province" else "Cơ sở tiêm chủng / site"
    draw.text(
        (max(_MARGIN, left - 12 - draw.textlength(y_title, font=small_font)), top_y - 26),
        y_title,
        font=small_font,
        fill=_MUTED,
    )

    footnote = (
        "(%) = share of the doses verified · counts per dose, by the registry status of the dose's person"
    )
    draw.text((_MARGIN, height - 22), footnote, font=small_font, fill=_MUTED)
    if left_out:
        draw.text(
            (_MARGIN, height - 40),
            _ellipsize(draw, left_out, small_font, width - 2 * _MARGIN),
            font=small_font,
            fill=_MUTED,
        )

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
