"""Key states replayed from the key-operations log, and the site CA's CRL: pure functions over certificates and
:class:`~vaxcred.keys.audit.KeyOperation` records (no files, no clock; :class:`~vaxcred.keys.KeyChainDir` does the
I/O).

- A DSC is ``active`` until a ``retire`` (it signs no more, stays published: its passports verify) or a
  ``withdraw`` (it signs no more and leaves trust lists); withdrawn is final.
- A site certificate is revoked at the time of its first ``revoke`` line; the CRL lists every revoked serial with
  that time and the RFC 5280 reason, and is signed by the site CA (on its token if it is there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vaxcred.keys.audit import KeyOperation
from vaxcred.keys.builders import KeyPair
from vaxcred.keys.x509sign import sign_crl

#: RFC 5280 reason names (``x509.ReasonFlags`` member names) accepted for a site revocation
REVOCATION_REASONS: Final[Mapping[str, x509.ReasonFlags]] = MappingProxyType(
    {r.name: r for r in x509.ReasonFlags if r not in (x509.ReasonFlags.remove_from_crl,)}
)


def kid_of(cert: x509.Certificate) -> bytes:
    """The DCC kid of a certificate: SHA-256(DER)[:8]."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:8]


def operation_on(
    cert: x509.Certificate,
    *,
    operation: str,
    purpose: str,
    at: datetime,
    operator: str | None,
    reason: str | None = None,
) -> KeyOperation:
    """The log record of ``operation`` on ``cert``: its kid, serial (hex) and SHA-256 fingerprint."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return KeyOperation(
        time=at.astimezone(UTC).replace(microsecond=0),
        operation=operation,
        purpose=purpose,
        kid=kid_of(cert).hex(),
        serial=f"{cert.serial_number:x}",
        fingerprint=hashlib.sha256(der).hexdigest(),
        operator=operator,
        reason=reason,
    )


def dsc_states(dscs: Iterable[x509.Certificate], operations: Iterable[KeyOperation]) -> dict[str, str]:
    """kid hex → ``"active"``, ``"retired"`` or ``"withdrawn"`` for each DSC, replaying ``operations``."""
    states = {kid_of(c).hex(): "active" for c in dscs}
    for op in operations:
        if op.kid in states and op.operation in ("retire", "withdraw") and states[op.kid] != "withdrawn":
            states[op.kid] = "retired" if op.operation == "retire" else "withdrawn"
    return states


def unlogged(certificates: Mapping[str, x509.Certificate], operations: Iterable[KeyOperation]) -> list[str]:
    """The names of ``certificates`` (name → certificate) whose generation no ``generate`` line records: the
    log was cut, emptied or replaced (every command that makes a certificate logs it)."""
    generated = {op.fingerprint for op in operations if op.operation == "generate"}
    return [
        name
        for name, cert in certificates.items()
        if hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() not in generated
    ]


def site_revocations(operations: Iterable[KeyOperation]) -> dict[int, tuple[datetime, str]]:
    """Revoked site-certificate serial → (revocation time, reason name): the first ``revoke`` of each."""
    out: dict[int, tuple[datetime, str]] = {}
    for op in operations:
        if op.operation == "revoke" and op.purpose == "site" and op.serial is not None:
            out.setdefault(int(op.serial, 16), (op.time, op.reason or "unspecified"))
    return out


def build_site_crl(
    site_ca: KeyPair,
    revocations: Mapping[int, tuple[datetime, str]],
    *,
    now: datetime,
    number: int,
    validity: timedelta,
) -> x509.CertificateRevocationList:
    """The site CA's CRL (lastUpdate ``now``, nextUpdate ``now + validity``, CRL number ``number``)."""
    at = now.astimezone(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(site_ca.certificate.subject)
        .last_update(at)
        .next_update(at + validity)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, (when, reason) in sorted(revocations.items()):
        flag = REVOCATION_REASONS.get(reason, x509.ReasonFlags.unspecified)
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(when)
            .add_extension(x509.CRLReason(flag), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return sign_crl(builder, site_ca.private_key)
