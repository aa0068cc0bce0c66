"""The EU gateway trust-list JSON (DCC.md §6): import into a :class:`TrustStore`, export from one.

Input is an array of ``{kid, timestamp, country, certificateType, thumbprint, signature, rawData}``.
Each entry is checked on its own; a bad one is *reported* (:class:`RejectedEntry`) and the rest kept:

- ``rawData`` ``null``: a withdrawn certificate (its kid listed in ``withdrawn``).  **Withdrawal wins**:
  an active entry whose kid or thumbprint is withdrawn in the same document is not loaded, whatever the
  order of the two entries;
- ``certificateType`` ``AUTHENTICATION`` or unknown: ignored; ``UPLOAD``: used only to authenticate
  DSC entries (below), never trusted for passports;
- ``rawData`` must be strict Base64 DER that loads; ``kid`` must be Base64 of SHA-256(DER)[:8] and
  ``thumbprint`` the hex SHA-256 of the DER (case-insensitive); ``country`` ISO alpha-2;
  ``timestamp`` ``yyyy-MM-dd'T'HH:mm:ss`` with ``Z`` or ``±hh:mm`` (fractions tolerated);
- a DSC that is a CA or carries the trust-list purpose (:func:`~vaxcred.trust.store.dsc_problem`), or
  a ninth DSC for one kid (:data:`~vaxcred.trust.store.MAX_CANDIDATES`), is rejected.

Authentication (:func:`load_gateway_trust_list`): each entry's ``signature`` is a CMS SignedData over
its certificate DER (:mod:`vaxcred.trust.cms`).  CSCA and UPLOAD entries must be signed by a pinned
gateway trust anchor, DSC entries by an authenticated UPLOAD certificate of the same country (or by the
anchor itself, which vouches for those); an entry without a signature that holds is rejected.  The store's mode is :attr:`TrustMode.GATEWAY`.  Without
anchors only :func:`load_gateway_trust_list_unsafe_unauthenticated` loads a list (mode
``UNAUTHENTICATED``, a logged warning; verify never answers VALID on it).  The gateway JSON carries no
signed issue time: the caller may vouch for the retrieval time (``retrieved_at``), else its age is
unknown and a verifier answers NEEDS_CHECK.  Prefer a national signed list (:mod:`vaxcred.trust.signed`)
for verifiers in the field: it is signed as a whole, dated and sequenced.

A document that is not JSON, not an array, too large or with too many entries raises
TrustStoreError(``trust.malformed``).  Pure: bytes in, bytes out.

This module reads the document and authenticates its entries; each entry's own checks are in
:mod:`~vaxcred.trust.gateway_entries`, the export in :mod:`~vaxcred.trust.gateway_export`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from vaxcred.errors import TrustStoreError
from vaxcred.trust.cms import MAX_CMS_BYTES, CmsError, verify_signed_data
from vaxcred.trust.gateway_entries import (
    Entry,
    Reject,
    RejectedEntry,
    certificate,
    dsc_of,
    parse_entries,
    reject_duplicate_keys,
)
from vaxcred.trust.gateway_export import export_gateway_trust_list
from vaxcred.trust.store import (
    KID_LENGTH,
    MAX_CANDIDATES,
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    require_utc,
)

__all__ = [
    "MAX_GATEWAY_BYTES",
    "MAX_GATEWAY_ENTRIES",
    "GatewayTrustList",
    "RejectedEntry",
    "export_gateway_trust_list",
    "load_gateway_trust_list",
    "load_gateway_trust_list_unsafe_unauthenticated",
]

#: the whole document (the EU gateway list is a few MB)
MAX_GATEWAY_BYTES: Final = 50 * 1024 * 1024
#: entries in one document
MAX_GATEWAY_ENTRIES: Final = 100_000
_log = logging.getLogger("vaxcred.trust")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayTrustList:
    """The result of :func:`load_gateway_trust_list`: the store plus what was left out and why."""

    store: TrustStore
    rejected: tuple[RejectedEntry, ...] = ()
    #: base64 kids of withdrawn (``rawData: null``) entries
    withdrawn: tuple[str, ...] = ()
    #: entries not trusted for passports: AUTHENTICATION, unknown types, and UPLOAD (which only
    #: authenticates DSC entries)
    ignored: int = 0


def _no_constants(name: str) -> None:
    raise ValueError(f"non-JSON constant {name}")


def _parse_document(data: bytes) -> list[Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("the gateway trust list must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_GATEWAY_BYTES:
        raise TrustStoreError(
            f"trust list of {len(raw)} bytes exceeds {MAX_GATEWAY_BYTES}", code="trust.malformed"
        )
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TrustStoreError(f"trust list is not valid JSON: {e}", code="trust.malformed") from e
    if not isinstance(document, list):
        raise TrustStoreError("trust list must be a JSON array", code="trust.malformed")
    if len(document) > MAX_GATEWAY_ENTRIES:
        raise TrustStoreError(
            f"trust list of {len(document)} entries exceeds {MAX_GATEWAY_ENTRIES}", code="trust.malformed"
        )
    return document


def _authenticate(entry: Entry, signers: Sequence[x509.Certificate], who: str) -> None:
    """Raise Reject unless the entry's CMS signature over its DER verifies with one of ``signers``."""
    if entry.signature is None:
        raise Reject(f"no CMS signature (an authenticated list needs one by the {who})")
    if len(entry.signature) > (MAX_CMS_BYTES * 4) // 3 + 4:
        raise Reject("signature too large")
    try:
        cms = base64.b64decode(entry.signature, validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII text
        raise Reject(f"signature is not Base64: {e}") from e
    try:
        verify_signed_data(cms, entry.der, signers)
    except CmsError as e:
        raise Reject(f"CMS signature by the {who} does not hold: {e}") from e


def _valid_anchors(anchors: Sequence[x509.Certificate], now: datetime) -> list[x509.Certificate]:
    if isinstance(anchors, x509.Certificate) or not all(isinstance(a, x509.Certificate) for a in anchors):
        raise TypeError("anchors must be a sequence of x509.Certificate")
    if not anchors:
        raise ValueError("an authenticated gateway list needs at least one trust anchor")
    valid = [a for a in anchors if a.not_valid_before_utc <= now <= a.not_valid_after_utc]
    if not valid:
        raise TrustStoreError("no gateway trust anchor is valid at this time", code="trust.anchor_not_valid")
    return valid


def _load(
    data: bytes,
    *,
    environment: Environment,
    anchors: Sequence[x509.Certificate] | None,
    now: datetime | None,
    retrieved_at: datetime | None,
) -> GatewayTrustList:
    """The one loader: ``anchors`` None = unauthenticated (the unsafe opt-in)."""
    if not isinstance(environment, Environment):
        raise TypeError("environment must be an Environment")
    if retrieved_at is not None:
        retrieved_at = require_utc(retrieved_at, "retrieved_at")
    valid_anchors: list[x509.Certificate] = []
    if anchors is not None:
        if now is None:
            raise TypeError("now is required to check the gateway trust anchor")
        now = require_utc(now)
        valid_anchors = _valid_anchors(anchors, now)
        if retrieved_at is not None and retrieved_at > now:
            raise TrustStoreError(
                f"retrieved in the future ({retrieved_at.isoformat()})", code="trust.issued_in_future"
            )
    document = _parse_document(data)
    rejected: list[RejectedEntry] = []
    entries, withdrawn, ignored = parse_entries(document, rejected)

    # withdrawal wins: an active entry for a certificate withdrawn in the same document is dropped, matched
    # by thumbprint or by kid (fail safe: a certificate whose kid collides is withdrawn too)
    withdrawn_thumbprints = {t for _, _, _, t in withdrawn if t is not None}
    withdrawn_kids = {k for _, _, k, _ in withdrawn if k is not None}

    # UPLOAD certificates, authenticated by the trust anchor, sign each country's DSC entries
    uploads: dict[str, list[x509.Certificate]] = {}
    if anchors is not None:
        for entry in (e for e in entries if e.cert_type == "UPLOAD"):
            try:
                _authenticate(entry, valid_anchors, "gateway trust anchor")
                uploads.setdefault(entry.country, []).append(certificate(entry.der))
            except Reject as e:
                rejected.append(RejectedEntry(index=entry.index, reason=f"UPLOAD: {e}"))

    ignored += sum(1 for e in entries if e.cert_type == "UPLOAD")  # never trusted for passports
    dscs: list[TrustedDsc] = []
    cscas: list[tuple[str, x509.Certificate]] = []
    per_kid: dict[bytes, int] = {}
    authenticated = attempted = 0
    for entry in entries:
        if entry.cert_type == "UPLOAD":
            continue
        digest = hashlib.sha256(entry.der).digest()
        attempted += 1
        try:
            if digest.hex() in withdrawn_thumbprints or digest[:KID_LENGTH] in withdrawn_kids:
                raise Reject("withdrawn in the same document (withdrawal wins)")
            if anchors is not None:
                if entry.cert_type == "CSCA":
                    _authenticate(entry, valid_anchors, "gateway trust anchor")
                else:
                    # the country's authenticated upload certificates; the anchor itself, which vouches
                    # for those, is at least as trusted
                    signers = [*uploads.get(entry.country, []), *valid_anchors]
                    _authenticate(entry, signers, f"{entry.country} upload certificate")
                authenticated += 1
            if entry.cert_type == "DSC":
                dsc = dsc_of(entry)
                count = per_kid.get(dsc.kid, 0)
                if count >= MAX_CANDIDATES:
                    raise Reject(f"more than {MAX_CANDIDATES} DSCs share kid {dsc.kid.hex()}")
                per_kid[dsc.kid] = count + 1
                dscs.append(dsc)
            else:
                cscas.append((entry.country, certificate(entry.der)))
        except Reject as e:
            rejected.append(RejectedEntry(index=entry.index, reason=str(e)))
    if anchors is not None and attempted and not authenticated:
        first = next((r.reason for r in rejected), "")
        raise TrustStoreError(
            f"none of the {attempted} CSCA/DSC entries is signed by the gateway trust anchor or an upload "
            f"certificate it vouches for (e.g. {first}): an unsigned list is never authenticated trust",
            code="trust.unauthenticated",
        )
    mode = TrustMode.GATEWAY if anchors is not None else TrustMode.UNAUTHENTICATED
    store = TrustStore.build(
        environment=environment, mode=mode, dscs=dscs, cscas=cscas, issued_at=retrieved_at
    )
    return GatewayTrustList(
        store=store,
        rejected=tuple(sorted(rejected, key=lambda r: r.index)),
        withdrawn=tuple(kid for _, kid, _, _ in withdrawn),
        ignored=ignored,
    )


def load_gateway_trust_list(
    data: bytes,
    *,
    environment: Environment,
    anchors: Sequence[x509.Certificate] | None = None,
    now: datetime | None = None,
    retrieved_at: datetime | None = None,
) -> GatewayTrustList:
    """Load a gateway trust-list JSON document, authenticating every entry (mode :attr:`TrustMode.GATEWAY`).

    ``anchors`` are the pinned gateway trust-anchor certificates (at least one valid at ``now``, else
    TrustStoreError ``trust.anchor_not_valid``); without any the list is refused (TrustStoreError
    ``trust.unauthenticated``: an unsigned list is never authenticated trust; the unsafe opt-in is
    :func:`load_gateway_trust_list_unsafe_unauthenticated`).  ``now`` is required with anchors.  CSCA and UPLOAD entries must carry a CMS signature by an
    anchor, DSC entries one by an authenticated UPLOAD certificate of their country; entries that do not
    are reported in ``rejected``, never loaded; if no CSCA or DSC entry authenticates at all the list is
    refused (TrustStoreError ``trust.unauthenticated``).  ``retrieved_at`` is when the caller fetched the document
    from the gateway (over an authenticated channel): the gateway JSON carries no signed issue time, so
    without it the list's age is unknown and a verifier answers NEEDS_CHECK.
    """
    if anchors is None or (not isinstance(anchors, x509.Certificate) and len(anchors) == 0):
        raise TrustStoreError(
            "a gateway trust list is authenticated only against a pinned gateway trust anchor: none given "
            "(load_gateway_trust_list_unsafe_unauthenticated reads it unchecked, and is never VALID)",
            code="trust.unauthenticated",
        )
    return _load(data, environment=environment, anchors=anchors, now=now, retrieved_at=retrieved_at)


def load_gateway_trust_list_unsafe_unauthenticated(
    data: bytes, *, environment: Environment, retrieved_at: datetime | None = None
) -> GatewayTrustList:
    """UNSAFE: load a gateway trust list WITHOUT checking any signature (mode ``UNAUTHENTICATED``).

    Anyone who can write the file decides which keys are trusted.  For tests, demos and lists whose
    authenticity is established some other way; :func:`vaxcred.verify` never answers VALID on such a
    store (NEEDS_CHECK with the notice ``trust.unauthenticated``).  Logs a warning.
    """
    _log.warning("loading an UNAUTHENTICATED gateway trust list: its signatures are NOT checked")
    return _load(data, environment=environment, anchors=None, now=None, retrieved_at=retrieved_at)
