"""``vaxcred db init``, ``import``, ``registry-check``, ``report``: the national pipeline's data stages.

Site signing and central issuance: :mod:`vaxcred.cli.signing`; corrections and revocations:
:mod:`vaxcred.cli.corrections`.
"""

from __future__ import annotations

import collections
import csv
import gzip
from pathlib import Path

import click

from vaxcred.cli._common import parse_at, safe
from vaxcred.cli._pipeline import (
    at_option,
    db_option,
    exit_refused_if,
    load_registry,
    number,
    open_db,
    progress,
    registry_option,
    registry_timeout_option,
    shown_url,
    storage_errors,
)
from vaxcred.pipeline.records.calendar import vietnam_date
from vaxcred.pipeline.records.importer import import_file
from vaxcred.pipeline.registry.check import run_registry_check, unchecked_count
from vaxcred.pipeline.reports.chart import render_chart_png
from vaxcred.pipeline.reports.quality import build_quality_report, format_text

_IMPORT_EPILOG = """\
FILE is CSV with a header row or JSON Lines (by its name: .csv, .jsonl or .ndjson, optionally .gz), one
dose per row, UTF-8:

\b
  citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id
  001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-09-12,2,VN001-S01

Rows are stored 5,000 per transaction and deduplicated by their natural key (citizen ID, dose number, date,
site): importing a file again stores nothing twice, and after a crash the same command finishes the job.
A file of 4 MiB or more is read by two worker processes while this one stores (both cores work); on
PostgreSQL it is stored on two connections at once (two server backends; the rows split by citizen ID).
Bad rows are counted and, with --rejects, written there (CSV: line, field, code, reason, raw row; mode 0600
because it holds personal data).

Each line is one row: a line with an unbalanced quote is rejected alone, the rows after it are read. A row
whose dose is stored with another vaccine or lot is a "dose conflict" (kept as stored: file a correction).
"Not in the future" means after today's date in Viet Nam (UTC+7); --at without a zone is read as UTC.

Exit code: 0 when the file was read (bad rows are reported, the good ones stored); with --strict, 1 when
any row was rejected; 1 when the file is unusable (no header, a required column missing) or the rejects
file could not be written (a full disk: the import still ran); 3 usage error.
"""


@click.group("db")
def db_group() -> None:
    """The pipeline database (SQLite file or PostgreSQL server)."""


@db_group.command("init")
@db_option
def db_init(db_url: str) -> None:
    """Create or upgrade the schema to the newest version (Alembic migrations; safe to run again)."""
    db = open_db(db_url, migrated=False)
    with storage_errors():
        db.migrate()
        revision = db.current_revision()
    db.dispose()
    click.echo(f"database {shown_url(db_url)} at schema {revision}")


def _count_rows(path: Path) -> int | None:
    """Lines in the file (a progress bar's length), or ``None`` when it cannot be read."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    count = 0
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                count += chunk.count(b"\n")
    except (OSError, EOFError):
        return None
    return max(count - (1 if ".csv" in (s.lower() for s in path.suffixes) else 0), 1)


def _reject_summary(path: Path) -> list[tuple[str, int]]:
    """``code (field)`` → count, from the rejects file this run wrote (no personal data read out)."""
    counts: collections.Counter[str] = collections.Counter()
    csv.field_size_limit(1 << 20)
    with path.open(encoding="utf-8", errors="replace", newline="") as stream:
        for row in csv.DictReader(stream):
            field = row.get("field") or ""
            counts[f"{row.get('code', '?')}" + (f" ({field})" if field else "")] += 1
    return counts.most_common()


@click.command("import", epilog=_IMPORT_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rejected rows here (CSV, created or truncated, mode 0600).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="Override the format guessed from the file name.",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any row was rejected (the good rows still land).")
@db_option
@at_option("Today's date for the 'not in the future' checks")
def import_(
    file: Path, rejects: Path | None, fmt: str | None, strict: bool, db_url: str, at: str | None
) -> None:
    """Import dose records from FILE (CSV or JSON Lines), streaming, with a progress bar."""
    today = vietnam_date(parse_at(at))  # 'not in the future': Viet Nam's calendar day
    db = open_db(db_url)
    length = _count_rows(file)
    try:
        with storage_errors(), progress("importing rows", length) as update:
            report = import_file(
                db,
                file,
                format=fmt,  # type: ignore[arg-type]
                rejects_path=rejects,
                on_progress=update,
                today=today,
            )
    finally:
        db.dispose()
    click.echo(f"rows read:        {number(report.rows)}")
    click.echo(f"doses imported:   {number(report.imported)}")
    click.echo(f"already stored:   {number(report.duplicates)}")
    if report.dose_conflicts:
        click.echo(
            f"dose conflicts:   {number(report.dose_conflicts)} rows whose dose is stored with another vaccine "
            "or lot (stored dose kept: file a correction)"
        )
    click.echo(f"rejected:         {number(report.rejected)}")
    if report.person_conflicts:
        click.echo(
            f"person conflicts: {number(report.person_conflicts)} rows whose name / date of birth / gender "
            "differ from the stored person (dose stored, person kept: file a correction)"
        )
    if report.hint:
        click.echo(f"hint: {report.hint}")
    if report.rejects_error:
        click.echo(f"error: {safe(report.rejects_error)}", err=True)
    elif report.rejected and rejects is not None:
        click.echo(f"rejected rows written to {rejects} (holds personal data)")
        for reason, count in _reject_summary(rejects):
            click.echo(f"  {number(count):>8}  {safe(reason)}")
    elif report.rejected:
        click.echo("give --rejects FILE to see which rows were rejected and why")
    exit_refused_if(bool(report.rejects_error) or (strict and report.rejected > 0))


@click.command("registry-check")
@registry_option
@registry_timeout_option
@click.option("--recheck", is_flag=True, help="Check every person again, not only those never checked.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="1 (the default, for SQLite and PostgreSQL): this process reads, calls the registry and stores while, "
    "on 2+ cores, one forked process matches; N > 1: N processes match and store while this one reads and "
    "calls the registry (measured slower on SQLite). The stored results are the same.",
)
@db_option
@at_option("Time stored with each result")
def registry_check(
    registry_source: str, registry_timeout: float, recheck: bool, workers: int, db_url: str, at: str | None
) -> None:
    """Check every recorded person against the national population registry (Cơ sở dữ liệu quốc gia về
    dân cư): VERIFIED, MISMATCH (name / dob / gender), NOT_FOUND or INVALID_ID, stored with its time.

    Persons never checked are the work queue; 1,000 per registry lookup and per transaction, so a re-run after
    a crash or a registry outage continues where it stopped. Exit code: 0 done; 1 the registry failed
    (what was checked before stays stored); 3 usage error.
    """
    now = parse_at(at)
    registry = load_registry(registry_source, timeout=registry_timeout)
    db = open_db(db_url)
    try:
        with storage_errors():
            length = unchecked_count(db, recheck=recheck)
            with progress("checking persons", length) as update:
                report = run_registry_check(
                    db, registry, now=now, recheck=recheck, on_progress=update, workers=workers
                )
    finally:
        db.dispose()
    click.echo(
        f"checked {number(report.checked)} persons: {number(report.verified)} verified, "
        f"{number(report.mismatch)} mismatch, {number(report.not_found)} not found, "
        f"{number(report.invalid_id)} invalid ID"
    )
    if report.skipped:
        click.echo(f"{number(report.skipped)} persons changed while being checked: run again to check them")


@click.command("report")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv", "json"]),
    default="text",
    show_default=True,
    help="text = the seeds-style summary; csv / json = one row per national / province / site group.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="Also write a PNG bar chart.")
@click.option(
    "--by",
    type=click.Choice(["province", "site"]),
    default="province",
    show_default=True,
    help="The chart's bars: one per province or one per vaccination site.",
)
@click.option("--top", type=click.IntRange(1, 200), default=15, show_default=True, help="Bars in the chart.")
@db_option
@at_option("The report's time stamp")
def report(
    fmt: str, out: Path | None, chart: Path | None, by: str, top: int, db_url: str, at: str | None
) -> None:
    """The data-quality report in the seeds' terms: doses, not yet checked, verified, failing verification
    (by field: name, date of birth, gender), not found, invalid ID and site-signed — national, per province
    and per site. Counts only, no personal data.
    """
    db = open_db(db_url)
    try:
        with storage_errors():
            quality = build_quality_report(db, now=parse_at(at))
    finally:
        db.dispose()
    text = format_text(quality) if fmt == "text" else quality.to_csv() if fmt == "csv" else quality.to_json()
    if out is not None:
        out.write_text(text, encoding="utf-8", newline="")
        click.echo(f"report written to {out}")
    elif fmt == "text":  # site and province names come from imported files: no raw controls on a terminal
        click.echo("\n".join(safe(line) for line in text.split("\n")), nl=False)
    else:
        click.echo(text, nl=False)
    if chart is not None:
        chart.write_bytes(render_chart_png(quality, by=by, top=top))  # type: ignore[arg-type]
        click.echo(f"chart written to {chart}", err=out is None)
