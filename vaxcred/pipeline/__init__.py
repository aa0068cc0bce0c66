"""The national pipeline (issue 4): identity, records, registry check, site signing, corrections, issuance.

Extra ``pipeline`` (SQLAlchemy, Alembic): importing any stage without it raises
:class:`~vaxcred.MissingExtraError` naming the extra.
"""

from vaxcred._extras import requires_extra

with requires_extra("pipeline", feature="vaxcred.pipeline"):
    import alembic  # noqa: F401  (the guard: every stage stores through SQLAlchemy; migrations need Alembic)
    import sqlalchemy  # noqa: F401
