"""The public surface is deliberate: `vaxcred.__all__` is pinned (httpx test_exported_members style)."""

from __future__ import annotations

import vaxcred

EXPECTED = {
    "DCC",
    "STEP_NAMES",
    "Algorithm",
    "DateOfBirth",
    "DecodeError",
    "Environment",
    "Holder",
    "IssuancePolicy",
    "IssuanceError",
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
}


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a conscious change to this list."""
    assert set(vaxcred.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    """Each name in __all__ resolves on the package."""
    for name in vaxcred.__all__:
        assert hasattr(vaxcred, name), name


def test_verify_is_the_function() -> None:
    """`vaxcred.verify` is the verify API (callable), as documented."""
    assert callable(vaxcred.verify)
    assert vaxcred.verify.__module__ == "vaxcred.verify"
