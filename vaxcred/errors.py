"""The one exception tree of vaxcred.

Every error raised for *untrusted input* or a *failed check* is a :class:`VaxcredError` with a stable,
dotted ``code`` (``"<step>.<reason>"``) that the CLI (``--json``) and the HTTP service expose unchanged.
Caller mistakes (a naive ``datetime``, a wrong argument type) raise :class:`TypeError` / :class:`ValueError`
instead, as pyca/cryptography does.

::

    VaxcredError                    code
    ├── DecodeError                 malformed bytes/text: the input is not a well-formed HC1
    │   ├── PrefixError             prefix.*
    │   ├── Base45Error             base45.*
    │   ├── ZlibError               zlib.*
    │   ├── CborError               cbor.*
    │   ├── CoseError               cose.*
    │   ├── ClaimsError             cose.* (CWT claims: iat, exp, hcert)
    │   └── ImageError              image.*
    ├── VerificationError           well-formed input that fails a check (a legitimate non-match)
    │   ├── KidError                kid.*
    │   ├── SignatureError          signature.*
    │   ├── ChainError              chain.*
    │   ├── TimeError               time.*
    │   ├── KeyUsageError           key_usage.*
    │   ├── SchemaError             schema.*
    │   ├── RevokedError            revocation.*
    │   └── RulesError              rules.* (business rules: a rule failed, a rule file is invalid)
    │       ├── InvalidExpressionError  rules.invalid_expression (CertLogic, with every problem found)
    │       └── EvaluationError     rules.evaluation (runtime type mismatch), rules.limit (bounds)
    ├── IssuanceError               the issuing side refuses to sign (value sets, policy)
    │   └── ModelError              model.* (invalid names, dates, UVCI)
    ├── KeyStoreError               keys.* (wrong passphrase, unsupported key, bad certificate)
    ├── TrustStoreError             trust.* (malformed or mis-signed trust list, environment mix),
    │                               revocation.malformed (revocation batches)
    ├── SyncError                   sync.* (downloading trust, rules, value sets, revocation: vaxcred.sync)
    └── PipelineError               pipeline.*, sitesign.* (vaxcred.pipeline.errors: the national pipeline)

Codes are part of the public contract: add new ones, never rename.
"""

from __future__ import annotations

__all__ = [
    "Base45Error",
    "CborError",
    "ChainError",
    "ClaimsError",
    "CoseError",
    "DecodeError",
    "EvaluationError",
    "ImageError",
    "InvalidExpressionError",
    "IssuanceError",
    "KeyStoreError",
    "KeyUsageError",
    "KidError",
    "ModelError",
    "PrefixError",
    "RevokedError",
    "RulesError",
    "SchemaError",
    "SignatureError",
    "SyncError",
    "TimeError",
    "TrustStoreError",
    "VaxcredError",
    "VerificationError",
    "ZlibError",
]


class VaxcredError(Exception):
    """Base of every vaxcred error; ``code`` is stable and machine-readable."""

    default_code = "vaxcred.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class DecodeError(VaxcredError):
    """The input is not well-formed (at some layer of the HC1 pipeline)."""

    default_code = "decode.invalid"


class PrefixError(DecodeError):
    default_code = "prefix.missing"


class Base45Error(DecodeError):
    default_code = "base45.invalid"


class ZlibError(DecodeError):
    default_code = "zlib.invalid"


class CborError(DecodeError):
    default_code = "cbor.invalid"


class CoseError(DecodeError):
    default_code = "cose.invalid"


class ClaimsError(DecodeError):
    default_code = "cose.claims_invalid"


class ImageError(DecodeError):
    default_code = "image.invalid"


class VerificationError(VaxcredError):
    """Well-formed input that fails a verification check."""

    default_code = "verify.failed"


class KidError(VerificationError):
    default_code = "kid.unknown"


class SignatureError(VerificationError):
    default_code = "signature.invalid"


class ChainError(VerificationError):
    default_code = "chain.invalid"


class TimeError(VerificationError):
    default_code = "time.invalid"


class KeyUsageError(VerificationError):
    default_code = "key_usage.not_allowed"


class SchemaError(VerificationError):
    default_code = "schema.invalid"


class RevokedError(VerificationError):
    default_code = "revocation.revoked"


class RulesError(VerificationError):
    default_code = "rules.failed"


class InvalidExpressionError(RulesError):
    """A CertLogic expression that breaks the specification's static rules; ``problems`` lists every one
    as ``(JSON pointer, message)``."""

    default_code = "rules.invalid_expression"

    def __init__(
        self, message: str, *, code: str | None = None, problems: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message, code=code)
        self.problems = problems


class EvaluationError(RulesError):
    """A valid CertLogic expression that cannot be evaluated over its data (a runtime type mismatch, or a
    bound of vaxcred's bounded evaluation: ``rules.limit``)."""

    default_code = "rules.evaluation"


class IssuanceError(VaxcredError):
    """The issuing side refuses to sign (value set, encoding table, validity policy)."""

    default_code = "issue.refused"


class ModelError(IssuanceError):
    default_code = "model.invalid"


class KeyStoreError(VaxcredError):
    default_code = "keys.invalid"


class TrustStoreError(VaxcredError):
    default_code = "trust.invalid"


class SyncError(VaxcredError):
    """Synchronising verifier data failed (HTTP, size, deadline, hash, signature, freshness, rollback);
    the last good copy is kept."""

    default_code = "sync.failed"
