"""A throwaway cluster of the real PostgreSQL server, for tests.

``PostgresCluster.start()`` runs Debian's ``initdb`` into a fresh directory under /tmp, starts the server with
``pg_ctl`` on a free loopback port (TCP on 127.0.0.1 only, its Unix socket in the cluster's own directory,
trust authentication — nothing but this machine's loopback can reach it), and ``stop()`` kills it
(``pg_ctl stop -m immediate``) and removes the directory.

PostgreSQL refuses to run as root. When the tests run as root the cluster directory is handed to the
``postgres`` OS user (created by the Debian package) and ``initdb``/``pg_ctl`` run through ``runuser``; as any
other user they run directly.

The server runs with ``fsync=off``: a test cluster never survives a power loss and needs no durability.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

__all__ = ["PostgresCluster", "PostgresMissing", "find_pg_bin"]

#: where Debian's ``postgresql-NN`` packages put the server binaries
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    candidates = [Path(p) for p in glob.glob(PG_BIN_GLOB)]
    usable = [p for p in candidates if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    if not usable:
        raise PostgresMissing(
            f"PostgreSQL server binaries not found ({PG_BIN_GLOB}/initdb): run `make test` "
            "(scripts/ensure_system_deps.sh installs Debian's postgresql), or set VAXCRED_SKIP_PG=1 "
            "to run the SQLite half of the storage suite only"
        )
    return max(usable, key=lambda p: _version_key(p.parent.name))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """One throwaway server: ``start()``, ``create_database()`` as often as needed, ``stop()``."""

    name: str = "vaxcred"
    bin_dir: Path = field(default_factory=find_pg_bin)
    port: int = 0
    root: Path | None = None
    _as_postgres: bool = field(default=False, init=False)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "sock"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server (TCP on loopback)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv[:2])} failed ({result.returncode}):\n{result.stdout}{result.stderr}{tail}"
            )

    def start(self) -> None:
        """initdb + pg_ctl start on a free loopback port; retries a port taken in the meantime."""
        self._as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-pg-"))
        self.socket_dir.mkdir()
        if self._as_postgres:
            entry = pwd.getpwnam(SUPERUSER)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        for _attempt in range(5):
            self.port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {self.port}",
                    f"-k {self.socket_dir}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c shared_buffers=64MB",
                    "-c max_connections=60",
                ]
            )
            try:
                self._run("pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60",
                          "-l", str(self.root / "server.log"), "-o", options)  # fmt: skip
            except RuntimeError:
                if "already in use" not in (self.root / "server.log").read_text(errors="replace"):
                    raise
                continue
            return
        raise RuntimeError("no free loopback port for PostgreSQL after 5 attempts")

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name built above from [a-z0-9_]
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, closing any connection still open on it."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Kill the server (immediate mode: nothing to keep) and remove its directory."""
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
