"""Fixtures of the pipeline tests: one storage suite, two real backends.

``database`` (migrated) and ``empty_database`` run each test twice: on a SQLite file and on a fresh database in
a throwaway PostgreSQL cluster (:mod:`tests.pipeline.pg`). The cluster is session-scoped, one per pytest-xdist
worker (its directory carries the worker id; its port is a free one the OS hands out), and every test gets a
database of its own, dropped afterwards.

Without the PostgreSQL server binaries the PostgreSQL half FAILS (``make test`` installs them through
scripts/ensure_system_deps.sh); ``VAXCRED_SKIP_PG=1`` turns that into a skip, for machines that cannot have them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.pg import PostgresCluster, PostgresMissing, find_pg_bin
from vaxcred.storage import Database, open_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster for this test session (this xdist worker)."""
    if os.environ.get("VAXCRED_SKIP_PG") == "1":
        pytest.skip("VAXCRED_SKIP_PG=1: the PostgreSQL half of the storage suite is skipped")
    try:
        bin_dir = find_pg_bin()
    except PostgresMissing as e:
        pytest.fail(str(e), pytrace=False)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cluster = PostgresCluster(name=f"vaxcred-{worker}", bin_dir=bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vaxcred.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Database]:
    """An opened, not yet migrated database."""
    db = open_database(database_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A database migrated to the newest schema."""
    empty_database.migrate()
    return empty_database


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A new PostgreSQL database migrated to the newest schema (for tests of PostgreSQL-only behaviour)."""
    url = pg_cluster.create_database()
    db = open_database(url)
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        pg_cluster.drop_database(url)
