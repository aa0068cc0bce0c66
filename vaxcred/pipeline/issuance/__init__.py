"""Central issuance: selection of eligible persons, the claim queue, workers, and the stage that runs them.

Public names of the modules below; import private helpers from their module.
"""

from __future__ import annotations

from vaxcred.pipeline.issuance.claims import (
    Job,
    active_passport,
    claim,
    release,
    take_claims,
    utc,
)
from vaxcred.pipeline.issuance.rows import (
    Candidate,
    DoseRow,
    SignatureRow,
    SiteCertificate,
    SiteCertificates,
    load_candidates,
)
from vaxcred.pipeline.issuance.select import (
    COUNTRY,
    DEFAULT_PRIMARY_SERIES,
    PRIMARY_SERIES,
    Eligible,
    Reason,
    build_dcc,
    evaluate,
    latest_dose,
    primary_series,
    registry_reason,
)
from vaxcred.pipeline.issuance.service import (
    MAX_BACKOFF,
    ServiceConfig,
    WorkerState,
    WorkerStatus,
    serve_issuance,
)
from vaxcred.pipeline.issuance.stage import (
    BATCH_SIZE,
    DEFAULT_LEASE,
    KeyChainIssuerFactory,
    pending_count,
    run_issuance,
)
from vaxcred.pipeline.issuance.store import Signed, commit
from vaxcred.pipeline.issuance.workers import (
    WORKER_FAILED,
    IssuanceReport,
    run_processes,
    work,
    worker_id,
)

__all__ = [
    "BATCH_SIZE",
    "COUNTRY",
    "DEFAULT_LEASE",
    "DEFAULT_PRIMARY_SERIES",
    "MAX_BACKOFF",
    "PRIMARY_SERIES",
    "WORKER_FAILED",
    "Candidate",
    "DoseRow",
    "Eligible",
    "IssuanceReport",
    "Job",
    "KeyChainIssuerFactory",
    "Reason",
    "ServiceConfig",
    "SignatureRow",
    "Signed",
    "SiteCertificate",
    "SiteCertificates",
    "WorkerState",
    "WorkerStatus",
    "active_passport",
    "build_dcc",
    "claim",
    "commit",
    "evaluate",
    "latest_dose",
    "load_candidates",
    "pending_count",
    "primary_series",
    "registry_reason",
    "release",
    "run_issuance",
    "run_processes",
    "serve_issuance",
    "take_claims",
    "utc",
    "work",
    "worker_id",
]
