"""The trust store: kid -> candidate DSCs, CSCAs by country, one environment, provenance and freshness.

A :class:`TrustStore` is immutable and belongs to exactly one :class:`Environment`: test and production
material can never share a store (SECURITY.md pitfall 13), and a production verifier refuses anything else
with :func:`require_environment`.  The kid is a hint: :meth:`TrustStore.candidates` returns every DSC
sharing it (DCC.md §1, SECURITY.md pitfall 3), at most :data:`MAX_CANDIDATES`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final, TypeGuard

from cryptography import x509

from vaxcred.errors import TrustStoreError, VaxcredError
from vaxcred.oids import TRUST_LIST_EKU
from vaxcred.x509util import DscInfo, parse_dsc

__all__ = [
    "DEFAULT_MAX_TRUST_AGE",
    "MAX_CANDIDATES",
    "Environment",
    "TrustMode",
    "TrustStore",
    "TrustedDsc",
    "dsc_problem",
    "dual_purpose_problem",
    "require_environment",
]

#: at most this many DSCs may share one kid in a store (SECURITY.md pitfall 3): enforced when a store is
#: built (loaders report the surplus entries), so that verify can try *every* candidate
MAX_CANDIDATES: Final = 8
#: how old a trust list may be before VALID becomes NEEDS_CHECK, unless the caller says otherwise: three
#: daily refreshes missed (SECURITY.md pitfall 14)
DEFAULT_MAX_TRUST_AGE: Final = timedelta(hours=72)
KID_LENGTH: Final = 8

_COUNTRY = re.compile(r"[A-Z]{2}")


class Environment(enum.Enum):
    """Which trust world a store belongs to (the gateway's ``PROD`` / ``ACC`` / ``TST``)."""

    PROD = "PROD"
    ACC = "ACC"
    TST = "TST"


class TrustMode(enum.Enum):
    """Where a store's certificates came from, which decides how far it can be trusted.

    Only :attr:`SIGNED_LIST` and :attr:`GATEWAY` are authenticated trust; a verifier never answers a
    plain VALID on :attr:`UNAUTHENTICATED` (NEEDS_CHECK, with a notice) and shows :attr:`DSC` as such.
    """

    #: bare DSCs handed over (``--dsc``, the conformance runner): they are the only candidates and the
    #: ``chain`` step is skipped, as there is no CSCA to chain to
    DSC = "dsc"
    #: an EU gateway JSON trust list whose entries' CMS signatures were checked against the gateway
    #: trust anchor (CSCA, UPLOAD) and the country's upload certificate (DSC); no signed issue time
    GATEWAY = "gateway"
    #: a national trust list signed by the ministry's trust-list key, checked against a pinned anchor
    SIGNED_LIST = "signed_list"
    #: an EU gateway JSON list loaded WITHOUT checking any signature (an explicit, unsafe opt-in:
    #: :func:`~vaxcred.trust.load_gateway_trust_list_unsafe_unauthenticated`)
    UNAUTHENTICATED = "unauthenticated"

    @property
    def authenticated(self) -> bool:
        """True for the modes whose certificates were authenticated by a pinned anchor."""
        return self in (TrustMode.GATEWAY, TrustMode.SIGNED_LIST)


def require_utc(value: datetime, name: str = "now") -> datetime:
    """``value`` as an aware UTC datetime; naive -> ValueError, not a datetime -> TypeError."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def is_country(value: object) -> TypeGuard[str]:
    """ISO 3166-1 alpha-2 shape (upper case; ``EU`` included)."""
    return isinstance(value, str) and _COUNTRY.fullmatch(value) is not None


def dual_purpose_problem(info: DscInfo) -> tuple[str, str] | None:
    """``("trust.dsc_dual_purpose", message)`` if the EKU holds the trust-list purpose: a key that may sign
    trust lists must not sign passports (one key, one purpose).  No :class:`TrustedDsc` carries one."""
    if info.eku is not None and TRUST_LIST_EKU.dotted_string in info.eku:
        return (
            "trust.dsc_dual_purpose",
            "the certificate carries the trust-list purpose: one key, one purpose, it cannot be a DSC",
        )
    return None


def dsc_problem(info: DscInfo) -> tuple[str, str] | None:
    """``(code, message)`` if ``info`` may not be a DSC in a trust list, else ``None``.

    - ``trust.dsc_is_ca``: basicConstraints cA is set: a CA key signs certificates, not passports;
    - ``trust.dsc_dual_purpose``: see :func:`dual_purpose_problem`.

    The list loaders reject such entries and :func:`~vaxcred.trust.check_chain` fails them
    (``chain.dsc_is_ca``).  Bare ``--dsc`` certificates are trusted as handed over, CA flag included
    (a real Latvian DSC is a self-signed CA, DCC.md §9): that mode is shown as unchained.
    """
    if info.is_ca:
        return "trust.dsc_is_ca", "the certificate is a CA (basicConstraints cA): not a document signer"
    return dual_purpose_problem(info)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedDsc:
    """One trusted document signer: the parsed certificate, the country the trust list files it under
    (``""`` when unknown: bare ``--dsc`` certificates without ``C=``) and where it came from."""

    info: DscInfo
    country: str
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.info, DscInfo):
            raise TypeError("info must be a DscInfo")
        if self.country != "" and not is_country(self.country):
            raise ValueError(f"country must be ISO 3166-1 alpha-2 (or empty), got {self.country!r}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError("source must be a non-empty string")
        problem = dual_purpose_problem(self.info)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")

    @property
    def kid(self) -> bytes:
        return self.info.kid


def _freeze_dscs(
    dscs: Mapping[bytes, tuple[TrustedDsc, ...]],
) -> MappingProxyType[bytes, tuple[TrustedDsc, ...]]:
    frozen: dict[bytes, tuple[TrustedDsc, ...]] = {}
    for kid, entries in dscs.items():
        if not isinstance(kid, bytes) or len(kid) != KID_LENGTH:
            raise ValueError(f"kid keys must be {KID_LENGTH} bytes, got {kid!r}")
        entries = tuple(entries)
        if not entries:
            raise ValueError(f"kid {kid.hex()} maps to no DSC")
        for entry in entries:
            if not isinstance(entry, TrustedDsc):
                raise TypeError("dscs values must be tuples of TrustedDsc")
            if entry.info.kid != kid:
                raise ValueError(f"DSC with kid {entry.info.kid.hex()} filed under kid {kid.hex()}")
        if len(entries) > MAX_CANDIDATES:
            raise ValueError(f"{len(entries)} DSCs share kid {kid.hex()}: at most {MAX_CANDIDATES}")
        frozen[bytes(kid)] = entries
    return MappingProxyType(frozen)


def _freeze_cscas(
    cscas: Mapping[str, tuple[x509.Certificate, ...]],
) -> MappingProxyType[str, tuple[x509.Certificate, ...]]:
    frozen: dict[str, tuple[x509.Certificate, ...]] = {}
    for country, certs in cscas.items():
        if not is_country(country):
            raise ValueError(f"CSCA country must be ISO 3166-1 alpha-2, got {country!r}")
        certs = tuple(certs)
        if not certs:
            raise ValueError(f"country {country} maps to no CSCA")
        if not all(isinstance(c, x509.Certificate) for c in certs):
            raise TypeError("cscas values must be tuples of x509.Certificate")
        frozen[country] = certs
    return MappingProxyType(frozen)


def _empty_dscs() -> Mapping[bytes, tuple[TrustedDsc, ...]]:
    return MappingProxyType({})


def _empty_cscas() -> Mapping[str, tuple[x509.Certificate, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustStore:
    """DSCs by kid and CSCAs by country for one environment; immutable, validated when built.

    ``issued_at`` is the last trust update: the signed issue time of a national list, or the retrieval
    time a caller vouches for when loading gateway JSON (``None``: unknown).  ``sequence`` comes from a
    signed national list only.  ``max_age`` is the freshness bound the loader was given, used by
    :meth:`is_fresh` when the caller passes none (else :data:`DEFAULT_MAX_TRUST_AGE`).
    Build one with :meth:`build`, :meth:`from_dsc_certificates` or a loader
    (:func:`~vaxcred.trust.load_gateway_trust_list`, :func:`~vaxcred.trust.load_signed_trust_list`).
    """

    environment: Environment
    mode: TrustMode
    dscs: Mapping[bytes, tuple[TrustedDsc, ...]] = field(default_factory=_empty_dscs)
    cscas: Mapping[str, tuple[x509.Certificate, ...]] = field(default_factory=_empty_cscas)
    issued_at: datetime | None = None
    sequence: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.environment, Environment):
            raise TypeError("environment must be an Environment")
        if not isinstance(self.mode, TrustMode):
            raise TypeError("mode must be a TrustMode")
        object.__setattr__(self, "dscs", _freeze_dscs(self.dscs))
        object.__setattr__(self, "cscas", _freeze_cscas(self.cscas))
        if self.issued_at is not None:
            object.__setattr__(self, "issued_at", require_utc(self.issued_at, "issued_at"))
        if self.sequence is not None and (
            isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0
        ):
            raise ValueError("sequence must be a non-negative int")
        if self.max_age is not None and (
            not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)
        ):
            raise ValueError("max_age must be a positive timedelta")

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        *,
        environment: Environment,
        mode: TrustMode,
        dscs: Iterable[TrustedDsc] = (),
        cscas: Iterable[tuple[str, x509.Certificate]] = (),
        issued_at: datetime | None = None,
        sequence: int | None = None,
        max_age: timedelta | None = None,
    ) -> TrustStore:
        """Group ``dscs`` by kid and ``cscas`` (``(country, certificate)`` pairs) by country, in the given
        order, dropping exact duplicates (same DER and country)."""
        by_kid: dict[bytes, list[TrustedDsc]] = {}
        seen_dscs: set[tuple[bytes, str]] = set()
        for dsc in dscs:
            key = (dsc.info.der, dsc.country)
            if key not in seen_dscs:
                seen_dscs.add(key)
                by_kid.setdefault(dsc.info.kid, []).append(dsc)
        by_country: dict[str, list[x509.Certificate]] = {}
        seen_cscas: set[tuple[str, x509.Certificate]] = set()
        for country, cert in cscas:
            if (country, cert) not in seen_cscas:
                seen_cscas.add((country, cert))
                by_country.setdefault(country, []).append(cert)
        return cls(
            environment=environment,
            mode=mode,
            dscs={k: tuple(v) for k, v in by_kid.items()},
            cscas={k: tuple(v) for k, v in by_country.items()},
            issued_at=issued_at,
            sequence=sequence,
            max_age=max_age,
        )

    @classmethod
    def from_dsc_certificates(
        cls,
        ders: Iterable[bytes],
        *,
        environment: Environment = Environment.TST,
        source: str = "dsc",
    ) -> TrustStore:
        """The ``--dsc`` mode: these certificates (DER) are the only candidates; no CSCA, ``chain`` skipped.

        The country is the certificate's own ``C=`` (``""`` if absent).  A certificate that does not
        parse raises TrustStoreError(``trust.bad_certificate``).
        """
        dscs = []
        for index, der in enumerate(ders):
            if not isinstance(der, bytes | bytearray):
                raise TypeError("ders must be DER bytes")
            try:
                info = parse_dsc(bytes(der))
            except (VaxcredError, ValueError) as e:
                raise TrustStoreError(
                    f"certificate #{index} is not a usable DSC: {e}", code="trust.bad_certificate"
                ) from e
            problem = dual_purpose_problem(info)
            if problem is not None:
                raise TrustStoreError(f"certificate #{index}: {problem[1]}", code=problem[0])
            country = info.country if is_country(info.country) else ""
            dscs.append(TrustedDsc(info=info, country=country, source=source))
        try:
            return cls.build(environment=environment, mode=TrustMode.DSC, dscs=dscs)
        except ValueError as e:  # more DSCs for one kid than a store holds
            raise TrustStoreError(str(e), code="trust.too_many_candidates") from e

    # -- queries --------------------------------------------------------------------------------------

    def candidates(self, kid: bytes) -> tuple[TrustedDsc, ...]:
        """Every trusted DSC sharing ``kid`` (the kid is a hint, not an identity); a store holds at most
        :data:`MAX_CANDIDATES` per kid, so none is ever left out."""
        return self.dscs.get(bytes(kid), ())

    @property
    def has_cscas(self) -> bool:
        return bool(self.cscas)

    @property
    def chain_required(self) -> bool:
        """False only in the ``--dsc`` mode, where the handed-over DSCs are trusted as they are."""
        return self.mode is not TrustMode.DSC

    def all_dscs(self) -> tuple[TrustedDsc, ...]:
        """Every DSC entry, grouped by kid in insertion order."""
        return tuple(dsc for entries in self.dscs.values() for dsc in entries)

    def all_cscas(self) -> tuple[tuple[str, x509.Certificate], ...]:
        """Every CSCA as ``(country, certificate)``, grouped by country in insertion order."""
        return tuple((country, cert) for country, certs in self.cscas.items() for cert in certs)

    @property
    def stale_after(self) -> datetime | None:
        """When this store stops being fresh (``issued_at + max_age``, the default bound when the loader set
        none); ``None`` if the issue time is unknown."""
        if self.issued_at is None:
            return None
        return self.issued_at + (self.max_age or DEFAULT_MAX_TRUST_AGE)

    def is_fresh(self, now: datetime, max_age: timedelta | None = None) -> bool:
        """Whether the store is at most ``max_age`` (else the loader's, else :data:`DEFAULT_MAX_TRUST_AGE`)
        old at ``now``.

        There is always a bound.  A store without an issue time (gateway JSON without a retrieval time)
        is not fresh: its age cannot be known.  Bare ``--dsc`` certificates without an issue time count
        as fresh under the default bound (no list is involved), not under an explicit one (the caller asked
        for trust of a known age).  A verifier turns a VALID result on a store that is not fresh into
        NEEDS_CHECK (SECURITY.md pitfall 14); see :class:`~vaxcred.trust.TrustFreshnessPolicy`.
        """
        now = require_utc(now)
        explicit = max_age or self.max_age
        if self.issued_at is None:
            return self.mode is TrustMode.DSC and explicit is None
        return now - self.issued_at <= (explicit or DEFAULT_MAX_TRUST_AGE)

    def __repr__(self) -> str:
        return (
            f"TrustStore(environment={self.environment.value}, mode={self.mode.value}, "
            f"dscs={sum(len(v) for v in self.dscs.values())}, "
            f"cscas={sum(len(v) for v in self.cscas.values())}, "
            f"issued_at={self.issued_at.isoformat() if self.issued_at else None}, sequence={self.sequence})"
        )


def require_environment(store: TrustStore, environment: Environment) -> TrustStore:
    """Return ``store`` if it belongs to ``environment``; else TrustStoreError(``trust.wrong_environment``).

    A production verifier calls ``require_environment(store, Environment.PROD)`` and so never accepts
    acceptance or test anchors (SECURITY.md pitfall 13).
    """
    if store.environment is not environment:
        raise TrustStoreError(
            f"trust store is for {store.environment.value}, {environment.value} required",
            code="trust.wrong_environment",
        )
    return store
