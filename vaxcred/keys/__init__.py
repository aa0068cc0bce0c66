"""The ministry key chain: key generation, certificates, encrypted key files (SECURITY.md §5, DCC.md §5).

::

    CSCA (self-signed, CA pathlen 0, 4 y)          site CA (separate root, never published, 4 y)
    ├── DSC (2 y, key use 6 months, EKU per type)   └── site certificate (1 y, EKU SITE_RECORD_EKU only)
    └── trust-list signer (2 y, EKU TRUST_LIST_EKU only)

A DSC without DCC EKU is valid for every payload type (hcert App. A.4), so every certificate vaxcred
makes carries an EKU, and site certificates live under their own root: were they under the published
CSCA, a chain-only verifier could accept a passport signed by a vaccination site.

Private keys on disk are always encrypted PKCS#8 (``BEGIN ENCRYPTED PRIVATE KEY``), created with mode
0600; there is no code path that writes or reads an unencrypted key (SECURITY.md pitfall 21). They are
written by :func:`vaxcred.pkcs8.encrypt_pkcs8` (PBES2, PBKDF2-HMAC-SHA256 with 600,000 iterations,
AES-256-CBC) and read back by OpenSSL through cryptography.
Key generation, the certificate builders and the file helpers take explicit times and paths; nothing
here reads the clock.

Keys may instead live on a PKCS#11 token (:mod:`~vaxcred.keys.token`, ``pip install vaxcred[hsm]``): generated
inside it, non-exportable, certificates and CRLs signed there too (:mod:`~vaxcred.keys.x509sign`); such a chain
writes no key file at all. Every key operation is appended to a hash-chained log (:mod:`~vaxcred.keys.audit`).

Modules: key generation and the certificate builders — :mod:`~vaxcred.keys.builders`; encrypted key files
and certificate files — :mod:`~vaxcred.keys.files`; the key-chain folder, its lifecycle (rotate, retire,
withdraw, revoke, CRL) — :mod:`~vaxcred.keys.chain_dir`; token keys — :mod:`~vaxcred.keys.token`; X.509
signing by any key — :mod:`~vaxcred.keys.x509sign`; the key-operations log — :mod:`~vaxcred.keys.audit`; key
states replayed from it and the site CRL — :mod:`~vaxcred.keys.lifecycle`; single-purpose signers (document,
log) — :mod:`~vaxcred.keys.purpose_signers`.
"""

from __future__ import annotations

__all__ = [
    "CSCA_VALIDITY",
    "DSC_VALIDITY",
    "PIN_ENV",
    "SITE_CA_VALIDITY",
    "SITE_VALIDITY",
    "TRUST_LIST_VALIDITY",
    "KeyChainDir",
    "KeyOperation",
    "KeyOperationsLog",
    "KeyPair",
    "KeyType",
    "Pkcs11Token",
    "Purpose",
    "TokenConfig",
    "TokenKey",
    "check_passphrase_strength",
    "load_certificate",
    "load_private_key",
    "make_csca",
    "make_dsc",
    "make_site_ca",
    "make_site_certificate",
    "make_trust_list_signer",
    "normalize_passphrase",
    "passphrase_from_env",
    "pin_from_env",
    "save_certificate",
    "save_private_key",
]

# The ``X as X`` imports are not in __all__ but stay importable from vaxcred.keys as before the split;
# encrypt_pkcs8 and save_private_key are looked up here by files.py / chain_dir.py, so patching
# vaxcred.keys.encrypt_pkcs8 or vaxcred.keys.save_private_key still takes effect.
from vaxcred.keys.audit import KeyOperation, KeyOperationsLog
from vaxcred.keys.builders import CA_RSA_BITS as CA_RSA_BITS
from vaxcred.keys.builders import (
    CSCA_VALIDITY,
    DSC_VALIDITY,
    SITE_CA_VALIDITY,
    SITE_VALIDITY,
    TRUST_LIST_VALIDITY,
    KeyPair,
    KeyType,
    Purpose,
    make_csca,
    make_dsc,
    make_site_ca,
    make_site_certificate,
    make_trust_list_signer,
)
from vaxcred.keys.builders import DEFAULT_ORGANIZATION as DEFAULT_ORGANIZATION
from vaxcred.keys.builders import DSC_KEY_USAGE_MONTHS as DSC_KEY_USAGE_MONTHS
from vaxcred.keys.builders import LEAF_RSA_BITS as LEAF_RSA_BITS
from vaxcred.keys.chain_dir import KeyChainDir
from vaxcred.keys.files import (
    check_passphrase_strength,
    load_certificate,
    load_private_key,
    normalize_passphrase,
    passphrase_from_env,
    save_certificate,
    save_private_key,
)
from vaxcred.keys.token import PIN_ENV, Pkcs11Token, TokenConfig, TokenKey, pin_from_env
from vaxcred.pkcs8 import DEFAULT_ITERATIONS as DEFAULT_ITERATIONS
from vaxcred.pkcs8 import encrypt_pkcs8 as encrypt_pkcs8
