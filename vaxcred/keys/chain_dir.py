"""A ministry key-chain folder: CSCA, DSCs (rotation, retirement, withdrawal), trust-list signer, site CA, site
certificates (revocation, CRL), and the key-operations log — with the private keys in encrypted files or on a
PKCS#11 token.

Layout::

    csca.pem  trustlist.pem  site-ca.pem  dsc-<kid hex>.pem  sites/<site id>.pem     certificates
    *.key (encrypted PKCS#8, mode 0600)      file chains only: a token chain has no key file at all
    token.json                               token chains: the PKCS#11 module and token label (no PIN)
    site-ca.crl                              the site CA's CRL (PEM), rewritten on every site revocation
    sites/revoked/<site id>-<serial>.pem     a revoked site certificate (and key), moved aside
    key-operations.jsonl                     the hash-chained key-operations log (:mod:`vaxcred.keys.audit`)

Key states live in the log, never in a side file: a DSC is *active* until ``retire`` (it no longer signs, but
stays in trust lists: its passports keep verifying) or ``withdraw`` (it leaves the next trust list; the gateway
export marks it withdrawn); a site certificate is revoked at a time, published in the site CA's CRL, and the
pipeline refuses dose records it signed from then on.

One purpose per key: every certificate gets a new key (made in memory or on the token), never a key of
another certificate, and a DSC signs exactly one payload type here (its EKU).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from vaxcred.crypto import Signer
from vaxcred.errors import KeyStoreError
from vaxcred.keys.audit import KEY_OPERATIONS_LOG, KeyOperation, KeyOperationsLog
from vaxcred.keys.builders import (
    CA_RSA_BITS,
    DSC_KEY_USAGE_MONTHS,
    DSC_VALIDITY,
    LEAF_RSA_BITS,
    KeyPair,
    KeyType,
    _check_site_id,
    _utc_seconds,
    make_csca,
    make_dsc,
    make_site_ca,
    make_site_certificate,
    make_trust_list_signer,
)
from vaxcred.keys.files import (
    check_passphrase_strength,
    load_certificate,
    load_private_key,
    normalize_passphrase,
    passphrase_from_env,
    save_certificate,
    save_private_key,
)
from vaxcred.keys.lifecycle import (
    REVOCATION_REASONS,
    build_site_crl,
    dsc_states,
    kid_of,
    operation_on,
    site_revocations,
    unlogged,
)
from vaxcred.keys.purpose_signers import make_document_signer, make_log_signer
from vaxcred.keys.token import PIN_ENV, Pkcs11Token, TokenConfig, pin_from_env
from vaxcred.keys.x509sign import AnyKey, public_key_of, sign_csr
from vaxcred.x509util import parse_dsc

#: how long a site CRL stays current (its nextUpdate)
CRL_VALIDITY = timedelta(days=7)
#: ``vaxcred keys rotate``: make a new DSC when the usable one stops signing within this margin
ROTATION_MARGIN = timedelta(days=30)
_SITE_CRL = "site-ca.crl"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChainDir:
    """A ministry key-chain folder (module docstring); its private keys in files under ``passphrase`` or on a
    PKCS#11 token (``token.json``) opened with ``pin`` (default :func:`~vaxcred.keys.token.pin_from_env`).

    One token session per ``KeyChainDir`` object, opened when a key is first needed; a worker process builds
    its own object, hence its own session. ``operator`` is written into every key-operations log line.
    """

    folder: Path
    passphrase: bytes = field(default=b"", repr=False)
    pin: bytes | None = field(default=None, repr=False)
    operator: str | None = None
    _sessions: list[Pkcs11Token] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def init(
        cls,
        folder: str | os.PathLike[str],
        passphrase: bytes,
        now: datetime,
        *,
        country: str = "VN",
        key: KeyType = "ec",
        token: TokenConfig | None = None,
        pin: bytes | None = None,
        operator: str | None = None,
    ) -> KeyChainDir:
        """Create a new chain in ``folder``: CSCA, a first DSC (vaccination), trust-list signer and site CA.

        With ``token``, every key is generated inside that PKCS#11 token and no key file is written
        (``passphrase`` is then unused and may be empty); otherwise ``passphrase`` must pass
        :func:`~vaxcred.keys.files.check_passphrase_strength` (it protects the CSCA key).
        """
        if token is None:
            check_passphrase_strength(passphrase)
            passphrase = normalize_passphrase(passphrase)
        chain = cls(folder=Path(folder), passphrase=passphrase, pin=pin, operator=operator)
        if (chain.folder / "csca.pem").exists():
            raise KeyStoreError(f"a key chain already exists in {chain.folder}", code="keys.exists")
        (chain.folder / "sites").mkdir(mode=0o700, parents=True, exist_ok=True)
        if token is not None:
            token.save(chain.folder)
        csca = make_csca(
            now=now, country=country, key=key, private_key=chain._new_key(key, "csca", CA_RSA_BITS)
        )
        chain._store("csca", csca, now, purpose="csca")
        trust_list_key = chain._new_key(key, "trustlist", LEAF_RSA_BITS)
        trust_list = make_trust_list_signer(csca, now=now, key=key, private_key=trust_list_key)
        chain._store("trustlist", trust_list, now, purpose="trust_list")
        site_ca = make_site_ca(
            now=now, country=country, key=key, private_key=chain._new_key(key, "site-ca", CA_RSA_BITS)
        )
        chain._store("site-ca", site_ca, now, purpose="site_ca")
        chain.new_dsc(now=now, key=key)
        return chain

    @classmethod
    def from_env(
        cls,
        folder: str | os.PathLike[str],
        *,
        passphrase_env: str = "VAXCRED_PASSPHRASE",  # noqa: S107 - a variable's name, not a secret
        pin_env: str = PIN_ENV,
    ) -> KeyChainDir:
        """The chain in ``folder`` opened with its secret from the environment: the token PIN (``pin_env``) for a
        token chain, else the key passphrase (``passphrase_env``). For worker processes, which cannot prompt."""
        path = Path(folder)
        if TokenConfig.load(path) is not None:
            return cls(folder=path, pin=pin_from_env(pin_env))
        return cls(folder=path, passphrase=passphrase_from_env(passphrase_env))

    # --- keys: files or token ----------------------------------------------------------------------------

    @property
    def token(self) -> TokenConfig | None:
        """The chain's token, or ``None`` when its keys are encrypted files."""
        return TokenConfig.load(self.folder)

    def close(self) -> None:
        """Close the token session, if one was opened."""
        while self._sessions:
            self._sessions.pop().close()

    def __enter__(self) -> KeyChainDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> Pkcs11Token:
        if not self._sessions:
            config = self.token
            if config is None:  # pragma: no cover - callers check first
                raise KeyStoreError("this key chain keeps its keys in files", code="keys.no_token")
            self._sessions.append(Pkcs11Token.open(config, self.pin or pin_from_env()))
        return self._sessions[0]

    def _new_key(self, key: KeyType, label: str, rsa_bits: int) -> AnyKey | None:
        """A key made inside the token (proved by a CSR it signs), or ``None``: the builder makes one in memory."""
        if self.token is None:
            return None
        token_key = self._session().generate(key, label=f"vaxcred {label}", rsa_bits=rsa_bits)
        request = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vaxcred {label}")])
        )
        csr = sign_csr(request, token_key)  # only a CSR leaves the token (SECURITY.md §5 "Ceremony")
        if _spki(csr.public_key()) != _spki(public_key_of(token_key)):  # pragma: no cover - defensive
            raise KeyStoreError("the token's CSR names another key", code="keys.device")
        return token_key

    def load(self, stem: str) -> KeyPair:
        """The pair stored as ``<stem>.pem`` (+ ``<stem>.key`` or the token key), e.g. ``"csca"``."""
        certificate = load_certificate(self.folder / f"{stem}.pem")
        private_key: AnyKey
        if self.token is not None:
            public_key = certificate.public_key()
            if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                raise KeyStoreError("certificate key is not EC or RSA", code="keys.unsupported_key")
            private_key = self._session().find(public_key)
        else:
            private_key = load_private_key(self.folder / f"{stem}.key", self.passphrase)
        return KeyPair(private_key=private_key, certificate=certificate)

    def _store(self, stem: str, pair: KeyPair, now: datetime, *, purpose: str) -> None:
        if self.token is not None:
            if not pair.on_token:
                raise KeyStoreError("a token chain never stores a key file", code="keys.unencrypted")
        else:
            if pair.on_token:  # pragma: no cover - _new_key gives none for file chains
                raise KeyStoreError("a file chain cannot hold a token key", code="keys.no_token")
            save_private_key(self.folder / f"{stem}.key", pair.private_key, self.passphrase)  # type: ignore[arg-type]
        save_certificate(self.folder / f"{stem}.pem", pair.certificate)
        self._log("generate", purpose, pair.certificate, now)

    # --- single-purpose signers under the CSCA ------------------------------------------------------------

    def new_log_signer(self, *, now: datetime, stem: str = "log-signer") -> KeyPair:
        """Issue and store the issuance log's tree-head signer (EKU ``LOG_SIGNING_EKU`` only) as ``<stem>``."""
        return self._new_purpose_signer(make_log_signer, "log", stem, now)

    def new_document_signer(self, *, now: datetime, stem: str = "document-signer") -> KeyPair:
        """Issue and store the PDF document signer (EKU ``id-kp-documentSigning`` only) as ``<stem>``."""
        return self._new_purpose_signer(make_document_signer, "document", stem, now)

    def _new_purpose_signer(
        self, make: Callable[..., KeyPair], purpose: str, stem: str, now: datetime
    ) -> KeyPair:
        if (self.folder / f"{stem}.pem").exists():
            raise KeyStoreError(f"{stem} already exists in {self.folder}", code="keys.exists")
        pair = make(self.load("csca"), now=now, private_key=self._new_key("ec", purpose, LEAF_RSA_BITS))
        self._store(stem, pair, now, purpose=purpose)
        return pair

    # --- DSCs: rotate, retire, withdraw --------------------------------------------------------------------

    def new_dsc(
        self,
        *,
        now: datetime,
        types: Sequence[str] = ("v",),
        key: KeyType = "ec",
        validity: timedelta = DSC_VALIDITY,
        private_key_usage_months: int = DSC_KEY_USAGE_MONTHS,
    ) -> KeyPair:
        """Rotate: issue and store a new DSC under the CSCA; older DSCs stay (their passports verify).

        One payload type per DSC (``types`` has exactly one member): one purpose per key.
        """
        if isinstance(types, str) or len(types) != 1:
            raise ValueError('a key chain DSC signs exactly one payload type, e.g. types=("v",)')
        dsc = make_dsc(
            self.load("csca"),
            now=now,
            types=types,
            key=key,
            validity=validity,
            private_key_usage_months=private_key_usage_months,
            private_key=self._new_key(key, f"dsc-{types[0]}", LEAF_RSA_BITS),
        )
        self._store(f"dsc-{dsc.kid.hex()}", dsc, now, purpose=f"dsc-{types[0]}")
        return dsc

    def rotate(
        self, *, now: datetime, margin: timedelta = ROTATION_MARGIN, key: KeyType = "ec"
    ) -> KeyPair | None:
        """A new vaccination DSC when no DSC may still sign at ``now + margin``; ``None`` when one can."""
        try:
            self._usable_dsc(now + margin)
        except KeyStoreError:
            return self.new_dsc(now=now, key=key)
        return None

    def dsc_certificates(self) -> tuple[x509.Certificate, ...]:
        """Every DSC in the folder (active, retired and withdrawn), oldest first."""
        certs = [load_certificate(p) for p in self.folder.glob("dsc-*.pem")]
        return tuple(sorted(certs, key=lambda c: (c.not_valid_before_utc, c.not_valid_after_utc)))

    def dsc_states(self) -> dict[str, str]:
        """kid hex → ``"active"``, ``"retired"`` or ``"withdrawn"``, from the key-operations log."""
        return dsc_states(self.dsc_certificates(), self.operations())

    def unlogged_certificates(self) -> tuple[str, ...]:
        """Certificate files of the folder (relative paths) whose generation the key-operations log does not
        record: the log was cut, emptied or replaced, and a withdrawal it held may be lost with it."""
        files = sorted(
            p
            for pattern in ("*.pem", "sites/*.pem", "sites/revoked/*.pem")
            for p in self.folder.glob(pattern)
        )
        return tuple(
            unlogged({str(p.relative_to(self.folder)): load_certificate(p) for p in files}, self.operations())
        )

    def published_dsc_certificates(self) -> tuple[x509.Certificate, ...]:
        """The DSCs a trust list carries: active and retired ones (their passports still verify). Refused
        (``keys.audit_broken``) when a DSC's generation is not in the log: its withdrawal may have been cut too."""
        missing = [name for name in self.unlogged_certificates() if name.startswith("dsc-")]
        if missing:
            raise KeyStoreError(
                f"the key-operations log does not record {', '.join(missing)}: it was cut or replaced, and a "
                "withdrawal may be lost with it (restore it; `vaxcred keys audit`)",
                code="keys.audit_broken",
            )
        states = self.dsc_states()
        return tuple(c for c in self.dsc_certificates() if states[kid_of(c).hex()] != "withdrawn")

    def withdrawn_dsc_certificates(self) -> tuple[x509.Certificate, ...]:
        """The withdrawn DSCs: they leave trust lists; the gateway export marks them ``rawData: null``."""
        states = self.dsc_states()
        return tuple(c for c in self.dsc_certificates() if states[kid_of(c).hex()] == "withdrawn")

    def retire_dsc(self, kid: bytes, *, now: datetime, reason: str | None = None) -> None:
        """Stop signing with a DSC; it stays published until its passports expire."""
        self._log("retire", "dsc", self._dsc(kid), now, reason=reason)

    def withdraw_dsc(self, kid: bytes, *, now: datetime, reason: str | None = None) -> None:
        """Withdraw a DSC (compromise drill): it no longer signs and leaves the next trust list."""
        self._log("withdraw", "dsc", self._dsc(kid), now, reason=reason)

    def load_dsc_signer(self, *, now: datetime, kid: bytes | None = None) -> Signer:
        """A signer for the newest active DSC whose key may sign at ``now`` (validity and key-usage period)."""
        return self.load(f"dsc-{self._usable_dsc(now, kid).hex()}").signer()

    def _usable_dsc(self, now: datetime, kid: bytes | None = None) -> bytes:
        at = _utc_seconds(now)
        states = self.dsc_states()
        for cert in reversed(self.dsc_certificates()):
            info = parse_dsc(cert.public_bytes(serialization.Encoding.DER))
            if (kid is not None and info.kid != kid) or states[info.kid.hex()] != "active":
                continue
            start, end = info.signing_window
            if start <= at <= end:
                return info.kid
        wanted = f"DSC {kid.hex()}" if kid is not None else "DSC"
        raise KeyStoreError(f"no active {wanted} may sign at {at.isoformat()}", code="keys.no_usable_dsc")

    def _dsc(self, kid: bytes) -> x509.Certificate:
        for cert in self.dsc_certificates():
            if kid_of(cert) == kid:
                return cert
        raise KeyStoreError(f"no DSC with kid {kid.hex()} in this chain", code="keys.unknown_key")

    # --- sites: issue, revoke, CRL ------------------------------------------------------------------------

    def new_site(self, *, site_id: str, site_name: str, now: datetime) -> KeyPair:
        """Issue and store a site certificate under the site CA (``sites/<site_id>``)."""
        _check_site_id(site_id)
        if (self.folder / "sites" / f"{site_id}.pem").exists():
            raise KeyStoreError(f"site {site_id} already has a certificate", code="keys.exists")
        site_ca = self.load("site-ca")
        key = self._new_key("ec", f"site {site_id}", LEAF_RSA_BITS)
        site = make_site_certificate(site_ca, site_id=site_id, site_name=site_name, now=now, private_key=key)
        self._store(f"sites/{site_id}", site, now, purpose="site")
        return site

    def store_site(self, site_id: str, pair: KeyPair, *, now: datetime) -> None:
        """Store a site certificate made by the caller with :func:`make_site_certificate` (``sites register``
        makes many at once) and log its generation, as :meth:`new_site` does."""
        _check_site_id(site_id)
        if (self.folder / "sites" / f"{site_id}.pem").exists():
            raise KeyStoreError(f"site {site_id} already has a certificate", code="keys.exists")
        self._store(f"sites/{site_id}", pair, now, purpose="site")

    def revoke_site(
        self, site_id: str, *, now: datetime, reason: str = "key_compromise"
    ) -> x509.CertificateRevocationList:
        """Revoke the site's certificate at ``now``, move it to ``sites/revoked/`` and publish a new CRL.

        Dose records that certificate signed at or after ``now`` are refused at issuance. ``reason`` is an
        RFC 5280 reason name (``key_compromise``, ``affiliation_changed``, ``superseded``, ``cessation_of_operation``…).
        """
        _check_site_id(site_id)
        if reason not in REVOCATION_REASONS:
            raise ValueError(f"reason must be one of {sorted(REVOCATION_REASONS)}, not {reason!r}")
        stem = self.folder / "sites" / site_id
        cert = load_certificate(stem.with_suffix(".pem"))
        self._log("revoke", "site", cert, now, reason=reason)
        revoked = self.folder / "sites" / "revoked"
        revoked.mkdir(mode=0o700, exist_ok=True)
        target = revoked / f"{site_id}-{cert.serial_number:x}"
        for suffix in (".pem", ".key"):
            if stem.with_suffix(suffix).exists():
                os.replace(stem.with_suffix(suffix), target.with_suffix(suffix))
        return self.publish_site_crl(now=now)

    def site_revocations(self) -> dict[int, tuple[datetime, str]]:
        """Revoked site-certificate serial → (revocation time, reason), from the key-operations log."""
        return site_revocations(self.operations())

    def publish_site_crl(
        self, *, now: datetime, validity: timedelta = CRL_VALIDITY
    ) -> x509.CertificateRevocationList:
        """Sign (with the site CA, on the token if it is there) and write ``site-ca.crl`` listing every revocation."""
        site_ca = self.load("site-ca")
        operations = self.operations()
        crl = build_site_crl(
            site_ca,
            site_revocations(operations),
            now=_utc_seconds(now),
            number=len(operations) + 1,  # the log only grows: CRL numbers increase
            validity=validity,
        )
        try:
            (self.folder / _SITE_CRL).write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        except OSError as e:
            raise KeyStoreError(f"cannot write the CRL: {e.strerror}", code="keys.io") from e
        self._log("crl", "site_ca", site_ca.certificate, now)
        return crl

    def site_crl(self) -> x509.CertificateRevocationList | None:
        """The published site CRL (``site-ca.crl``), or ``None`` when no site was ever revoked."""
        try:
            data = (self.folder / _SITE_CRL).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return x509.load_pem_x509_crl(data)
        except ValueError as e:
            raise KeyStoreError("site-ca.crl is not a PEM CRL", code="keys.bad_certificate") from e

    # --- the key-operations log -----------------------------------------------------------------------------

    @property
    def log(self) -> KeyOperationsLog:
        """The chain's key-operations log (``key-operations.jsonl``)."""
        return KeyOperationsLog(self.folder / KEY_OPERATIONS_LOG)

    def operations(self) -> tuple[KeyOperation, ...]:
        """Every logged key operation, the hash chain checked (KeyStoreError ``keys.audit_broken``)."""
        return self.log.read()

    def _log(
        self,
        operation: str,
        purpose: str,
        cert: x509.Certificate,
        now: datetime,
        *,
        reason: str | None = None,
    ) -> None:
        op = operation_on(
            cert,
            operation=operation,
            purpose=purpose,
            at=_utc_seconds(now),
            operator=self.operator,
            reason=reason,
        )
        self.log.append(op)


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
