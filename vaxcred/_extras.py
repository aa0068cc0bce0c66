"""Import guards for the optional features: a missing extra is named, never a bare ``ModuleNotFoundError``.

The core (``pip install vaxcred``: cryptography + cbor2) issues and verifies HC1 text. Every other feature
lives behind an extra, and the package or module that starts the feature imports its third-party
dependencies inside :func:`requires_extra`::

    with requires_extra("qr", feature="vaxcred.qr"):
        import zxingcpp
        from PIL import Image

If one of them is not installed, the import raises :class:`MissingExtraError` (an ``ImportError``) whose
message says what to install: ``vaxcred.qr needs the 'qr' extra: pip install 'vaxcred[qr]'``.

The rule (docs/architecture.md, "Extras"): ``vaxcred``, ``vaxcred.verify`` and everything they import need
only the core; a feature module imports its extra's libraries only below its own guard, and core modules
import a feature only lazily, inside the function that needs it, turning :class:`MissingExtraError` into a
typed result (``verify()`` given an image without ``[qr]``: a failed step ``image.extra_missing``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

__all__ = ["EXTRAS", "MODULE_EXTRAS", "MissingExtraError", "requires_extra"]

#: Each extra and what it brings (pyproject.toml ``[project.optional-dependencies]``; README "Install").
EXTRAS: Final[dict[str, str]] = {
    "cli": "the vaxcred command (click)",
    "qr": "QR rendering and image decoding (qrcode, Pillow, zxing-cpp)",
    "pipeline": "the national pipeline and its database (SQLAlchemy, Alembic; with cli)",
    "postgres": "PostgreSQL for the pipeline (psycopg; with pipeline)",
    "pdf": "the printable, signed certificate PDF (fpdf2, pyHanko; with qr)",
    "server": "the HTTP verify service and the officer's page (FastAPI, uvicorn; with qr)",
    "hsm": "signing keys in a PKCS#11 token (python-pkcs11)",
    "all": "every extra above",
}

#: The top-level module of each extra's libraries -> the smallest extra that installs it (used when the
#: guard is not told its extra: :data:`vaxcred.cli.COMMANDS` modules, loaded by the command group).
MODULE_EXTRAS: Final[dict[str, str]] = {
    "click": "cli",
    "qrcode": "qr",
    "PIL": "qr",
    "zxingcpp": "qr",
    "sqlalchemy": "pipeline",
    "alembic": "pipeline",
    "psycopg": "postgres",
    "fpdf": "pdf",
    "pyhanko": "pdf",
    "pyhanko_certvalidator": "pdf",
    "asn1crypto": "pdf",
    "fastapi": "server",
    "starlette": "server",
    "pydantic": "server",
    "uvicorn": "server",
    "multipart": "server",
    "pkcs11": "hsm",
}


class MissingExtraError(ImportError):
    """A feature was imported without the extra that provides its dependencies.

    ``extra`` is the extra to install, ``feature`` what needed it, ``name`` the missing module.
    """

    def __init__(self, *, feature: str, extra: str, missing: str | None) -> None:
        message = f"{feature} needs the {extra!r} extra: pip install 'vaxcred[{extra}]'"
        if missing:
            message += f" (no module named {missing!r})"
        super().__init__(message, name=missing)
        self.feature = feature
        self.extra = extra


@contextlib.contextmanager
def requires_extra(extra: str | None, *, feature: str) -> Iterator[None]:
    """Turn a third-party module missing inside the block into :class:`MissingExtraError` naming ``extra``.

    Only a missing *foreign* module is translated: a missing ``vaxcred`` module is a bug and propagates.
    With ``extra=None`` the extra is the one that provides the missing module (:data:`MODULE_EXTRAS`); a
    module no extra provides propagates unchanged.
    """
    if extra is not None and extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    try:
        yield
    except ModuleNotFoundError as e:
        missing = e.name or ""
        top = missing.partition(".")[0]
        named = extra if extra is not None else MODULE_EXTRAS.get(top)
        if top == "vaxcred" or named is None:
            raise
        raise MissingExtraError(feature=feature, extra=named, missing=missing or None) from e
