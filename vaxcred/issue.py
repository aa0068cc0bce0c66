"""Issue an HC1 passport: DCC -> CWT claims -> COSE_Sign1 -> zlib -> Base45 -> ``HC1:``.

The issuing side is strict where the verifier is tolerant: codes must be in the current value sets and
``mp``/``ma``/``vp`` in the encoding table, the payload must validate against its schema, the signer's
certificate must be allowed to sign the payload type (a site certificate never can), and the passport
may not outlive the DSC (``exp`` <= notAfter) nor be signed outside the DSC's key-usage period.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred import errors, schema, valuesets
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.crypto import Signer
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.oids import SITE_RECORD_EKU
from vaxcred.x509util import DscInfo, eku_allows, parse_dsc

__all__ = [
    "DEFAULT_CERTIFICATE_ISSUER",
    "IssuancePolicy",
    "IssuedPassport",
    "Issuer",
    "add_months",
    "issue",
    "vaccination_dcc",
]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months, the day clamped to the month's end (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    if day > 28:  # every month has 28 days: only later days may need clamping
        day = min(day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuancePolicy:
    """How long passports last and what happens when that would outlive the DSC.

    Decision 5772/QĐ-BYT: 12 months after creation. The deployed Vietnamese passports instead carry a fixed
    expiry date (``fixed_exp``). ``clamp_to_dsc`` shortens ``exp`` to the DSC's notAfter instead of refusing.
    """

    validity_months: int = 12
    fixed_exp: datetime | None = None
    clamp_to_dsc: bool = False
    iss: str | None = "VN"

    def __post_init__(self) -> None:
        if self.validity_months < 1:
            raise ValueError("validity_months must be >= 1")
        if self.fixed_exp is not None and self.fixed_exp.tzinfo is None:
            raise ValueError("fixed_exp must be timezone-aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedPassport:
    hc1: str
    uvci: str
    kid: bytes
    iat: datetime
    exp: datetime
    cose: bytes

    def __repr__(self) -> str:  # the HC1 text is personal data: keep it out of logs
        return f"IssuedPassport(kid={self.kid.hex()}, iat={self.iat.isoformat()}, exp={self.exp.isoformat()})"


def _to_json(dcc: DCC | Mapping[str, Any]) -> tuple[dict[str, Any], DCC]:
    if isinstance(dcc, DCC):
        return dcc.to_json(), dcc
    model = DCC.from_json(dcc)
    return model.to_json(), model


class _Times(NamedTuple):
    """A passport's ``iat`` and ``exp``: seconds, and as aware datetimes."""

    iat: int
    exp: int
    iat_dt: datetime
    exp_dt: datetime


class Issuer:
    """A DSC bound to a policy; reuse one per worker (the certificate checks are done once)."""

    def __init__(self, signer: Signer, *, policy: IssuancePolicy | None = None) -> None:
        self._signer = signer
        self._policy = policy or IssuancePolicy()
        self._info: DscInfo = _dsc_info(signer.certificate)
        self._protected = cose.encode_protected(int(signer.algorithm), signer.kid)
        # the payload types this DSC may sign: its EKU allows them and it is not a site certificate
        self._allowed_types = (
            frozenset()
            if _is_site_certificate(self._info)
            else frozenset(kind for kind in ("v", "t", "r") if eku_allows(self._info, kind))
        )
        # the validity of the last ``now`` issued at (by its POSIX time): a batch signs every passport at one ``now``
        self._last_times: tuple[float, _Times] | None = None

    @property
    def dsc(self) -> DscInfo:
        return self._info

    def _validity(self, now: datetime) -> tuple[int, int]:
        info, policy = self._info, self._policy
        iat_dt = now.astimezone(UTC).replace(microsecond=0)
        if iat_dt < info.not_before or iat_dt > info.not_after:
            raise errors.IssuanceError("the DSC is not valid now", code="issue.dsc_not_valid")
        if info.pkup is not None:
            start, end = info.pkup
            if (start is not None and iat_dt < start) or (end is not None and iat_dt > end):
                raise errors.IssuanceError(
                    "now is outside the DSC's private key usage period: use a newer DSC",
                    code="issue.outside_key_usage_period",
                )
        exp_dt = policy.fixed_exp or add_months(iat_dt, policy.validity_months)
        exp_dt = exp_dt.astimezone(UTC)
        if exp_dt > info.not_after:
            if not policy.clamp_to_dsc:
                raise errors.IssuanceError(
                    f"the passport would outlive its DSC (exp {exp_dt.isoformat()} > notAfter "
                    f"{info.not_after.isoformat()}): use another DSC or IssuancePolicy(clamp_to_dsc=True)",
                    code="issue.exp_past_dsc",
                )
            exp_dt = info.not_after
        if exp_dt <= iat_dt:
            raise errors.IssuanceError("exp must be after iat", code="issue.bad_validity")
        return int(iat_dt.timestamp()), int(exp_dt.timestamp())

    def _times(self, now: datetime) -> _Times:
        """:meth:`_validity` at ``now`` with its datetimes, worked out once per instant in a row (it depends
        on the instant only; a refusal is never remembered). Keyed by ``now.timestamp()``, not by ``now``: two
        aware datetimes of one zone compare equal by wall time, even an hour apart around a DST fold."""
        instant = now.timestamp()
        last = self._last_times
        if last is not None and last[0] == instant:
            return last[1]
        iat, exp = self._validity(now)
        times = _Times(iat, exp, datetime.fromtimestamp(iat, tz=UTC), datetime.fromtimestamp(exp, tz=UTC))
        self._last_times = (instant, times)
        return times

    def issue(self, dcc: DCC | Mapping[str, Any], *, now: datetime) -> IssuedPassport:
        """Sign ``dcc`` (a :class:`~vaxcred.model.DCC` or its JSON form) at ``now`` (aware)."""
        if not isinstance(now, datetime):
            raise TypeError("now must be a datetime")
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        payload, model = _to_json(dcc)
        _check_dates(model)
        kind = model.payload_type
        if kind not in self._allowed_types:
            raise errors.IssuanceError(
                f"this certificate may not sign payload type {kind!r}", code="issue.key_usage"
            )
        if model.v is not None:
            valuesets.check_vaccination(model.v)
        schema.validate_dcc(payload)
        times = self._times(now)
        claims = cwt.encode_claims(iss=self._policy.iss, iat=times.iat, exp=times.exp, dcc=payload)
        to_be_signed = cose.sig_structure_for(self._protected, claims)
        signature = self._signer.sign(to_be_signed)
        message = cose.encode_sign1(self._protected, claims, signature)
        hc1 = prefix.add_prefix(base45.b45encode(compress.compress(message)))
        entry = payload[kind][0]
        return IssuedPassport(
            hc1=hc1,
            uvci=str(entry["ci"]),
            kid=self._signer.kid,
            iat=times.iat_dt,
            exp=times.exp_dt,
            cose=message,
        )


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _real_date(value: str | None, field: str) -> None:
    """The schema only labels dates (``format`` is not asserted); the issuer signs real calendar dates."""
    if value is None:
        return
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise errors.IssuanceError(f"{field} must be a real date YYYY-MM-DD", code="issue.bad_date") from None


def _check_dates(model: DCC) -> None:
    if model.v is not None:
        _real_date(model.v.dt, "v.dt")
    if model.r is not None:
        for field in ("fr", "df", "du"):
            _real_date(getattr(model.r, field), f"r.{field}")


def issue(
    dcc: DCC | Mapping[str, Any], signer: Signer, *, now: datetime, policy: IssuancePolicy | None = None
) -> IssuedPassport:
    """Issue one passport; for batches build one :class:`Issuer` and call :meth:`Issuer.issue`."""
    return Issuer(signer, policy=policy).issue(dcc, now=now)


@functools.lru_cache(maxsize=32)
def _dsc_info(certificate: x509.Certificate) -> DscInfo:
    """:func:`parse_dsc`, remembered per certificate (certificates are equal when their DER is; DscInfo is
    immutable): the one-shot :func:`issue` would otherwise parse the DSC for every passport."""
    return parse_dsc(certificate.public_bytes(Encoding.DER))


def _is_site_certificate(info: DscInfo) -> bool:
    return info.eku is not None and SITE_RECORD_EKU.dotted_string in info.eku


#: the certificate issuer named in ``is`` by default (Viet Nam's Ministry of Health)
DEFAULT_CERTIFICATE_ISSUER = "Ministry of Health of Viet Nam"


def vaccination_dcc(
    *,
    name: Name | str,
    dob: str,
    vaccine: str,
    dose: int,
    doses_total: int,
    date: str,
    country: str = "VN",
    certificate_issuer: str = DEFAULT_CERTIFICATE_ISSUER,
    uvci: str | None = None,
) -> DCC:
    """Build a vaccination DCC from a person's record: ``vaccine`` is a product name of
    :data:`vaxcred.valuesets.VIETNAM_VACCINES` (``"Comirnaty"``) or an ``mp`` code from the value set.

    ``name`` as a string is a Vietnamese full name (họ first); a fresh random UVCI is drawn when none is given.
    """
    codes = valuesets.VIETNAM_VACCINES.get(vaccine)
    if codes is None:
        by_mp = {c.mp: c for c in valuesets.VIETNAM_VACCINES.values()}
        codes = by_mp.get(vaccine)
    if codes is None:
        known = ", ".join(sorted(valuesets.VIETNAM_VACCINES))
        raise errors.IssuanceError(f"unknown vaccine {vaccine!r} (known: {known})", code="issue.valueset")
    entry = Vaccination(
        tg="840539006",
        vp=codes.vp,
        mp=codes.mp,
        ma=codes.ma,
        dn=dose,
        sd=doses_total,
        dt=date,
        co=country,
        is_=certificate_issuer,
        ci=uvci or generate_uvci(country),
    )
    holder = Name.from_vietnamese(name) if isinstance(name, str) else name
    return DCC(nam=holder, dob=DateOfBirth.from_text(dob), entry=entry)
