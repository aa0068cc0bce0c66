"""``vaxcred serve``: the HTTP verify service and the border officer's page (extra ``vaxcred[server]``)."""

from __future__ import annotations

import importlib.util
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from vaxcred.cli._trust import default_state_path, trust_source_options
from vaxcred.cli._verify_data import load_synced, load_trust

# FastAPI, uvicorn and the service package are imported by the command itself: `vaxcred --help` stays light


def _load_data(
    directory: Path, anchor: Path | None, env: str, now: datetime, state_path: Path | None = None
) -> tuple[Any, dict[str, Any], tuple[Any, ...]]:
    """The trust store, the verify options (revocation, rules) and the data sets of a ``vaxcred sync`` folder
    (its trust list held to the rollback state in ``state_path``, default ``$XDG_STATE_HOME``)."""
    from vaxcred.service import DataSet

    trust, options = load_synced(directory, anchor, env, now, state_path or default_state_path())
    datasets: list[Any] = []
    revocation = options.get("revocation")
    if revocation is not None:
        datasets.append(
            DataSet(
                name="revocation",
                updated_at=revocation.issued_at,
                max_age=revocation.max_age,
                count=len(revocation),
                source=str(directory),
            )
        )
    rules = options.get("rules")
    if rules is not None:
        datasets.append(DataSet(name="rules", count=len(rules.rules), source=str(directory)))
    return trust, options, tuple(datasets)


@click.command()
@trust_source_options(
    environment_help="Trust environment; anything but PROD is flagged on every response and on the page."
)
@click.option(
    "--max-trust-age",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="HOURS",
    help="Answer NEEDS_CHECK instead of VALID once the trust list is older than this (a list without a "
    "signed issue time then never counts as fresh).",
)
@click.option(
    "--trust-state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the highest trust-list sequence seen is kept (default $XDG_STATE_HOME/vaxcred/...); an older "
    "list is refused.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A folder written by `vaxcred sync` (signed trust list, rules, revocation lists; needs --anchor).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port."
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--minimal",
    is_flag=True,
    help="Minimal disclosure: answer with status, reasons, name and date of birth only.",
)
@click.option(
    "--image-deadline",
    type=float,
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Longest an uploaded image may take to decode (in a separate process, killed after that).",
)
@click.option(
    "--rate-limit",
    type=float,
    default=None,
    metavar="PER_SECOND",
    help="Requests a second allowed per client address and worker (default: no limit).",
)
@click.option(
    "--testing-allow-at",
    is_flag=True,
    help="UNSAFE, for tests only: honour `at` in requests instead of the service's clock.",
)
def serve(
    dscs: tuple[str, ...],
    trust_list: Path | None,
    anchor: Path | None,
    env: str,
    max_trust_age: float | None,
    trust_state: Path | None,
    data_dir: Path | None,
    host: str,
    port: int,
    workers: int,
    minimal: bool,
    image_deadline: float,
    rate_limit: float | None,
    testing_allow_at: bool,
) -> None:
    """Serve the verify API (POST /verify, GET /trust, GET /healthz) and the border officer's page.

    Logs are JSON lines on stderr, without personal data. Stop with Ctrl-C or SIGTERM.
    """
    if not (math.isfinite(image_deadline) and image_deadline > 0):
        raise click.BadParameter("must be a positive number of seconds", param_hint="--image-deadline")
    if rate_limit is not None and not (math.isfinite(rate_limit) and rate_limit > 0):
        raise click.BadParameter("must be a positive number", param_hint="--rate-limit")
    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise click.UsageError(
            f"vaxcred serve needs the server extra: pip install 'vaxcred[server]' ({missing[0]})"
        )
    from vaxcred.service import ServiceConfig, VerifierContext, create_app
    from vaxcred.service.logs import LOGGER, configure_logging
    from vaxcred.service.server import bind
    from vaxcred.service.server import serve as run_server

    configure_logging()
    log = logging.getLogger(LOGGER)
    now = datetime.now(UTC)
    options: dict[str, Any] = {}
    datasets: tuple[Any, ...] = ()
    if data_dir is not None:
        if trust_list is not None or dscs:
            raise click.UsageError("--data brings its own trust list: leave out --trust-list and --dsc")
        trust, options, datasets = _load_data(data_dir, anchor, env, now, trust_state)
    else:
        # a border service never runs on unauthenticated trust: no opt-in here
        trust = load_trust(
            dscs, trust_list, anchor, False, env, now, trust_state or default_state_path(), None
        )
    if max_trust_age is not None:
        options["max_trust_age"] = timedelta(hours=max_trust_age)
    try:
        context = VerifierContext(trust=trust, loaded_at=now, verify_options=options, datasets=datasets)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    config = ServiceConfig(
        minimal=minimal,
        allow_at_for_testing=testing_allow_at,
        image_deadline=image_deadline,
        rate_limit=rate_limit,
    )
    if testing_allow_at:
        log.warning("testing mode: requests may set the verification time (never use this at a border)")
    if trust.environment.value != "PROD":
        log.warning("non-production trust", extra={"fields": {"environment": trust.environment.value}})
    log.info(
        "trust loaded",
        extra={
            "fields": {
                "mode": trust.mode.value,
                "environment": trust.environment.value,
                "dscs": len(trust.all_dscs()),
                "minimal": minimal,
            }
        },
    )
    app = create_app(context, config)
    try:
        sock = bind(host, port)
    except OSError as e:
        raise click.UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    click.get_current_context().exit(run_server(app, sock, workers=workers))
