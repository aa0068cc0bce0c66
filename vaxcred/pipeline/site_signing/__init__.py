"""Site signing: the site-signed dose record (format, certificates) and the stage that signs and audits them.

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
from vaxcred.pipeline.site_signing.certs import (
    is_site_certificate,
    site_id_of,
)
from vaxcred.pipeline.site_signing.codec import (
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
)
from vaxcred.pipeline.site_signing.stage import (
    BATCH_SIZE,
    SigningReport,
    run_site_signing,
    supersede_signature,
    unsigned_count,
)

__all__ = [
    "BATCH_SIZE",
    "CITIZEN_HASH_LENGTH",
    "CONTENT_TYPE",
    "NO_CERTIFICATE",
    "RECORD_MISMATCH",
    "RECORD_VERSION",
    "SALT_LENGTH",
    "DoseClaims",
    "SignatureCheck",
    "SignedDose",
    "SigningReport",
    "check_stored_signatures",
    "citizen_hash",
    "is_site_certificate",
    "run_site_signing",
    "sign_dose",
    "site_id_of",
    "supersede_signature",
    "unsigned_count",
    "verify_dose",
    "verify_stored_signatures",
]
