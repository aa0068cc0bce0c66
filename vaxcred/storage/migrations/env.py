"""Alembic environment: runs only programmatically, on the connection that ``Database.migrate`` passes in.

There is no alembic.ini and no offline (SQL script) mode: ``Database.migrate()`` builds the configuration in
code and hands over a connection already inside its transaction, so a failed revision leaves nothing behind.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from vaxcred.storage.schema import metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("vaxcred migrations run through vaxcred.storage.Database.migrate()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them (batch mode); only autogenerate looks at this
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("vaxcred migrations have no offline mode; use Database.migrate()")
_run()
