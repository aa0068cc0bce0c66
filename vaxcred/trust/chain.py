"""The ``chain`` step: DSC -> CSCA of its country, the whole path valid at ``now`` (shell model).

Two layers, both must pass (STYLE.md item 3, SECURITY.md pitfall 15, DCC.md §5):

1. The DCC checks, done by hand so that each failure has its own stable code:

   - ``chain.no_csca``: the trust store has no CSCA for the DSC's country;
   - ``chain.malformed``: the DSC cannot be loaded as an X.509 certificate at all;
   - ``chain.bad_signature``: no CSCA of that country issued it (name + signature);
   - ``chain.not_ca``: the issuing CSCA is not a CA (basicConstraints cA, keyCertSign);
   - ``chain.not_yet_valid`` / ``chain.expired``: DSC or CSCA outside its validity at ``now``;
   - ``chain.country_mismatch``: DSC ``C=`` differs from the CSCA's, or the CSCA's from the list's;
   - ``chain.aki_mismatch``: DSC authorityKeyIdentifier differs from the CSCA's subjectKeyIdentifier;
   - ``chain.no_digital_signature``: the DSC has keyUsage without digitalSignature;
   - ``chain.dsc_is_ca``: the DSC itself is a CA (basicConstraints cA): one key, one purpose;
   - ``chain.policy``: RFC 5280 path validation (below) refused the path.

2. RFC 5280 path validation by pyca/cryptography's X.509 verification API
   (``PolicyBuilder().store(Store([csca])).time(now)``) with DCC extension policies: no SAN required,
   DCC (or any) EKUs accepted, critical EKU accepted, keyUsage checked for digitalSignature / keyCertSign.
   It adds what the hand checks do not: the signature algorithm allowlist, minimum issuer key sizes,
   RFC 5280 name chaining.  Where pyca cannot even read a DSC's extensions (an empty EKU,
   ``common/2DCode/raw/CO15.json``), the hand checks alone decide; the DER-level reader of
   :mod:`vaxcred.x509util` has already read what they need.

Nothing from ``cryptography`` escapes: every failure is a :class:`~vaxcred.errors.ChainError`.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from vaxcred.errors import ChainError
from vaxcred.trust.store import TrustedDsc, TrustStore, require_utc

__all__ = ["check_chain", "check_issued_by"]

#: intermediates allowed between DSC and CSCA: none in the DCC PKI (the CSCA is the trust anchor)
_MAX_CHAIN_DEPTH = 0


def _require_digital_signature(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.digital_signature:
        raise ValueError("keyUsage without digitalSignature")


def _require_key_cert_sign(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("CA keyUsage without keyCertSign")


#: CSCA: basicConstraints must be present (pyca then enforces cA and pathLen); keyUsage, if present, must
#: allow certificate signing; every other extension is tolerated (CSCA profiles vary by country)
_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_key_cert_sign)
)
#: DSC: no SAN needed; the EKU (DCC OIDs, either family, critical or not) is the ``key_usage`` step's
#: business, not the path's; keyUsage, if present, must allow digitalSignature
_EE_POLICY = (
    ExtensionPolicy.permit_all()
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature)
)


def check_chain(dsc: TrustedDsc, store: TrustStore, now: datetime) -> None:
    """Check that ``dsc`` chains to a CSCA of its trust-list country in ``store``, all valid at ``now``.

    Returns ``None`` or raises :class:`~vaxcred.errors.ChainError` (codes in the module docstring).  When
    several CSCAs of the country could have issued the DSC (a renewed CSCA), any one passing suffices;
    otherwise the first failure is reported.  ``now`` must be aware (naive -> ValueError).

    In the ``--dsc`` mode (:attr:`TrustStore.chain_required` false) there is nothing to chain to and this
    raises ``chain.no_csca``: the verifier reports the step as skipped instead of calling it.
    """
    now = require_utc(now)
    cscas = store.cscas.get(dsc.country, ())
    if not cscas:
        raise ChainError(f"no CSCA for country {dsc.country or '(unknown)'}", code="chain.no_csca")
    cert = dsc.info.certificate
    if cert is None:
        raise ChainError("the DSC is not a loadable X.509 certificate", code="chain.malformed")
    issuers = [csca for csca in cscas if _signed_by(cert, csca)]
    if not issuers:
        raise ChainError(
            f"the DSC was not signed by any of the {len(cscas)} CSCA(s) of {dsc.country}",
            code="chain.bad_signature",
        )
    failures: list[ChainError] = []
    for csca in issuers:
        try:
            _check_dcc_profile(dsc, csca, now)
            _raise(_path_problem(cert, csca))
        except ChainError as e:
            failures.append(e)
            continue
        return
    raise failures[0]


# --- memoised time-independent parts ----------------------------------------------------------------------
# A border app verifies thousands of passports against the same few hundred DSCs: the signature of the
# DSC, the CSCA's CA profile and the RFC 5280 path do not depend on `now` (validity at `now` is checked by
# hand on every call), so they are computed once per (DSC, CSCA) pair. Certificates are immutable and
# hash by their DER; the caches are bounded.


def _raise(problem: tuple[str, str] | None) -> None:
    if problem is not None:
        raise ChainError(problem[1], code=problem[0])


@lru_cache(maxsize=4096)
def _path_problem(cert: x509.Certificate, csca: x509.Certificate) -> tuple[str, str] | None:
    """RFC 5280 path validation at an instant inside both validity periods (time is checked by hand)."""
    reference = max(cert.not_valid_before_utc, csca.not_valid_before_utc)
    if reference > min(cert.not_valid_after_utc, csca.not_valid_after_utc):
        return "chain.expired", "the DSC and its CSCA are never valid at the same time"
    try:
        _check_path(cert, csca, reference, extensions_readable=_extensions_readable(cert))
    except ChainError as e:
        return e.code, e.message
    return None


@lru_cache(maxsize=1024)
def _ca_problem(csca: x509.Certificate) -> tuple[str, str] | None:
    try:
        _check_ca(csca)
    except ChainError as e:
        return e.code, e.message
    return None


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None:
    """``cert`` directly issued by the trust anchor ``issuer``, both valid at ``now``, RFC 5280 path OK.

    The generic part of :func:`check_chain` (no country or DSC keyUsage rules), used for the trust-list
    signing certificate.  Raises :class:`~vaxcred.errors.ChainError`.
    """
    now = require_utc(now)
    if not _signed_by(cert, issuer):
        raise ChainError("the certificate was not issued by the anchor", code="chain.bad_signature")
    _check_ca(issuer)
    _check_validity(issuer, now, "CSCA")
    _check_validity(cert, now, "certificate")
    _check_aki(_aki(cert), _ski(issuer))
    _check_path(cert, issuer, now, extensions_readable=_extensions_readable(cert))


# --- the hand checks ---------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Issuer name matches and the issuer's key verifies the certificate's signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    except Exception:  # any other library failure means "not verifiably issued by it"
        return False
    return True


def _check_dcc_profile(dsc: TrustedDsc, csca: x509.Certificate, now: datetime) -> None:
    info = dsc.info
    if info.is_ca:
        raise ChainError(
            "the DSC is a CA (basicConstraints cA): not a document signer", code="chain.dsc_is_ca"
        )
    _raise(_ca_problem(csca))
    _check_validity(csca, now, "CSCA")
    if now < info.not_before:
        raise ChainError(f"DSC not valid before {info.not_before.isoformat()}", code="chain.not_yet_valid")
    if now > info.not_after:
        raise ChainError(f"DSC expired at {info.not_after.isoformat()}", code="chain.expired")
    csca_country = _country(csca)
    if csca_country != dsc.country:
        raise ChainError(
            f"CSCA country {csca_country!r} differs from the trust list's {dsc.country!r}",
            code="chain.country_mismatch",
        )
    if info.country != csca_country:
        raise ChainError(
            f"DSC country {info.country!r} differs from its CSCA's {csca_country!r}",
            code="chain.country_mismatch",
        )
    _check_aki(info.aki, _ski(csca))
    if info.key_usage_digital_signature is False:
        raise ChainError("the DSC's keyUsage lacks digitalSignature", code="chain.no_digital_signature")


def _check_ca(csca: x509.Certificate) -> None:
    try:
        bc = csca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise ChainError("the CSCA has no basicConstraints: not a CA", code="chain.not_ca") from None
    except Exception as e:
        raise ChainError(f"the CSCA's extensions are unreadable: {e}", code="chain.not_ca") from e
    if not bc.ca:
        raise ChainError("the CSCA's basicConstraints does not assert cA", code="chain.not_ca")
    try:
        ku = csca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.key_cert_sign:
        raise ChainError("the CSCA's keyUsage lacks keyCertSign", code="chain.not_ca")


@lru_cache(maxsize=1024)
def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    not_before, not_after = _validity(cert)
    if now < not_before:
        raise ChainError(f"{what} not valid before {not_before.isoformat()}", code="chain.not_yet_valid")
    if now > not_after:
        raise ChainError(f"{what} expired at {not_after.isoformat()}", code="chain.expired")


def _check_aki(aki: bytes | None, ski: bytes | None) -> None:
    # An absent AKI or SKI leaves the decision to name chaining and the signature.
    if aki is not None and ski is not None and aki != ski:
        raise ChainError(
            f"authorityKeyIdentifier {aki.hex()} is not the CSCA's subjectKeyIdentifier {ski.hex()}",
            code="chain.aki_mismatch",
        )


@lru_cache(maxsize=1024)
def _country(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if len(attrs) != 1:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else None


@lru_cache(maxsize=1024)
def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except Exception:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except Exception:
        return None


def _extensions_readable(cert: x509.Certificate) -> bool:
    try:
        cert.extensions  # noqa: B018 - parsing is the point
    except Exception:
        return False
    return True


# --- RFC 5280 path validation (pyca/cryptography) --------------------------------------------------------


def _check_path(
    leaf: x509.Certificate, anchor: x509.Certificate, now: datetime, *, extensions_readable: bool
) -> None:
    if not extensions_readable:
        return  # pyca cannot parse this DSC (DCC.md §9); the hand checks above have decided
    try:
        verifier = (
            PolicyBuilder()
            .store(Store([anchor]))
            .time(now)
            .max_chain_depth(_MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        verifier.verify(leaf, [])
    except VerificationError as e:
        raise ChainError(f"path validation failed: {e}", code="chain.policy") from e
    except Exception as e:  # never let a library error escape (SECURITY.md pitfall 23)
        raise ChainError(f"path validation failed: {e}", code="chain.policy") from e
