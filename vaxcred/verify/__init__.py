"""Verify an HC1 passport the way a border app does.

The steps, in one place (each code block of :func:`verify` below, and of the module running it, is tagged
with its number and name, which are also the names in :class:`~vaxcred.result.VerificationResult`):

(0) input:     an image (PNG/JPEG) is read for its single QR code; bytes must be ASCII text
(1) prefix:    exactly ``HC1:``, at most 4,296 characters
(2) base45:    RFC 9285 strict
(3) zlib:      zlib wrapper, stream end, no trailing bytes, at most 64 KiB inflated
(4) cose:      COSE_Sign1 (untagged, 18, or 61(18)); strict CBOR; CWT claims with integer iat/exp, hcert
(5) kid:       an 8-byte kid (protected header wins) selecting candidate DSCs — a hint, never a verdict
(6) signature: every candidate tried; the algorithm comes from the DSC's key type, a header alg that
               disagrees fails; Sig_structure from the bytes as received
(7) chain:     DSC -> CSCA of its country at ``now`` (``skip`` when only bare DSCs were handed over);
               (6) and (7) run per candidate: the first DSC passing both is used, else the first whose
               signature holds (its chain failure reported)
--- once the signature holds, every remaining check runs and reports ---
(8) time:      DSC.notBefore <= iat <= now (+skew) <= exp <= DSC.notAfter
(9) key_usage: exactly one of v/t/r, allowed by the DSC's extended key usage (either OID family)
(10) schema:   the official JSON schema of the payload's own ``ver`` (compiled once, ECMA-262 patterns), plus
               the DCC profile: exactly one v/t/r entry, whole-value country and date of birth
(11) revocation: UCI, COUNTRYCODEUCI (``co`` and ``iss``) and SIGNATURE (ES256: ``r``) hashes looked up under
               the kid and ``UNKNOWN_KID``; listed -> fail; data past its maximum age -> NEEDS_CHECK
(12) rules:    the business rules of the arrival ``country`` (+ the issuer's invalidation rules), when a rule
               set is given; a rule vaxcred cannot run makes the status NEEDS_CHECK, never VALID
--- trust ---  VALID needs authenticated, fresh trust: an UNAUTHENTICATED store (the unsafe opt-in) or
               one older than the freshness bound (or of unknown age) turns VALID into NEEDS_CHECK, with
               a :class:`~vaxcred.result.Notice` saying why; an ``iss`` claim that differs from the DSC's
               country is a notice too

Where each group runs (this module orders them and decides the status; the modules import one way,
``steps`` <- ``payload`` <- the step modules <- this one):

- :mod:`~vaxcred.verify.steps`: the step log (``pass`` / ``fail`` / ``skip``, unreached steps skipped);
- :mod:`~vaxcred.verify.envelope`: (0) input to (4) cose;
- :mod:`~vaxcred.verify.signer`: (5) kid, (6) signature, (7) chain;
- :mod:`~vaxcred.verify.validity`: (8) time, (9) key_usage, (10) schema;
- :mod:`~vaxcred.verify.policy`: (11) revocation, (12) rules;
- :mod:`~vaxcred.verify.payload`: tolerant readers of the decoded payload (holder, type, revocation inputs).

Nothing here reads the clock: ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from vaxcred.result import Notice, Status, VerificationResult
from vaxcred.revocation import RevocationList
from vaxcred.rules import RuleSet
from vaxcred.trust import TrustFreshnessPolicy, TrustMode, TrustStore
from vaxcred.verify.envelope import open_envelope, read_text
from vaxcred.verify.payload import holder
from vaxcred.verify.policy import check_revocation, check_rules
from vaxcred.verify.signer import KID_LENGTH, find_signer
from vaxcred.verify.steps import Steps
from vaxcred.verify.validity import check_key_usage, check_schema, check_time

__all__ = ["verify"]

_UNAUTHENTICATED = Notice(
    code="trust.unauthenticated",
    message="the trust list was loaded WITHOUT authentication (unsafe opt-in): a manual check is needed",
)


def verify(
    data: str | bytes,
    trust: TrustStore,
    *,
    now: datetime,
    skew: timedelta = timedelta(0),
    max_trust_age: timedelta | None = None,
    image_decoder: Callable[[bytes], str] | None = None,
    revocation: RevocationList | None = None,
    rules: RuleSet | None = None,
    rules_stale_after: datetime | None = None,
    country: str | None = None,
    region: str | None = None,
) -> VerificationResult:
    """Verify an HC1 string (or the bytes of one, or a PNG/JPEG image of its QR code) against ``trust``.

    ``now`` must be an aware datetime. ``skew`` allows ``iat`` that far in the future (default 0).
    Freshness is always checked (:class:`~vaxcred.trust.TrustFreshnessPolicy`): a trust list older than
    ``max_trust_age`` (else the bound it was loaded with, else 72 hours), or of unknown age, turns a VALID
    outcome into NEEDS_CHECK; so does a store loaded without authentication.  Bare ``--dsc`` stores have
    no age: only an explicit bound (``max_trust_age`` or the loader's) applies to them.
    ``image_decoder`` reads the QR code of a PNG/JPEG input (default: :func:`vaxcred.qr.decode_image`, in
    this process); it must return the text or raise :class:`~vaxcred.errors.ImageError`, as
    ``vaxcred.qr.isolated.IsolatedImageDecoder(...).decode`` does (a child process under a hard deadline).
    ``revocation`` is the list the passport is looked up in (none: the step is skipped,
    ``revocation.not_configured``); a listed passport is INVALID (``revocation.revoked``, naming the hash
    type), a list past its maximum age, or incomplete (``complete`` false), turns VALID into NEEDS_CHECK
    (``revocation.stale``, ``revocation.incomplete``).
    ``rules`` are the business rules to apply for arrival ``country`` (and ``region``): CERTLOGIC.md §7.
    ``rules_stale_after`` is when the rule data (rules and the value sets they use) passes its maximum age
    (:class:`vaxcred.sync.SyncedData` gives it); after it, passing rules give NEEDS_CHECK (``rules.stale``); so do passing (or no selected) rules of
    an incomplete rule set (``rules.complete`` false: ``rules.incomplete``).
    Any input yields a result; only caller mistakes (naive ``now``, wrong types) raise.
    """
    if revocation is not None and not isinstance(revocation, RevocationList):
        raise TypeError("revocation must be a RevocationList or None")
    if rules_stale_after is not None and (
        not isinstance(rules_stale_after, datetime) or rules_stale_after.utcoffset() is None
    ):
        raise ValueError("rules_stale_after must be a timezone-aware datetime")
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(skew, timedelta):
        raise TypeError("skew must be a timedelta")
    if skew < timedelta(0):
        raise ValueError("skew must not be negative")
    try:
        now = now.astimezone(UTC)
    except OverflowError:
        raise ValueError("now lies outside the range of datetime once converted to UTC") from None
    steps = Steps()
    freshness = TrustFreshnessPolicy.for_store(trust, max_trust_age).assess(trust, now)
    notices: list[Notice] = []
    base: dict[str, Any] = {
        "trust_mode": trust.mode.value,
        "environment": trust.environment.value,
        "trust_updated_at": freshness.updated_at,
        "trust_age": freshness.age,
        "trust_max_age": freshness.max_age if freshness.applicable else None,
    }

    # (0) input
    text = read_text(data, steps, image_decoder)
    if text is None:
        return steps.finish(**base)

    # (1) prefix, (2) base45, (3) zlib, (4) cose: only alg and kid are *used* before the signature holds
    envelope = open_envelope(text, steps)
    if envelope is None:
        return steps.finish(**base)
    msg, claims = envelope
    # echoed only when it is no longer than a kid may be: a 60,000-byte "kid" is not echoed back whole
    base["kid"] = msg.kid if msg.kid is not None and len(msg.kid) <= KID_LENGTH else None

    # (5) kid, (6) signature, (7) chain: every candidate DSC tried for both
    dsc = find_signer(msg, trust, now, steps)
    if dsc is None:
        return steps.finish(**base)
    dcc = claims.dcc
    iat, exp = _epoch(claims.iat), _epoch(claims.exp)
    base.update(holder=holder(dcc), certificate=dcc, issuer_country=dsc.country, iat=iat, exp=exp)
    base["iss"] = claims.iss
    dsc_country = dsc.country or dsc.info.country  # not `country`: that is the arrival country (rules)
    if claims.iss is not None and dsc_country and claims.iss != dsc_country:
        notices.append(
            Notice(
                code="iss.mismatch",
                message=f"the passport claims issuer {claims.iss!r}, its DSC belongs to {dsc_country}",
            )
        )

    # (8) time
    check_time(steps, iat, exp, dsc, now, skew)

    # (9) key_usage
    check_key_usage(steps, dsc, dcc)

    # (10) schema
    check_schema(steps, dcc)

    # (11) revocation
    unchecked = check_revocation(steps, revocation, msg, dcc, claims.iss, now)

    # (12) rules
    rules_open, outcomes = check_rules(
        steps,
        rules,
        dcc,
        now=now,
        stale_after=rules_stale_after,
        country=country,
        region=region,
        issuer_country=dsc.country,
        iat=iat,
        exp=exp,
        kid=msg.kid,
    )
    if outcomes is not None:
        base["rules"] = outcomes

    # trust: an unauthenticated or stale list never yields a plain VALID
    status = None
    if trust.mode is TrustMode.UNAUTHENTICATED:
        notices.append(_UNAUTHENTICATED)
    if not freshness.fresh:
        notices.append(Notice(code=freshness.code, message=freshness.message))
    if not steps.failed and (
        unchecked or rules_open or trust.mode is TrustMode.UNAUTHENTICATED or not freshness.fresh
    ):
        status = Status.NEEDS_CHECK
    return steps.finish(status=status, notices=tuple(notices), **base)


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
