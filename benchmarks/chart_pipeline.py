"""Stacked bars of ``bench_pipeline`` runs, drawn with Pillow: wall time per person, split by stage.

    .venv/bin/python -m benchmarks.bench_pipeline --backend both | tee pipeline.txt
    .venv/bin/python -m benchmarks.chart_pipeline pipeline.txt [more.txt …]     # writes docs/img/bench_pipeline.png

Reads every ``RESULT {json}`` line of the given files (one bar per people × backend; a later line for the same
pair wins). The dashed line is the target: 1 M people in 5 minutes = 300 µs per person. ``--markdown`` also prints
the tables of docs/benchmarks.md (one per run: wall and CPU seconds per stage, the server's CPU and WAL).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

STAGES = (
    ("import", (31, 119, 180)),
    ("registry check", (44, 160, 44)),
    ("site signing", (255, 127, 14)),
    ("issuance", (214, 39, 40)),
)
TARGET_US = 300.0
WIDTH, MARGIN, LABEL_WIDTH, BAR_HEIGHT, GAP = 1000, 24, 230, 28, 10


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def read_results(texts: list[str]) -> list[dict[str, Any]]:
    runs: dict[tuple[int, str], dict[str, Any]] = {}
    for text in texts:
        for line in text.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
                runs[(int(result["people"]), str(result["backend"]))] = result
    if not runs:
        raise ValueError("no RESULT lines found")
    return [runs[key] for key in sorted(runs)]


def draw(results: list[dict[str, Any]], out: Path) -> None:
    height = MARGIN + 40 + len(results) * (BAR_HEIGHT + GAP) + 70
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    title, label, small = _font(20), _font(15), _font(13)
    pen.text(
        (MARGIN, MARGIN),
        "National pipeline: wall time per person, by stage (microseconds)",
        fill="black",
        font=title,
    )
    y0 = MARGIN + 40
    top = max(max(float(r["us_per_person"]) for r in results), TARGET_US) * 1.05
    span = WIDTH - LABEL_WIDTH - 2 * MARGIN - 150
    x0 = MARGIN + LABEL_WIDTH
    bottom = y0 + len(results) * (BAR_HEIGHT + GAP) - GAP
    target_x = x0 + round(span * TARGET_US / top)
    for dash in range(y0 - 4, bottom + 4, 8):
        pen.line((target_x, dash, target_x, min(dash + 4, bottom + 4)), fill=(90, 90, 90), width=1)
    pen.text((target_x + 4, y0 - 18), "target: 1 M in 5 min", fill=(90, 90, 90), font=small)
    y = y0
    for result in results:
        name = f"{int(result['people']):,} people, {result['backend']}"
        pen.text((MARGIN, y + 6), name, fill="black", font=label)
        x = float(x0)
        for stage in result["stages"]:
            colour = dict(STAGES).get(stage["name"], (150, 150, 150))
            length = span * float(stage["us_per_person"]) / top
            pen.rectangle((round(x), y, round(x + length), y + BAR_HEIGHT), fill=colour)
            x += length
        total_s = float(result["seconds"])
        pen.text(
            (round(x) + 8, y + 7),
            f"{float(result['us_per_person']):,.0f} us  ({total_s:,.0f} s)",
            fill="black",
            font=small,
        )
        y += BAR_HEIGHT + GAP
    lx = MARGIN
    for stage_name, colour in STAGES:
        pen.rectangle((lx, height - 52, lx + 14, height - 38), fill=colour)
        pen.text((lx + 20, height - 53), stage_name, fill="black", font=small)
        lx += 150
    pen.text(
        (MARGIN, height - 28),
        "2 vCPUs, CPython 3.11; SQLite synchronous=FULL (WAL), PostgreSQL fsync on; issuance 2 processes; import 2 validation processes",
        fill=(60, 60, 60),
        font=small,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG", optimize=True)


def markdown(results: list[dict[str, Any]]) -> str:
    """One table per run, as docs/benchmarks.md shows them."""
    out: list[str] = []
    for r in results:
        people, backend = int(r["people"]), str(r["backend"])
        server = backend == "postgresql"
        out.append(
            f"**{people:,} people, {int(r['doses']):,} doses — {backend}** "
            f"(processes: issuance {r['workers']}, signing {r['signing_workers']})\n"
        )
        head = "| stage | seconds | items | per second | µs per person | CPU s (ours) |"
        rule = "|---|---:|---:|---:|---:|---:|"
        if server:
            head += " CPU s (server) | WAL MiB |"
            rule += "---:|---:|"
        out += [head, rule]
        for st in r["stages"]:
            row = (
                f"| {st['name']} | {st['seconds']:.1f} | {st['items']:,} {st['unit']} | {st['per_second']:,} | "
                f"{st['us_per_person']:.0f} | {st.get('cpu_seconds', 0):.1f} |"
            )
            if server:
                row += f" {st.get('server_cpu_seconds', 0):.1f} | {st.get('wal_mib', 0):,.0f} |"
            out.append(row)
        total = f"| **total** | **{r['seconds']:.1f}** | {people:,} people | {people / r['seconds']:,.0f} | **{r['us_per_person']:.0f}** | |"
        out.append(total + (" | |" if server else ""))
        out.append(
            f"\nPeak RSS: {r['peak_rss_mib']:.0f} MiB (the process tree, sampled sum; largest single process "
            f"{max(r['main_rss_mib'], r['largest_child_rss_mib']):.0f} MiB)."
            + (f" Database file {r['stored']['db_mib']:,.0f} MiB." if "db_mib" in r.get("stored", {}) else "")
            + "\n"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="draw docs/img/bench_pipeline.png from bench_pipeline output"
    )
    parser.add_argument("inputs", nargs="+", help="bench_pipeline output files")
    parser.add_argument("--out", default="docs/img/bench_pipeline.png")
    parser.add_argument("--markdown", action="store_true", help="also print the result tables (Markdown)")
    args = parser.parse_args(argv)
    texts = [Path(p).read_text(encoding="utf-8") for p in args.inputs]
    results = read_results(texts)
    draw(results, Path(args.out))
    if args.markdown:
        print(markdown(results))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
