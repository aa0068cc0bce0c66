"""Storage: the pipeline's tables on SQLite (embedded default) or PostgreSQL — SQLAlchemy Core + Alembic.

::

    from vaxcred.storage import open_database
    db = open_database("sqlite:///vaxcred.db")        # or "postgresql+psycopg://user@host/db"
    db.migrate()                                      # alembic upgrade head, programmatic
    with db.begin() as conn:                          # one write transaction
        conn.execute(...)                             # tables: vaxcred.storage.schema

Extra ``pipeline`` (PostgreSQL: ``postgres``). Citizen IDs are stored (the ministry needs them) and never logged; see :mod:`vaxcred.storage.schema`.
"""

from __future__ import annotations

from vaxcred._extras import requires_extra

with requires_extra("pipeline", feature="vaxcred.storage"):
    from vaxcred.storage.database import Database, open_database

__all__ = ["Database", "open_database"]
