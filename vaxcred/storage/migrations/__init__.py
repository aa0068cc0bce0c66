"""Alembic migrations of the vaxcred schema (run by :meth:`vaxcred.storage.Database.migrate`)."""
