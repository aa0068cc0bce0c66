"""``vaxcred verify --log-proof``: the passport's inclusion proof in the issuing side's log, checked beside it.

The proof (``vaxcred log prove``'s JSON) must show the very HC1 text verified logged under a tree head signed
by the log signer (``--log-cert``). verify() itself is unchanged: the proof is about the issuer's log, not a
step of the passport's check. A required proof that does not hold makes the result INVALID.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vaxcred import errors
from vaxcred.cli._common import safe
from vaxcred.cli._files import load_certificate_option, read_bounded
from vaxcred.result import Status, VerificationResult
from vaxcred.text import clip

_MAX_PROOF = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LogProofCheck:
    """The outcome of a required inclusion proof: where the passport sits in the log, or why it does not."""

    included: bool
    code: str
    leaf_index: int | None = None
    tree_size: int | None = None
    signed_at: datetime | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.included:
            signed = self.signed_at.isoformat() if self.signed_at else "?"
            return (
                f"log proof: included at index {self.leaf_index} under tree head of size {self.tree_size} "
                f"signed {signed}"
            )
        return f"log proof: NOT VALID — [{self.code}] {safe(clip(self.problem or '', 300))}"

    def to_json(self) -> dict[str, Any]:
        return {
            "included": self.included,
            "code": self.code,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RequiredProof:
    """``--log-proof`` read (its text, checked later) and ``--log-cert`` loaded."""

    text: bytes
    certificate: Any  # cryptography x509.Certificate (imported lazily)


def load_required_proof(proof: Path | None, log_cert: Path | None) -> RequiredProof | None:
    """The two options together, or neither; the certificate must load (a usage error otherwise)."""
    if proof is None and log_cert is None:
        return None
    if proof is None or log_cert is None:
        raise click.UsageError("--log-proof and --log-cert go together")
    certificate = load_certificate_option(log_cert, "--log-cert")
    return RequiredProof(text=read_bounded(proof, _MAX_PROOF, "--log-proof"), certificate=certificate)


def check_proof(hc1: str | None, required: RequiredProof) -> LogProofCheck:
    """Does the proof show ``hc1`` (the exact text verified, trimmed) logged under a head signed by the log
    signer?  Never raises: an unreadable proof is a typed ``log.*`` failure."""
    from vaxcred.pipeline.log import PassportProof, verify_passport_proof, verify_tree_head

    if hc1 is None:
        return LogProofCheck(
            included=False, code="log.no_hc1_text", problem="the passport's HC1 text could not be read"
        )
    try:
        proof = PassportProof.from_json(required.text)
        head = verify_tree_head(proof.tree_head, required.certificate)
    except errors.VaxcredError as e:
        return LogProofCheck(included=False, code=e.code, problem=e.message)
    if not verify_passport_proof(hc1.strip(), proof, required.certificate):
        return LogProofCheck(
            included=False,
            code="log.not_included",
            problem="the proof is not for this passport, or its path does not lead to the signed tree head",
        )
    return LogProofCheck(
        included=True,
        code="log.included",
        leaf_index=proof.leaf_index,
        tree_size=head.tree_size,
        signed_at=head.signed_at,
    )


def apply(result: VerificationResult, check: LogProofCheck) -> VerificationResult:
    """A required proof that does not hold makes the result INVALID (whatever it was)."""
    if check.included or result.status is Status.INVALID:
        return result
    return dataclasses.replace(result, status=Status.INVALID)
