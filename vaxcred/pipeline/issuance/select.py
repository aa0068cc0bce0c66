"""Central issuance, the selection half: who may receive a passport, and the DCC they receive.

A person is **eligible** when, in this order (the first failing rule is the person's :class:`Reason`):

(1) registry:   the newest ``registry_checks`` row (highest id) is ``VERIFIED`` — the check the passport relies on;
(2) doses:      at least one dose is recorded, and the history is not contradictory
                (:func:`~vaxcred.pipeline.records.history.history_problems`: a dose number recorded twice — on
                two days or at two sites — or a higher dose dated on or before a lower one): such a person is
                held (``history.contradictory``) until a correction fixes the records;
(3) signed:     EVERY dose has a current site signature (``superseded_at IS NULL``);
(4) certificate: the signature's site certificate is stored (by fingerprint, else by kid among the site's own);
(5) chain:      that certificate was issued by ``site_ca``, both valid at the signing time (SECURITY.md §5);
(6) signature:  :func:`~vaxcred.pipeline.site_signing.record.verify_stored_dose` accepts the record with that
                certificate — site certificate purpose, kid, signature (a batch member: its batch head's, checked
                once per head and certificate in a process, then the member's audit path to the signed root),
                own site, certificate valid at the signing time, signed no later than ``now`` — and the salted
                citizen hash matches the person's citizen ID;
(7) record:     the signed record says what the stored dose says (site, dose number, date, lot, mp/ma/vp): the
                passport is built from stored rows, so they must be the rows the site signed.

(An ACTIVE passport also makes a person ineligible; the work queue in :mod:`vaxcred.pipeline.issuance.stage` leaves
such persons out before they reach these rules.)

**The DCC** (:func:`build_dcc`): holder ``Name.from_vietnamese(full_name)``, ``dob`` as recorded, and the
*latest* dose (:func:`latest_dose`): ``dn`` = its dose number, ``sd = max(primary series of its product, dn)``
(:data:`PRIMARY_SERIES`; a booster is n/n, the EU convention), ``co`` ``VN``, ``is`` the certificate issuer, and a
fresh random UVCI (:func:`vaxcred.model.generate_uvci`) — never derived from the citizen ID.

Seed 004 (a dose recorded without the paper for an earlier one) means doses may arrive in any order and from
several sites; once stored they must make one consistent history (rule 2). **Latest-dose rule**: the greatest
``(date, dose_number, site_id)`` — with rule (2) that is the highest dose number; the tie-breaks keep the choice
a function of the stored values only, never of import order or row ids. Every stored dose must be site-signed,
and all are linked to the passport.

The stored rows these rules read, and the once-per-certificate chain check: :mod:`vaxcred.pipeline.issuance.rows`.
Nothing here logs personal data.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from vaxcred.errors import VaxcredError
from vaxcred.model import DCC, DateOfBirth, Name, Vaccination, generate_uvci
from vaxcred.pipeline.issuance.rows import Candidate, DoseRow, SignatureRow, SiteCertificate, SiteCertificates
from vaxcred.pipeline.records.history import history_problems
from vaxcred.pipeline.records.model import vaccine_codes
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.pipeline.site_signing import batch_member_is
from vaxcred.pipeline.site_signing.record import DoseClaims, verify_stored_dose

__all__ = [
    "COUNTRY",
    "DEFAULT_PRIMARY_SERIES",
    "PRIMARY_SERIES",
    "Eligible",
    "Reason",
    "build_dcc",
    "evaluate",
    "latest_dose",
    "primary_series",
    "registry_reason",
]

#: the country that vaccinated (``v.co``) and issues
COUNTRY: Final = "VN"
#: SNOMED CT "COVID-19" (``v.tg``)
_COVID_19: Final = "840539006"

#: Doses in the primary series of a product (``sd`` for doses up to it), keyed by the EU ``mp`` code.
#: Single-dose products: Janssen/Jcovden, Sputnik Light, Convidecia (CanSino); Abdala (CIGB) is given as three
#: doses (days 0, 14, 28). Every other product: :data:`DEFAULT_PRIMARY_SERIES`. Doses past the primary series
#: (boosters) are n/n: ``sd = max(primary series, dn)`` (EU eHealth Network guidelines on booster encoding).
PRIMARY_SERIES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "EU/1/20/1525": 1,  # Janssen (Jcovden)
        "Sputnik-Light": 1,
        "Convidecia": 1,
        "Abdala": 3,
    }
)
DEFAULT_PRIMARY_SERIES: Final = 2


def primary_series(mp: str) -> int:
    """Doses in the primary series of the product ``mp`` (:data:`PRIMARY_SERIES`, else 2)."""
    return PRIMARY_SERIES.get(mp, DEFAULT_PRIMARY_SERIES)


class Reason(enum.StrEnum):
    """Why a person got no passport in a run (the report counts them by this code)."""

    # ineligible: the person's data does not allow a passport (yet)
    REGISTRY_NOT_CHECKED = "registry.not_checked"
    REGISTRY_MISMATCH = "registry.mismatch"
    REGISTRY_NOT_FOUND = "registry.not_found"
    REGISTRY_INVALID_ID = "registry.invalid_id"
    NO_DOSES = "dose.none"
    HISTORY_CONTRADICTORY = "history.contradictory"
    DOSE_UNSIGNED = "dose.unsigned"
    UNKNOWN_CERTIFICATE = "signature.unknown_certificate"
    UNTRUSTED_CERTIFICATE = "signature.untrusted_certificate"
    CERTIFICATE_NOT_VALID = "signature.certificate_not_valid"
    SIGNATURE_INVALID = "signature.invalid"
    CITIZEN_MISMATCH = "signature.citizen_mismatch"
    RECORD_MISMATCH = "signature.record_mismatch"
    ALREADY_ACTIVE = "passport.already_active"
    # failed: eligible, but this run could not store a passport (a re-run retries)
    DCC_INVALID = "dcc.invalid"
    ISSUE_REFUSED = "issue.refused"
    RECORD_CHANGED = "record.changed"
    CLAIM_LOST = "claim.lost"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES


_FAILURES: Final = frozenset(
    {Reason.DCC_INVALID, Reason.ISSUE_REFUSED, Reason.RECORD_CHANGED, Reason.CLAIM_LOST}
)

_REGISTRY_REASONS: Final[Mapping[str | None, Reason]] = MappingProxyType(
    {
        None: Reason.REGISTRY_NOT_CHECKED,
        RegistryStatus.MISMATCH.value: Reason.REGISTRY_MISMATCH,
        RegistryStatus.NOT_FOUND.value: Reason.REGISTRY_NOT_FOUND,
        RegistryStatus.INVALID_ID.value: Reason.REGISTRY_INVALID_ID,
    }
)


def registry_reason(status: str | None) -> Reason:
    """The reason a person whose newest registry status is ``status`` (not VERIFIED) gets no passport."""
    return _REGISTRY_REASONS.get(status, Reason.REGISTRY_NOT_CHECKED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Eligible:
    """A person who may receive a passport: the DCC to sign and what it relied on."""

    person_id: int
    check_id: int
    dcc: DCC = field(repr=False)
    #: (dose id, site signature id) for every dose of the person
    links: tuple[tuple[int, int], ...]


# --- the rules --------------------------------------------------------------------------------------------------


def _verify_signature(
    dose: DoseRow, sig: SignatureRow, citizen_id: str, certificates: SiteCertificates, now: datetime
) -> Reason | None:
    # (4) certificate
    options = certificates.candidates_for(sig)
    if not options:
        return Reason.UNKNOWN_CERTIFICATE
    problem = Reason.SIGNATURE_INVALID
    for option in options:
        # (5) chain, the time-independent part (done once per certificate)
        if option.window is None:
            problem = Reason.UNTRUSTED_CERTIFICATE
            continue
        # (4)–(7) at once for a batch member that is exactly the stored dose: the verdict the steps below reach
        # for it (accepted), without decoding the record; anything else — a refusal among them — goes below
        if sig.head is not None and _member_is_dose(dose, sig, citizen_id, option, now):
            return None
        # (6) signature, purpose, kid, own site, certificate valid at the signing time, citizen; a batch member:
        # its head's signature once per process (cached by head bytes and certificate), then its audit path
        try:
            claims = verify_stored_dose(
                sig.cose,
                sig.head,
                sig.leaf_index,
                sig.proof,
                site_certificate=option.certificate,
                citizen_id=citizen_id,
                now=now,
            )
        except VaxcredError as e:
            problem = _signature_reason(e.code)
            continue
        # (5) chain: the site CA valid at the signing time too
        start, end = option.window
        if not start <= claims.signed_at <= end:
            problem = Reason.UNTRUSTED_CERTIFICATE
            continue
        # (7) the signed record is the stored dose
        return None if _same_record(claims, dose) else Reason.RECORD_MISMATCH
    return problem


def _member_is_dose(
    dose: DoseRow, sig: SignatureRow, citizen_id: str, option: SiteCertificate, now: datetime
) -> bool:
    """Whether the batch member ``sig`` is a valid record, signed by ``option`` inside its window, of exactly
    ``dose`` for ``citizen_id`` (:func:`~vaxcred.pipeline.site_signing.batch_member_is`): then
    :func:`verify_stored_dose` accepts it, the signing time is in the window and :func:`_same_record` holds —
    rules (5)–(7) pass. ``False`` proves nothing: the full steps run."""
    if sig.head is None or sig.leaf_index is None or option.window is None:
        return False
    try:
        codes = _vaccine_codes(dose.vaccine)
    except ValueError:
        return False
    signed_at = batch_member_is(
        sig.head,
        sig.leaf_index,
        sig.proof or b"",
        sig.cose,
        site_certificate=option.certificate,
        citizen_id=citizen_id,
        now=now,
        site_id=dose.site_id,
        mp=codes.mp,
        ma=codes.ma,
        vp=codes.vp,
        lot=dose.lot,
        date=dose.date.isoformat(),
        dose_number=dose.dose_number,
    )
    if signed_at is None:
        return False
    start, end = option.window
    return start <= signed_at <= end


#: :func:`vaccine_codes`, remembered per worker (a handful of products; the codes are immutable; a refusal is
#: raised again each time, never remembered)
_vaccine_codes: Final = functools.lru_cache(maxsize=256)(vaccine_codes)


def _signature_reason(code: str) -> Reason:
    if code == "sitesign.citizen_mismatch":
        return Reason.CITIZEN_MISMATCH
    if code in ("sitesign.cert_not_valid", "sitesign.signed_in_future"):
        return Reason.CERTIFICATE_NOT_VALID
    if code.startswith("chain."):
        return Reason.UNTRUSTED_CERTIFICATE
    return Reason.SIGNATURE_INVALID


def _same_record(claims: DoseClaims, dose: DoseRow) -> bool:
    try:
        codes = _vaccine_codes(dose.vaccine)
    except ValueError:
        return False
    return (
        claims.site_id == dose.site_id
        and claims.dose_number == dose.dose_number
        and claims.date == dose.date.isoformat()
        and claims.lot == dose.lot
        and (claims.mp, claims.ma, claims.vp) == (codes.mp, codes.ma, codes.vp)
    )


def latest_dose(dose_rows: Sequence[DoseRow]) -> DoseRow:
    """The dose the passport certifies: the greatest (date, dose number, site ID) — see the module docstring."""
    if not dose_rows:
        raise ValueError("no doses")
    return max(dose_rows, key=lambda d: d.order_key)


@functools.lru_cache(maxsize=1 << 16)
def _holder(full_name: str) -> Name:
    """``Name.from_vietnamese``, remembered per worker (names repeat across a population; a Name is immutable)."""
    return Name.from_vietnamese(full_name)


@functools.lru_cache(maxsize=1 << 16)
def _date_of_birth(dob: str) -> DateOfBirth:
    """``DateOfBirth.from_text``, remembered per worker (immutable; ~36,500 distinct values a century)."""
    return DateOfBirth.from_text(dob)


def build_dcc(candidate: Candidate, latest: DoseRow, *, certificate_issuer: str) -> DCC:
    """The vaccination DCC for ``candidate`` certifying ``latest`` (module docstring), with a fresh UVCI.

    Raises :class:`~vaxcred.errors.ModelError` / ``ValueError`` for data that cannot make a DCC.
    """
    codes = _vaccine_codes(latest.vaccine)
    entry = Vaccination(
        tg=_COVID_19,
        vp=codes.vp,
        mp=codes.mp,
        ma=codes.ma,
        dn=latest.dose_number,
        sd=max(primary_series(codes.mp), latest.dose_number),
        dt=latest.date.isoformat(),
        co=COUNTRY,
        is_=certificate_issuer,
        ci=generate_uvci(COUNTRY),
    )
    return DCC(nam=_holder(candidate.full_name), dob=_date_of_birth(candidate.dob), entry=entry)


def evaluate(
    candidate: Candidate, certificates: SiteCertificates, *, now: datetime, certificate_issuer: str
) -> Eligible | Reason:
    """Apply rules (1)–(7) to ``candidate``; the DCC for an eligible person, else the first failing rule."""
    # (1) registry
    if candidate.check_id is None or candidate.check_status != RegistryStatus.VERIFIED.value:
        return registry_reason(candidate.check_status)
    # (2) doses
    if not candidate.doses:
        return Reason.NO_DOSES
    if history_problems((d.dose_number, d.date) for d in candidate.doses):
        return Reason.HISTORY_CONTRADICTORY
    links: list[tuple[int, int]] = []
    for dose in candidate.doses:
        # (3) signed
        if dose.signature is None:
            return Reason.DOSE_UNSIGNED
        # (4)–(7)
        problem = _verify_signature(dose, dose.signature, candidate.citizen_id, certificates, now)
        if problem is not None:
            return problem
        links.append((dose.id, dose.signature.id))
    try:
        dcc = build_dcc(candidate, latest_dose(candidate.doses), certificate_issuer=certificate_issuer)
    except (VaxcredError, ValueError):
        return Reason.DCC_INVALID
    return Eligible(person_id=candidate.person_id, check_id=candidate.check_id, dcc=dcc, links=tuple(links))
