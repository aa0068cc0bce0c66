"""Shared plumbing of the pipeline commands: ``--db``, ``--at``, opening the database, registries, progress."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from vaxcred import errors
from vaxcred.cli._common import EXIT_INVALID, RefusedError, fail, safe
from vaxcred.keys import load_certificate
from vaxcred.pipeline.registry.http import HttpRegistry
from vaxcred.pipeline.registry.lookup import PopulationRegistry, TableRegistry
from vaxcred.storage import Database, open_database

DB_ENV = "VAXCRED_DB"
DEFAULT_DB = "sqlite:///vaxcred.db"

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    """``--db URL`` (env ``VAXCRED_DB``, default ``sqlite:///vaxcred.db``)."""
    return click.option(
        "--db",
        "db_url",
        envvar=DB_ENV,
        default=DEFAULT_DB,
        show_default=True,
        metavar="URL",
        help="Database: sqlite:///path/file.db or postgresql+psycopg://user@host/db (env VAXCRED_DB).",
    )(func)


def at_option(what: str) -> Callable[[F], F]:
    """``--at ISO-8601``: the time the command acts at (default: now)."""
    return click.option("--at", "at", metavar="ISO-8601", help=f"{what} (default: now).")


def keys_option(func: F) -> F:
    return click.option(
        "--keys",
        "folder",
        required=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="Key-chain folder (from `vaxcred keys init`; site keys from `vaxcred keys site`).",
    )(func)


def registry_option(func: F) -> F:
    return click.option(
        "--registry",
        "registry_source",
        required=True,
        metavar="CSV|URL",
        help="Population registry: a CSV file (citizen_id,full_name,dob,gender) or an http(s):// base URL "
        "of the JSON lookup service (POST {URL}/lookup).",
    )(func)


def registry_timeout_option(func: F) -> F:
    return click.option(
        "--registry-timeout",
        type=click.FloatRange(min=0.1),
        default=5.0,
        show_default=True,
        help="HTTP registry: seconds per connect / read (retried 3 times with backoff).",
    )(func)


def shown_url(url: str) -> str:
    """A database URL fit for the terminal: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return safe(url)


def open_db(url: str, *, migrated: bool = True) -> Database:
    """Open the database at ``url``; with ``migrated`` refuse one whose schema is not the newest."""
    try:
        parsed = sa.make_url(url)
        if (
            migrated
            and parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:")
        ) and not Path(parsed.database).exists():  # do not leave an empty file behind
            raise click.UsageError(f"no database at {parsed.database}: run `vaxcred db init --db URL` first")
        db = open_database(url)
    except (ValueError, sa.exc.ArgumentError) as e:
        raise click.BadParameter(str(e), param_hint="--db") from e
    if migrated:
        with storage_errors():
            current, head = db.current_revision(), db.head_revision()
        if current != head:
            db.dispose()
            state = "is empty" if current is None else f"is at schema {current}, not {head}"
            raise click.UsageError(
                f"the database {shown_url(url)} {state}: run `vaxcred db init --db URL` first"
            )
    return db


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Library errors → exit 1 with their code; an unreachable database → exit 1 with its first line."""
    try:
        yield
    except errors.VaxcredError as e:
        raise fail(e) from e
    except sa.exc.OperationalError as e:
        lines = str(e.orig if e.orig is not None else e).splitlines()
        raise RefusedError(f"[storage.unavailable] {safe(lines[0] if lines else type(e).__name__)}") from e


def load_registry(source: str, *, timeout: float = 5.0) -> PopulationRegistry:
    """``TableRegistry.from_csv`` for a file, ``HttpRegistry`` for an http(s):// URL."""
    if source.startswith(("http://", "https://")):
        try:
            return HttpRegistry(source, timeout=timeout)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--registry") from e
    path = Path(source)
    if not path.is_file():
        raise click.BadParameter("neither an http(s):// URL nor a readable CSV file", param_hint="--registry")
    try:
        return TableRegistry.from_csv(path)
    except errors.VaxcredError as e:
        raise fail(e) from e
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {e}", param_hint="--registry") from e


def site_ca_certificate(folder: Path) -> Any:
    """The site CA certificate of a key-chain folder (site signatures must chain to it)."""
    path = folder / "site-ca.pem"
    if not path.is_file():
        raise click.UsageError(f"no site CA in {folder} (run `vaxcred keys init {folder}`)")
    return load_certificate(path)


#: seconds between two progress log lines when stderr is not a terminal (env ``VAXCRED_PROGRESS_SECONDS``)
PROGRESS_ENV = "VAXCRED_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 30.0


def _progress_interval() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_ENV, DEFAULT_PROGRESS_SECONDS)))
    except ValueError:
        return DEFAULT_PROGRESS_SECONDS


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(label: str, done: int, length: int | None, elapsed: float) -> str:
    """``importing rows: 120,000 of 1,000,000 (12.0 %), 4,000/s, 880,000 remaining, about 3 min 40 s left``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{label}: {done:,}"
    if length:
        left = max(length - done, 0)
        text += (
            f" of {length:,} ({100 * min(done, length) / length:.1f} %), {rate:,.0f}/s, {left:,} remaining"
        )
        if rate > 0 and left:
            text += f", about {_duration(left / rate)} left"
    else:
        text += f", {rate:,.0f}/s"
    return text


@contextlib.contextmanager
def progress(label: str, length: int | None) -> Iterator[Callable[[int], None]]:
    """Progress fed with absolute counts: a ``click.progressbar`` on a terminal; elsewhere (cron, systemd,
    a pipe) a log line on stderr every :data:`PROGRESS_ENV` seconds (30 by default; 0 = after every batch)
    and one at the end, with the rate, what is done and what remains."""
    if not sys.stderr.isatty():
        interval = _progress_interval()
        started = last = time.monotonic()
        latest = 0

        def log(done: int) -> None:
            nonlocal last, latest
            latest = done
            now = time.monotonic()
            if now - last >= interval:
                last = now
                click.echo(f"{_stamp()} {progress_line(label, done, length, now - started)}", err=True)

        yield log
        if latest:
            elapsed = time.monotonic() - started
            click.echo(f"{_stamp()} {progress_line(label, latest, length, elapsed)} (done)", err=True)
        return
    if length is None or length <= 0:
        yield lambda _done: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True) as bar:
        seen = 0

        def update(done: int) -> None:
            nonlocal seen
            step = min(done, length) - seen
            if step > 0:
                bar.update(step)
                seen += step

        yield update


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_refused_if(condition: bool) -> None:
    """Exit 1 (documented per command) when ``condition`` holds, after everything was printed."""
    if condition:
        click.get_current_context().exit(EXIT_INVALID)


def number(n: int) -> str:
    """``12345`` → ``12,345``."""
    return f"{n:,}"
