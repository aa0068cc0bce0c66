"""vaxcred: issue and verify EU-DCC compatible vaccine passports (HC1).

The public surface (the names below, plus the documented subpackages ``vaxcred.codec``, ``vaxcred.keys``,
``vaxcred.trust``, ``vaxcred.model``, ``vaxcred.qr``, ``vaxcred.errors``)::

    from vaxcred import verify, Issuer, TrustStore, Environment
    result = verify(hc1_text_or_image_bytes, trust, now=now)   # never raises on bad input
    result.status, result.steps, result.holder                 # VALID / INVALID / NEEDS_CHECK

``pip install vaxcred`` (cryptography + cbor2) is enough for all of the above with HC1 text; the QR, CLI,
pipeline, PDF, server and HSM features are extras, and importing one without its extra raises
:class:`MissingExtraError` naming it (README "Install").
"""

from __future__ import annotations

from vaxcred._extras import MissingExtraError
from vaxcred.crypto import Algorithm, LocalSigner, Signer
from vaxcred.errors import (
    DecodeError,
    IssuanceError,
    KeyStoreError,
    TrustStoreError,
    VaxcredError,
    VerificationError,
)
from vaxcred.issue import IssuancePolicy, IssuedPassport, Issuer, issue, vaccination_dcc
from vaxcred.model import DCC, DateOfBirth, Name, Recovery, Test, Vaccination
from vaxcred.result import STEP_NAMES, Holder, Status, Step, StepResult, VerificationResult
from vaxcred.trust import Environment, TrustStore
from vaxcred.verify import verify

__version__ = "0.1.0"

__all__ = [
    "DCC",
    "STEP_NAMES",
    "Algorithm",
    "DateOfBirth",
    "DecodeError",
    "Environment",
    "Holder",
    "IssuanceError",
    "IssuancePolicy",
    "IssuedPassport",
    "Issuer",
    "KeyStoreError",
    "LocalSigner",
    "MissingExtraError",
    "Name",
    "Recovery",
    "Signer",
    "Status",
    "Step",
    "StepResult",
    "Test",
    "TrustStore",
    "TrustStoreError",
    "Vaccination",
    "VaxcredError",
    "VerificationError",
    "VerificationResult",
    "__version__",
    "issue",
    "vaccination_dcc",
    "verify",
]
