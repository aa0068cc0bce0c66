"""Small bounded reads of option files (a certificate, a proof, a PDF): a bad path is a usage error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vaxcred import errors
from vaxcred.cli._common import safe
from vaxcred.text import clip

MAX_CERTIFICATE = 64 * 1024


def read_bounded(path: Path, limit: int, option: str, *, refuse_larger: bool = True) -> bytes:
    """At most ``limit`` bytes of ``path`` (``limit + 1`` when ``refuse_larger`` is off, so the caller can
    tell); unreadable, a bad name, or larger: a usage error naming ``option``."""
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise click.BadParameter(f"cannot read {safe(clip(str(path)))}: {e}", param_hint=option) from e
    if refuse_larger and len(data) > limit:
        raise click.BadParameter(f"larger than {limit} bytes", param_hint=option)
    return data


def load_certificate_option(path: Path, option: str) -> Any:
    """The certificate (PEM, DER or base64 DER) in ``path`` as a cryptography ``x509.Certificate``."""
    from cryptography import x509

    from vaxcred.x509util import load_certificate_bytes

    data = read_bounded(path, MAX_CERTIFICATE, option)
    try:
        return x509.load_der_x509_certificate(load_certificate_bytes(data))
    except errors.VaxcredError as e:
        raise click.BadParameter(f"[{e.code}] {safe(e.message)}", param_hint=option) from e
    except ValueError as e:
        raise click.BadParameter(f"not a certificate: {safe(clip(str(e)))}", param_hint=option) from e
