"""vaxcred._extras: a feature imported without its extra names the extra (the bare venv: test_bare_install)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import vaxcred
from vaxcred._extras import EXTRAS, MissingExtraError, requires_extra

REPO = Path(vaxcred.__file__).resolve().parent.parent


def test_missing_foreign_module_becomes_missing_extra_error() -> None:
    """A third-party module missing inside the guard raises MissingExtraError with the install hint."""
    with pytest.raises(MissingExtraError) as info, requires_extra("qr", feature="vaxcred.qr"):
        import vaxcred_no_such_library  # type: ignore[import-not-found]  # noqa: F401
    error = info.value
    assert isinstance(error, ImportError)
    assert (error.extra, error.feature, error.name) == ("qr", "vaxcred.qr", "vaxcred_no_such_library")
    assert str(error) == (
        "vaxcred.qr needs the 'qr' extra: pip install 'vaxcred[qr]' (no module named 'vaxcred_no_such_library')"
    )


def test_missing_vaxcred_module_is_not_blamed_on_an_extra() -> None:
    """A missing vaxcred module is a bug, not a missing extra: the ModuleNotFoundError propagates."""
    with pytest.raises(ModuleNotFoundError) as info, requires_extra("qr", feature="x"):
        import vaxcred.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(info.value, MissingExtraError)


def test_unknown_extra_is_a_caller_mistake() -> None:
    """Naming an extra pyproject does not define is a ValueError."""
    with pytest.raises(ValueError, match="unknown extra"), requires_extra("qrs", feature="x"):
        pass


def test_extras_table_matches_pyproject() -> None:
    """Every runtime extra in pyproject.toml is described in EXTRAS, and nothing else is."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert set(EXTRAS) == set(project["optional-dependencies"]) - {"test"}


def _run_blocked(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child where the ``blocked`` modules cannot be imported (as if not installed)."""
    prelude = f"import sys\nfor m in {blocked!r}:\n    sys.modules[m] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=False, cwd=REPO
    )


def test_command_whose_extra_is_missing_exits_3_naming_it() -> None:
    """`vaxcred db init` without SQLAlchemy prints the 'pipeline' extra and exits 3, with no traceback."""
    out = _run_blocked(
        ["sqlalchemy", "alembic"],
        "from vaxcred.cli import main\nraise SystemExit(main(['db', 'init', '--db', 'sqlite:///x.db']))\n",
    )
    assert out.returncode == 3, out.stderr
    assert "pip install 'vaxcred[pipeline]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_pipeline_reports_load_without_pdf_extra() -> None:
    """The pipeline's reports package imports with the 'pipeline' extra alone; the PDF names 'pdf' on use."""
    out = _run_blocked(
        ["fpdf", "pyhanko"],
        "from vaxcred import MissingExtraError\n"
        "from vaxcred.pipeline import reports\n"
        "try:\n"
        "    reports.render_certificate_pdf\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra)\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pdf"


def test_image_without_qr_extra_fails_the_first_step_naming_it() -> None:
    """verify() of PNG bytes without zxing-cpp returns INVALID with image.extra_missing (never raises)."""
    out = _run_blocked(
        ["zxingcpp"],
        "from datetime import UTC, datetime\n"
        "from vaxcred import TrustStore, verify\n"
        "result = verify(b'\\x89PNG\\r\\n\\x1a\\n' + bytes(32), TrustStore.from_dsc_certificates([]),\n"
        "                now=datetime(2026, 1, 1, tzinfo=UTC))\n"
        "print(result.status.name, result.steps[0].code)\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "INVALID image.extra_missing"


def test_guard_without_extra_names_the_extra_providing_the_module() -> None:
    """requires_extra(None) names the extra of the missing module (MODULE_EXTRAS), here 'pipeline'."""
    code = (
        "import sys\nsys.modules['sqlalchemy'] = None\n"
        "from vaxcred._extras import MissingExtraError, requires_extra\n"
        "try:\n"
        "    with requires_extra(None, feature='f'):\n"
        "        import sqlalchemy\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pipeline"


def test_guard_without_extra_leaves_unknown_modules_alone() -> None:
    """A module no extra provides is not blamed on one: the ModuleNotFoundError propagates unchanged."""
    with pytest.raises(ModuleNotFoundError) as info, requires_extra(None, feature="x"):
        import vaxcred_no_such_library  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(info.value, MissingExtraError)


def test_cli_verify_of_an_image_without_qr_extra_reports_the_step(tmp_path: Path) -> None:
    """`vaxcred verify photo.png` without zxing-cpp exits 1 (INVALID) naming image.extra_missing, no traceback."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    dsc = REPO / "test_vectors" / "keys" / "dsc-ec.pem"
    out = _run_blocked(
        ["zxingcpp"],
        f"from vaxcred.cli import main\nraise SystemExit(main(['verify', {str(photo)!r}, '--dsc', {str(dsc)!r}]))\n",
    )
    assert out.returncode == 1, out.stderr
    assert "image.extra_missing" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_pipeline_without_alembic_names_the_pipeline_extra() -> None:
    """Alembic alone missing (SQLAlchemy installed): `vaxcred db init` still names the 'pipeline' extra (the
    package guard asks whether Alembic is installed without importing it)."""
    out = _run_blocked(
        ["alembic"],
        "from vaxcred.cli import main\nraise SystemExit(main(['db', 'init', '--db', 'sqlite:///x.db']))\n",
    )
    assert out.returncode == 3, out.stderr
    assert "pip install 'vaxcred[pipeline]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_stage_worker_does_not_import_alembic(tmp_path: Path) -> None:
    """What a stage's worker process imports and does (open a migrated database, read it) loads no Alembic:
    only migrating does. (Importing it cost a worker ~2 s of CPU when no bytecode is cached.)"""
    from vaxcred.storage import open_database

    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = open_database(url)
    db.migrate()
    db.dispose()
    # a fresh interpreter: the stages' modules, then a read of the migrated database
    fresh = (
        "import sys\n"
        "from vaxcred.storage import open_database\n"
        "import vaxcred.pipeline.issuance.workers, vaxcred.pipeline.site_signing.stage\n"
        "import vaxcred.pipeline.records.importer, vaxcred.pipeline.registry.check\n"
        f"db = open_database({url!r})\n"
        "with db.connect() as conn:\n"
        "    conn.exec_driver_sql('SELECT count(*) FROM persons').scalar()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", fresh], capture_output=True, text=True, check=False, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_stage_loads_without_the_postgres_extra() -> None:
    """A SQLite install (the 'pipeline' extra, no psycopg) imports every stage, the worker service and the CLI:
    the PostgreSQL array builders (vaxcred.storage.pg_arrays, which imports psycopg) load only on that backend.
    (Issuance's batch call imported them with its module, so issue-batch failed on such an install.)"""
    out = _run_blocked(
        ["psycopg", "psycopg_binary", "psycopg_c"],
        "import vaxcred.pipeline.issuance.workers, vaxcred.pipeline.issuance.stage\n"
        "import vaxcred.pipeline.site_signing.stage, vaxcred.pipeline.site_signing.workers\n"
        "import vaxcred.pipeline.records.importer, vaxcred.pipeline.registry.check\n"
        "import vaxcred.pipeline.corrections, vaxcred.pipeline.reports, vaxcred.pipeline.issuance.service\n"
        "import vaxcred.cli, vaxcred.cli.worker, vaxcred.cli.pipeline, vaxcred.cli.signing\n"
        "import sys\n"
        "print(sorted(m for m, v in sys.modules.items() if v is not None and (m.startswith('psycopg') or m.endswith('pg_arrays'))))\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
