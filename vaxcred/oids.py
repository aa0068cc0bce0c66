"""Object identifiers used by the DCC key chain (hcert spec §5, App. A.4) and vaxcred's own site arc."""

from __future__ import annotations

from cryptography.x509.oid import ObjectIdentifier

__all__ = [
    "DCC_EKU_BY_TYPE",
    "DCC_EKU_OIDS",
    "DOCUMENT_SIGNING_EKU",
    "EKU_RECOVERY",
    "EKU_RECOVERY_LEGACY",
    "EKU_TEST",
    "EKU_TEST_LEGACY",
    "EKU_VACCINATION",
    "EKU_VACCINATION_LEGACY",
    "LOG_SIGNING_EKU",
    "SITE_RECORD_EKU",
    "TRUST_LIST_EKU",
]

# hcert spec family (AE, GE, SG, VA ... and vaxcred's own DSCs)
EKU_TEST = ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.1")
EKU_VACCINATION = ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.2")
EKU_RECOVERY = ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.3")
# older ".0." family, widely deployed
EKU_TEST_LEGACY = ObjectIdentifier("1.3.6.1.4.1.0.1847.2021.1.1")
EKU_VACCINATION_LEGACY = ObjectIdentifier("1.3.6.1.4.1.0.1847.2021.1.2")
EKU_RECOVERY_LEGACY = ObjectIdentifier("1.3.6.1.4.1.0.1847.2021.1.3")

#: payload type ("v", "t", "r") -> the OIDs (either family) that permit it
DCC_EKU_BY_TYPE: dict[str, frozenset[str]] = {
    "t": frozenset({EKU_TEST.dotted_string, EKU_TEST_LEGACY.dotted_string}),
    "v": frozenset({EKU_VACCINATION.dotted_string, EKU_VACCINATION_LEGACY.dotted_string}),
    "r": frozenset({EKU_RECOVERY.dotted_string, EKU_RECOVERY_LEGACY.dotted_string}),
}
DCC_EKU_OIDS: frozenset[str] = frozenset().union(*DCC_EKU_BY_TYPE.values())

# vaxcred's own arc: a UUID-derived OID (ITU-T X.667, "2.25.<uuid>"), which needs no registration and
# cannot collide with the DCC arcs; a ministry may register its own arc and configure it instead.
_VAXCRED_ARC = "2.25.173892029485541361007484781440529278694"
#: a vaccination-site certificate: may sign dose records, never a passport (EKU not a DCC type)
SITE_RECORD_EKU = ObjectIdentifier(_VAXCRED_ARC + ".1")
#: the ministry's trust-list signing key
TRUST_LIST_EKU = ObjectIdentifier(_VAXCRED_ARC + ".2")
#: the issuance log's tree-head signing key (signs signed tree heads, nothing else)
LOG_SIGNING_EKU = ObjectIdentifier(_VAXCRED_ARC + ".3")

#: id-kp-documentSigning (RFC 9336): the ministry's document-signing certificate (signed PDF certificates) carries
#: this EKU only, so it can sign neither a passport (no DCC EKU, and never on a trust list) nor a dose record.
DOCUMENT_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
