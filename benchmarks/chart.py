"""Bar chart of ``bench_core``'s JSON line, drawn with Pillow (no matplotlib): ops/s for issue and verify.

    taskset -c 0 .venv/bin/python -m benchmarks.bench_core | tee bench.txt
    .venv/bin/python -m benchmarks.chart bench.txt            # writes docs/img/bench_core.png

Reads the last line of the file (or stdin) that is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PANELS = (
    (
        "Issue (ES256), ops/s",
        (
            ("raw cryptography sign", "raw_sign_ops", (150, 150, 150)),
            ("vaxcred Issuer.issue", "vaxcred_issue_ops", (31, 119, 180)),
            ("vaxcred issue() one-shot", "vaxcred_issue_oneshot_ops", (107, 174, 214)),
            ("python-cwt", "cwt_issue_ops", (255, 127, 14)),
            ("pycose 1.1.0", "pycose_issue_ops", (214, 39, 40)),
        ),
    ),
    (
        "Verify (ES256), ops/s",
        (
            ("raw cryptography verify", "raw_verify_ops", (150, 150, 150)),
            ("vaxcred verify", "vaxcred_verify_ops", (31, 119, 180)),
            ("python-cwt", "cwt_verify_ops", (255, 127, 14)),
            ("pycose 1.1.0", "pycose_verify_ops", (214, 39, 40)),
        ),
    ),
)

WIDTH, PANEL_HEIGHT, MARGIN, LABEL_WIDTH, BAR_HEIGHT, GAP = 1000, 260, 24, 230, 30, 12


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def read_summary(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON object line found")


def draw(summary: dict[str, Any], out: Path) -> None:
    height = MARGIN + len(PANELS) * PANEL_HEIGHT + 30
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    title, label, small = _font(20), _font(15), _font(13)
    y = MARGIN
    for heading, bars in PANELS:
        pen.text((MARGIN, y), heading, fill="black", font=title)
        y += 34
        top = max(float(summary[key]) for _, key, _ in bars)
        span = WIDTH - LABEL_WIDTH - 2 * MARGIN - 110
        # the target: half the raw rate (the first bar)
        target_x = MARGIN + LABEL_WIDTH + round(span * float(summary[bars[0][1]]) / 2 / top)
        bottom = y + len(bars) * (BAR_HEIGHT + GAP) - GAP
        for dash in range(y - 4, bottom + 4, 8):
            pen.line((target_x, dash, target_x, min(dash + 4, bottom + 4)), fill=(90, 90, 90), width=1)
        pen.text((target_x + 4, y - 18), "50% of raw", fill=(90, 90, 90), font=small)
        for name, key, colour in bars:
            value = float(summary[key])
            length = max(2, round(span * value / top))
            x0 = MARGIN + LABEL_WIDTH
            pen.text((MARGIN, y + 7), name, fill="black", font=label)
            pen.rectangle((x0, y, x0 + length, y + BAR_HEIGHT), fill=colour)
            pen.text(
                (x0 + length + 8, y + 8), f"{value:,.0f}/s  ({1e6 / value:,.0f} us)", fill="black", font=small
            )
            y += BAR_HEIGHT + GAP
        y = MARGIN + (PANELS.index((heading, bars)) + 1) * PANEL_HEIGHT
    note = (
        f"issue = {summary['issue_vs_raw_sign']:.0%} of raw sign, {summary['issue_vs_pycose']:.1f}x pycose, "
        f"{summary['issue_vs_cwt']:.1f}x python-cwt;  verify = {summary['verify_vs_raw_verify']:.0%} of raw "
        f"verify, {summary['verify_vs_pycose']:.1f}x pycose, {summary['verify_vs_cwt']:.1f}x python-cwt"
    )
    pen.text((MARGIN, height - 28), note, fill=(60, 60, 60), font=small)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG", optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="draw docs/img/bench_core.png from bench_core output")
    parser.add_argument("input", nargs="?", help="bench_core output (default: stdin)")
    parser.add_argument("--out", default="docs/img/bench_core.png")
    args = parser.parse_args(argv)
    text = Path(args.input).read_text(encoding="utf-8") if args.input else sys.stdin.read()
    draw(read_summary(text), Path(args.out))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
