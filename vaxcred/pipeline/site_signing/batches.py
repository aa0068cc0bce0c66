"""One signing batch of :mod:`vaxcred.pipeline.site_signing.stage`: the work queue query, signing rows, storing them.

Shared by the serial path (:func:`~vaxcred.pipeline.site_signing.stage.run_site_signing`) and the forked workers
(:mod:`vaxcred.pipeline.site_signing.workers`). Nothing here logs personal data: log lines carry dose row ids,
site ids and error codes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline import log
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.pipeline.site_signing.record import sign_dose, site_id_of
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_certificates, site_signatures

#: the signing stage's logger (the name it had before the stage was split into modules)
logger = logging.getLogger("vaxcred.pipeline.site_signing.stage")

ProgressCallback = Callable[[int], None]

_VERIFIED = RegistryStatus.VERIFIED.value
_current = site_signatures.c.superseded_at.is_(None)


def _fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


class _DoseRow(NamedTuple):
    """A dose to sign, as read (plain values: it crosses to a signing process)."""

    id: int
    dose_number: int
    date: dt.date
    site_id: str
    vaccine: str
    lot: str
    citizen_id: str


_DOSE_COLUMNS = (
    doses.c.id,
    doses.c.dose_number,
    doses.c.date,
    doses.c.site_id,
    doses.c.vaccine,
    doses.c.lot,
    persons.c.citizen_id,
)


class _Signed(NamedTuple):
    dose_id: int
    kid: bytes
    cose: bytes
    signed_at: dt.datetime


def _dose_record(row: _DoseRow) -> DoseRecord:
    return DoseRecord(
        citizen_id=row.citizen_id,
        vaccine=row.vaccine,
        lot=row.lot,
        date=row.date.isoformat(),
        dose_number=row.dose_number,
        site_id=row.site_id,
    )


def _certificate_row(signer: Signer) -> dict[str, Any]:
    cert = signer.certificate
    der = cert.public_bytes(Encoding.DER)
    return {
        "fingerprint": _fingerprint(der),
        "site_id": site_id_of(cert),
        "kid": signer.kid,
        "der": der,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
    }


def _sign_rows(
    rows: Sequence[_DoseRow], signers: Mapping[str, Signer], now: dt.datetime
) -> list[_Signed | str]:
    """Sign each row (CPU only, no database): a :class:`_Signed`, or the error code of a row that cannot be."""
    out: list[_Signed | str] = []
    for row in rows:
        try:
            signed = sign_dose(_dose_record(row), signer=signers[row.site_id], now=now)
        except (VaxcredError, ValueError, TypeError) as e:
            out.append(e.code if isinstance(e, VaxcredError) else type(e).__name__)
            continue
        out.append(_Signed(row.id, signed.kid, signed.cose, signed.signed_at))
    return out


def _store_batch(
    db: Database,
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    certificates: Mapping[str, dict[str, Any]],
) -> tuple[int, int]:
    """Store one batch's signatures; returns (signatures stored, doses that could not be signed)."""
    values: list[dict[str, Any]] = []
    failed = 0
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, str):
            failed += 1
            logger.warning("site signing: dose row %d not signed (%s)", row.id, outcome)
            continue
        values.append(
            {
                "dose_id": row.id,
                "site_id": row.site_id,
                "certificate": certificates[row.site_id]["fingerprint"],
                "kid": outcome.kid,
                "cose": outcome.cose,
                "signed_at": outcome.signed_at,
            }
        )
    if not values:
        return 0, failed
    used = sorted({v["site_id"] for v in values})
    conn.execute(
        db.insert_ignoring_conflicts(site_certificates, on=["fingerprint"]),
        [certificates[site] for site in used],
    )
    inserted = conn.execute(
        db.insert_ignoring_conflicts(site_signatures, on=["dose_id"], where=_current).returning(
            site_signatures.c.id
        ),
        values,
    ).all()
    # the issuance log records each site signature in the transaction that stores it (vaxcred.pipeline.log)
    log.append(conn, log.Kind.DOSE_RECORD, [r.id for r in inserted], now=max(v["signed_at"] for v in values))
    return len(inserted), failed


def _to_sign(site_id: str, after: int, limit: int) -> sa.Select[Any]:
    """The next ``limit`` doses of ``site_id`` after dose id ``after`` that need a signature.

    One site per query: it walks the index (site_id, id) in order, so every batch costs the same however many
    doses the other sites hold (an ``IN`` over all sites made SQLite merge and sort every site's remaining
    doses for each batch: quadratic in the number of doses).
    """
    return (
        sa.select(*_DOSE_COLUMNS)
        .join(persons, persons.c.id == doses.c.person_id)
        .where(
            doses.c.site_id == site_id,
            doses.c.id > after,
            doses.c.withdrawn_at.is_(None),
            persons.c.registry_status == _VERIFIED,
            ~_has_current_signature(),
        )
        .order_by(doses.c.id)
        .limit(limit)
    )


def _has_current_signature() -> sa.Exists:
    return sa.exists().where(site_signatures.c.dose_id == doses.c.id, _current)
