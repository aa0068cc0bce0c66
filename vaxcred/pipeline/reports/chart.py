"""The data-quality chart: :func:`render_chart_png`, a stacked bar chart of a :class:`QualityReport` (PNG).

Re-exported by :mod:`vaxcred.pipeline.reports.quality`. The vendored DejaVu Sans has the Vietnamese glyphs. Counts only:
no personal data.
"""

from __future__ import annotations

import functools
import io
import math
from importlib import resources
from typing import Final, Literal

from vaxcred._extras import requires_extra
from vaxcred.pipeline.reports.quality import QualityCounts, QualityGroup, QualityReport, _n, _pct

with requires_extra("qr", feature="the data-quality chart (Pillow)"):
    from PIL import Image, ImageDraw, ImageFont

__all__ = ["CHART_WIDTH", "chart_size", "render_chart_png"]

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
