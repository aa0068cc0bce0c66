"""The national pipeline (issue 4): identity, records, registry check, site signing, corrections, issuance.

Extra ``pipeline`` (SQLAlchemy, Alembic): importing any stage without it raises
:class:`~vaxcred.MissingExtraError` naming the extra.
"""

from importlib.util import find_spec

from vaxcred._extras import requires_extra

with requires_extra("pipeline", feature="vaxcred.pipeline"):
    import sqlalchemy  # noqa: F401  (the guard: every stage stores through SQLAlchemy)

    # migrations need Alembic: the guard asks whether it is installed without importing it (a stage's worker
    # process never migrates, and importing Alembic cost it ~2 s of CPU when no bytecode is cached)
    if find_spec("alembic") is None:
        raise ModuleNotFoundError("No module named 'alembic'", name="alembic")
