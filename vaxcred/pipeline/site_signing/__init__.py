"""Site signing: the site-signed dose record (v1: one signature per record; batch: one signature over the Merkle
root of a batch, each record keeping its audit path), certificates, and the stage that signs and audits them.

Public names of the modules below; import private helpers from their module.
"""

from __future__ import annotations

from vaxcred.pipeline.site_signing.audit import (
    NO_CERTIFICATE,
    RECORD_MISMATCH,
    SignatureCheck,
    check_stored_signatures,
    verify_stored_signatures,
)
from vaxcred.pipeline.site_signing.batch import (
    HEAD_CACHE_SIZE,
    BatchMember,
    SignedBatch,
    batch_member_is,
    sign_batch,
    verify_batch_member,
    verify_batch_record,
)
from vaxcred.pipeline.site_signing.batch_codec import (
    BATCH_CONTENT_TYPE,
    MAX_BATCH_MEMBERS,
    encode_batch_record,
)
from vaxcred.pipeline.site_signing.certs import (
    is_site_certificate,
    site_id_of,
)
from vaxcred.pipeline.site_signing.claims import (
    BATCH_VERSION,
    CITIZEN_HASH_LENGTH,
    CONTENT_TYPE,
    RECORD_VERSION,
    SALT_LENGTH,
    DoseClaims,
    citizen_hash,
)
from vaxcred.pipeline.site_signing.record import (
    SignedDose,
    sign_dose,
    verify_dose,
    verify_stored_dose,
)
from vaxcred.pipeline.site_signing.stage import (
    BATCH_SIZE,
    PER_SIGNATURE,
    SigningReport,
    lock_out_signing,
    run_site_signing,
    supersede_signature,
    unsigned_count,
)

__all__ = [
    "BATCH_CONTENT_TYPE",
    "BATCH_SIZE",
    "BATCH_VERSION",
    "CITIZEN_HASH_LENGTH",
    "CONTENT_TYPE",
    "HEAD_CACHE_SIZE",
    "MAX_BATCH_MEMBERS",
    "NO_CERTIFICATE",
    "PER_SIGNATURE",
    "RECORD_MISMATCH",
    "RECORD_VERSION",
    "SALT_LENGTH",
    "BatchMember",
    "DoseClaims",
    "SignatureCheck",
    "SignedBatch",
    "SignedDose",
    "SigningReport",
    "batch_member_is",
    "check_stored_signatures",
    "citizen_hash",
    "encode_batch_record",
    "is_site_certificate",
    "lock_out_signing",
    "run_site_signing",
    "sign_batch",
    "sign_dose",
    "site_id_of",
    "supersede_signature",
    "unsigned_count",
    "verify_batch_member",
    "verify_batch_record",
    "verify_dose",
    "verify_stored_dose",
    "verify_stored_signatures",
]
