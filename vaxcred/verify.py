"""Verify an HC1 passport the way a border app does.

The steps, in one place (each code block below is tagged with its number and name, which are also the
names in :class:`~vaxcred.result.VerificationResult`):

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

Nothing here reads the clock: ``now`` is a parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vaxcred import crypto, errors, schema
from vaxcred._extras import MissingExtraError
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.codec.image import is_image
from vaxcred.result import STEP_NAMES, Holder, Notice, Status, Step, StepResult, VerificationResult
from vaxcred.revocation import RevocationList
from vaxcred.rules import RuleSet, judge
from vaxcred.trust import TrustedDsc, TrustFreshnessPolicy, TrustMode, TrustStore, check_chain
from vaxcred.x509util import eku_allows

__all__ = ["verify"]

_PASS = StepResult.PASS
_FAIL = StepResult.FAIL
_SKIP = StepResult.SKIP
_MAX_INPUT_BYTES = 10 * 1024 * 1024
_KID_LENGTH = 8


_ORDER = {name: i for i, name in enumerate(STEP_NAMES)}
#: ``pass`` steps are immutable values: the common ones are built once and shared between results
_NOT_REACHED = {
    name: Step(
        name=name, result=_SKIP, code="skipped.earlier_failure", message="not checked: an earlier step failed"
    )
    for name in STEP_NAMES
}
_ALG_NAMES = {int(alg): alg.name for alg in crypto.Algorithm}
_OK_PREFIX = Step(name="prefix", result=_PASS, code="prefix.ok", message="HC1: context identifier")
_OK_BASE45 = Step(name="base45", result=_PASS, code="base45.ok", message="valid Base45")
_OK_ZLIB = Step(name="zlib", result=_PASS, code="zlib.ok", message="zlib stream inflated")
_OK_COSE = Step(name="cose", result=_PASS, code="cose.ok", message="COSE_Sign1 with CWT claims")
_OK_TIME = Step(name="time", result=_PASS, code="time.ok", message="within iat/exp and the DSC's validity")
_UNAUTHENTICATED = Notice(
    code="trust.unauthenticated",
    message="the trust list was loaded WITHOUT authentication (unsafe opt-in): a manual check is needed",
)
_CHAIN_NOT_CHECKED = Step(
    name="chain",
    result=_SKIP,
    code="chain.not_checked",
    message="bare DSC supplied without its CSCA: chain not checked",
)


@functools.lru_cache(maxsize=256)
def _ok_step(name: str, message: str) -> Step:
    """``pass`` steps are immutable values, and their messages are few (no per-passport data): build each once
    (a frozen dataclass costs ~1 µs to construct, several per verify)."""
    return Step(name=name, result=_PASS, code=f"{name}.ok", message=message)


class _Steps:
    """Collects step outcomes in order; steps never reached are reported as ``skip``."""

    __slots__ = ("failed", "items")

    def __init__(self) -> None:
        self.items: list[Step] = []
        self.failed = False

    def ok(self, name: str, message: str) -> None:
        self.items.append(_ok_step(name, message))

    def fail(self, name: str, code: str, message: str) -> None:
        self.failed = True
        self.items.append(Step(name=name, result=_FAIL, code=code, message=message))

    def skip(self, name: str, code: str, message: str) -> None:
        self.items.append(Step(name=name, result=_SKIP, code=code, message=message))

    def error(self, name: str, exc: errors.VaxcredError) -> None:
        self.fail(name, exc.code, exc.message)

    def finish(self, **fields: Any) -> VerificationResult:
        items = self.items
        if len(items) < len(STEP_NAMES):
            done = {s.name for s in items}
            items.extend(_NOT_REACHED[name] for name in STEP_NAMES if name not in done)
        names = [s.name for s in items]
        if names == _STEP_LIST:  # the usual case: appended in pipeline order
            steps = tuple(items)
        else:
            steps = tuple(sorted(items, key=lambda s: _ORDER.get(s.name, len(_ORDER))))
        status = fields.pop("status", None) or (Status.INVALID if self.failed else Status.VALID)
        return VerificationResult(status=status, steps=steps, **fields)


_STEP_LIST = list(STEP_NAMES)


def _as_text(
    data: str | bytes, steps: _Steps, image_decoder: Callable[[bytes], str] | None = None
) -> str | None:
    """(0) input: images are read for their QR code (by ``image_decoder``, default
    :func:`vaxcred.qr.decode_image`); other bytes must be ASCII text."""
    if isinstance(data, str):
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"verify() takes str or bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > _MAX_INPUT_BYTES:
        steps.fail("prefix", "prefix.too_long", "input larger than 10 MiB")
        return None
    if is_image(raw):
        if image_decoder is None:
            try:  # local import: image support pulls in Pillow and zxing-cpp (extra ``qr``)
                from vaxcred import qr
            except MissingExtraError as e:
                steps.fail("prefix", "image.extra_missing", f"cannot read a QR image here: {e}")
                return None
            image_decoder = qr.decode_image
        try:
            text: object = image_decoder(raw)
        except errors.ImageError as e:
            steps.fail("prefix", e.code, f"no readable QR code: {e.message}")
            return None
        if not isinstance(text, str):
            raise TypeError(f"image_decoder returned {type(text).__name__}, not str")
        return text
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        steps.fail("prefix", "prefix.not_text", "input is neither an image nor ASCII text")
        return None


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _check_time(
    iat: datetime, exp: datetime, dsc: TrustedDsc, now: datetime, skew: timedelta
) -> tuple[str, str] | None:
    """(8) the shell model: DSC.notBefore <= iat <= now (+skew) <= exp <= DSC.notAfter."""
    info = dsc.info
    if exp < now:
        return "time.expired", f"expired at {exp.isoformat()}"
    if iat - now > skew:  # not `iat > now + skew`: that sum overflows near datetime.max
        return "time.not_yet_valid", f"issued in the future ({iat.isoformat()})"
    if iat < info.not_before:
        return "time.iat_before_dsc", "issued before its signing certificate became valid"
    if exp > info.not_after:
        return "time.exp_after_dsc", "valid beyond its signing certificate's notAfter"
    # DSC validity at `now` follows: notBefore <= iat <= now and now <= exp <= notAfter.
    if info.pkup is not None:
        start, end = info.pkup
        if (start is not None and iat < start) or (end is not None and iat > end):
            return "time.outside_key_usage_period", "issued outside the DSC's private key usage period"
    if iat > exp:
        return "time.iat_after_exp", "issued after it expires"
    return None


def _payload_type(dcc: Mapping[str, Any]) -> str | None:
    present = [k for k in ("v", "t", "r") if k in dcc]
    if len(present) != 1:
        return None
    # the entry count is the schema's business (1.3.0 allows one entry, earlier versions several)
    entries = dcc[present[0]]
    if not isinstance(entries, list) or not entries:
        return None
    return present[0]


def _holder(dcc: Mapping[str, Any]) -> Holder | None:
    nam = dcc.get("nam")
    dob = dcc.get("dob", "")
    if not isinstance(nam, Mapping):
        return None

    get = nam.get
    fn, gn, fnt, gnt = get("fn"), get("gn"), get("fnt"), get("gnt")
    return Holder(
        fn=fn if isinstance(fn, str) else None,
        gn=gn if isinstance(gn, str) else None,
        fnt=fnt if isinstance(fnt, str) else None,
        gnt=gnt if isinstance(gnt, str) else None,
        dob=dob if isinstance(dob, str) else "",
    )


def _revocation_inputs(dcc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The ``ci`` and ``co`` of the certificate entry (``None`` where the payload lacks them)."""
    for kind in ("v", "t", "r"):
        entries = dcc.get(kind)
        if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
            ci, co = entries[0].get("ci"), entries[0].get("co")
            return (ci if isinstance(ci, str) and ci else None), (co if isinstance(co, str) else None)
    return None, None


def _check_revocation(
    revocation: RevocationList | None,
    msg: cose.Sign1Message,
    dcc: Mapping[str, Any],
    iss: str | None,
    now: datetime,
) -> tuple[StepResult, str, str]:
    """(11) revocation: the step's result, code and message."""
    if revocation is None:
        return _SKIP, "revocation.not_configured", "no revocation list given: not checked"
    uvci, country = _revocation_inputs(dcc)
    assert msg.alg is not None  # the signature step held
    try:
        listed = revocation.check(
            kid=msg.kid, uvci=uvci, country=country, signature=msg.signature, alg=msg.alg, iss=iss
        )
    except (ValueError, TypeError):  # unreachable once the signature held; fail closed all the same
        return _SKIP, "revocation.not_checked", "the passport's revocation hashes cannot be computed"
    if listed is not None:
        return _FAIL, "revocation.revoked", f"revoked: listed by its {listed.value} hash"
    if not revocation.complete:
        return (
            _SKIP,
            "revocation.incomplete",
            "part of the revocation data could not be loaded: not listed in the rest",
        )
    if not revocation.is_fresh(now):
        since = revocation.stale_after.isoformat() if revocation.stale_after else "?"
        return (
            _SKIP,
            "revocation.stale",
            f"revocation data past its maximum age since {since}: not listed there",
        )
    return _PASS, "revocation.ok", "not on the revocation list"


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
    steps = _Steps()
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
    text = _as_text(data, steps, image_decoder)
    if text is None:
        return steps.finish(**base)

    # (1) prefix
    try:
        b45 = prefix.strip_prefix(text)
    except errors.PrefixError as e:
        steps.error("prefix", e)
        return steps.finish(**base)
    steps.items.append(_OK_PREFIX)

    # (2) base45
    try:
        compressed = base45.b45decode(b45)
    except errors.Base45Error as e:
        steps.error("base45", e)
        return steps.finish(**base)
    steps.items.append(_OK_BASE45)

    # (3) zlib
    try:
        cose_bytes = compress.decompress(compressed)
    except errors.ZlibError as e:
        steps.error("zlib", e)
        return steps.finish(**base)
    steps.items.append(_OK_ZLIB)

    # (4) cose: envelope and CWT claims; only alg and kid are *used* before the signature holds
    try:
        msg = cose.decode_sign1(cose_bytes)
        claims = cwt.decode_claims(msg.payload)
    except errors.DecodeError as e:
        steps.error("cose", e)
        return steps.finish(**base)
    if msg.alg is None:
        steps.fail("cose", "cose.no_alg", "no algorithm in either header")
        return steps.finish(**base)
    steps.items.append(_OK_COSE)
    # echoed only when it is no longer than a kid may be: a 60,000-byte "kid" is not echoed back whole
    base["kid"] = msg.kid if msg.kid is not None and len(msg.kid) <= _KID_LENGTH else None

    # (5) kid: selects candidates only
    if msg.kid_malformed:
        steps.fail("kid", "kid.malformed", "the kid header is not a byte string")
        return steps.finish(**base)
    if msg.kid is None:
        steps.fail("kid", "kid.missing", "no kid in either header")
        return steps.finish(**base)
    if len(msg.kid) != _KID_LENGTH:
        steps.fail("kid", "kid.bad_length", f"kid must be {_KID_LENGTH} bytes, got {len(msg.kid)}")
        return steps.finish(**base)
    candidates = trust.candidates(msg.kid)
    if not candidates:
        steps.fail("kid", "kid.unknown", f"no trusted DSC with kid {msg.kid.hex()}")
        return steps.finish(**base)
    steps.ok("kid", f"{len(candidates)} candidate DSC(s) for the kid")

    # (6) signature + (7) chain: every candidate is tried until one passes both (a DSC whose signature
    # verifies but whose chain fails does not end the search: another DSC sharing the kid may pass)
    to_be_signed = cose.sig_structure(msg)
    dsc: TrustedDsc | None = None
    last: errors.SignatureError | None = None
    chain_failure: tuple[TrustedDsc, errors.ChainError] | None = None
    for candidate in candidates:
        try:
            crypto.verify_signature(candidate.info.public_key, msg.alg, to_be_signed, msg.signature)
        except errors.SignatureError as e:
            if last is None or last.code == "signature.alg_mismatch":
                last = e
            continue
        if trust.chain_required:
            try:
                check_chain(candidate, trust, now)
            except errors.ChainError as e:
                chain_failure = chain_failure or (candidate, e)
                continue
        dsc = candidate
        break
    if dsc is None and chain_failure is None:
        assert last is not None
        steps.error("signature", last)
        return steps.finish(**base)
    steps.ok("signature", f"signature verified ({_ALG_NAMES[msg.alg]})")
    if dsc is None:
        assert chain_failure is not None
        dsc, chain_error = chain_failure
    else:
        chain_error = None
    dcc = claims.dcc
    iat, exp = _epoch(claims.iat), _epoch(claims.exp)
    base.update(holder=_holder(dcc), certificate=dcc, issuer_country=dsc.country, iat=iat, exp=exp)
    base["iss"] = claims.iss
    dsc_country = dsc.country or dsc.info.country  # not `country`: that is the arrival country (rules)
    if claims.iss is not None and dsc_country and claims.iss != dsc_country:
        notices.append(
            Notice(
                code="iss.mismatch",
                message=f"the passport claims issuer {claims.iss!r}, its DSC belongs to {dsc_country}",
            )
        )

    # (7) chain (decided with the signature above)
    if not trust.chain_required:
        steps.items.append(_CHAIN_NOT_CHECKED)
    elif chain_error is not None:
        steps.error("chain", chain_error)
    else:
        steps.ok("chain", f"DSC chains to the {dsc.country} CSCA")

    # (8) time
    problem = _check_time(iat, exp, dsc, now, skew)
    if problem:
        steps.fail("time", *problem)
    else:
        steps.items.append(_OK_TIME)

    # (9) key_usage
    payload_type = _payload_type(dcc)
    if payload_type is None:
        steps.fail(
            "key_usage", "key_usage.not_one_type", "the payload must hold exactly one of v, t, r (non-empty)"
        )
    elif not eku_allows(dsc.info, payload_type):
        steps.fail("key_usage", "key_usage.not_allowed", f"the DSC may not sign type {payload_type!r}")
    else:
        steps.ok("key_usage", f"DSC allowed to sign type {payload_type!r}")

    # (10) schema
    try:
        schema.validate_dcc(dcc)
    except errors.SchemaError as e:
        steps.error("schema", e)
    else:
        steps.ok("schema", f"valid against DCC schema {dcc.get('ver')}")

    # (11) revocation
    outcome, code, message = _check_revocation(revocation, msg, dcc, claims.iss, now)
    if outcome is _PASS:
        steps.ok("revocation", message)
    elif outcome is _FAIL:
        steps.fail("revocation", code, message)
    else:
        steps.skip("revocation", code, message)
    unchecked = code in ("revocation.stale", "revocation.incomplete", "revocation.not_checked")

    # (12) rules: a rule that cannot be run fails the step but only asks for a check (NEEDS_CHECK)
    rules_open = False
    if rules is None:
        steps.skip("rules", "rules.not_configured", "no business rules given")
    else:
        verdict = judge(
            rules,
            dcc,
            at=now,
            country=country,
            region=region,
            issuer_country=dsc.country,
            iat=iat,
            exp=exp,
            kid=msg.kid,
        )
        base["rules"] = verdict.outcomes
        if verdict.result in ("pass", "skip") and not rules.complete:
            # rule or value-set files left out (vaxcred.sync.load_folder): a rule missing here might have failed
            rules_open = True
            steps.skip(
                "rules", "rules.incomplete", "part of the rule data could not be loaded: a check is needed"
            )
        elif verdict.result == "pass" and rules_stale_after is not None and now > rules_stale_after:
            # rules and value sets past their maximum age (vaxcred.sync.DataFreshnessPolicy): a pass asks for a check
            rules_open = True
            stale = f"the rules passed, but the rule data is past its maximum age since {rules_stale_after.isoformat()}"
            steps.skip("rules", "rules.stale", stale)
        elif verdict.result == "pass":
            steps.ok("rules", verdict.message)
        elif verdict.result == "skip":
            steps.skip("rules", verdict.code, verdict.message)
        elif verdict.needs_check:
            rules_open = True
            steps.items.append(Step(name="rules", result=_FAIL, code=verdict.code, message=verdict.message))
        else:
            steps.fail("rules", verdict.code, verdict.message)

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
