"""A ministry key-chain folder: CSCA, DSCs (rotation), trust-list signer, site CA and site certificates."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vaxcred.crypto import LocalSigner
from vaxcred.errors import KeyStoreError
from vaxcred.keys.builders import (
    DSC_KEY_USAGE_MONTHS,
    DSC_VALIDITY,
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
    _check_passphrase,
    load_certificate,
    load_private_key,
    save_certificate,
    save_private_key,
)
from vaxcred.x509util import parse_dsc


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChainDir:
    """A ministry key-chain folder; every ``.key`` is encrypted PKCS#8 (mode 0600) under one passphrase.

    Layout: ``csca.pem/.key``, ``dsc-<kid hex>.pem/.key`` (rotation adds files, never removes),
    ``trustlist.pem/.key``, ``site-ca.pem/.key``, ``sites/<site id>.pem/.key``.
    """

    folder: Path
    passphrase: bytes = field(repr=False)

    @classmethod
    def init(
        cls,
        folder: str | os.PathLike[str],
        passphrase: bytes,
        now: datetime,
        *,
        country: str = "VN",
        key: KeyType = "ec",
    ) -> KeyChainDir:
        """Create a new chain in ``folder``: CSCA, a first DSC, trust-list signer and site CA."""
        _check_passphrase(passphrase)
        chain = cls(folder=Path(folder), passphrase=passphrase)
        if (chain.folder / "csca.pem").exists():
            raise KeyStoreError(f"a key chain already exists in {chain.folder}", code="keys.exists")
        (chain.folder / "sites").mkdir(mode=0o700, parents=True, exist_ok=True)
        csca = make_csca(now=now, country=country, key=key)
        chain._store("csca", csca)
        chain._store("trustlist", make_trust_list_signer(csca, now=now, key=key))
        chain._store("site-ca", make_site_ca(now=now, country=country, key=key))
        chain.new_dsc(now=now, key=key)
        return chain

    def load(self, stem: str) -> KeyPair:
        """The pair stored as ``<stem>.pem`` / ``<stem>.key`` (e.g. ``"csca"``, ``"trustlist"``)."""
        certificate = load_certificate(self.folder / f"{stem}.pem")
        private_key = load_private_key(self.folder / f"{stem}.key", self.passphrase)
        return KeyPair(private_key=private_key, certificate=certificate)

    def new_dsc(
        self,
        *,
        now: datetime,
        types: Sequence[str] = ("v",),
        key: KeyType = "ec",
        validity: timedelta = DSC_VALIDITY,
        private_key_usage_months: int = DSC_KEY_USAGE_MONTHS,
    ) -> KeyPair:
        """Rotate: issue and store a new DSC under the CSCA; older DSCs stay (their passports verify)."""
        dsc = make_dsc(
            self.load("csca"),
            now=now,
            types=types,
            key=key,
            validity=validity,
            private_key_usage_months=private_key_usage_months,
        )
        self._store(f"dsc-{dsc.kid.hex()}", dsc)
        return dsc

    def dsc_certificates(self) -> tuple[x509.Certificate, ...]:
        """Every DSC in the folder, oldest first."""
        certs = [load_certificate(p) for p in self.folder.glob("dsc-*.pem")]
        return tuple(sorted(certs, key=lambda c: (c.not_valid_before_utc, c.not_valid_after_utc)))

    def load_dsc_signer(self, *, now: datetime, kid: bytes | None = None) -> LocalSigner:
        """A signer for the newest DSC whose key may sign at ``now`` (validity and key-usage period)."""
        at = _utc_seconds(now)
        for cert in reversed(self.dsc_certificates()):
            info = parse_dsc(cert.public_bytes(serialization.Encoding.DER))
            if kid is not None and info.kid != kid:
                continue
            start, end = info.signing_window
            if start <= at <= end:
                return self.load(f"dsc-{info.kid.hex()}").signer()
        wanted = f"DSC {kid.hex()}" if kid is not None else "DSC"
        raise KeyStoreError(f"no {wanted} may sign at {at.isoformat()}", code="keys.no_usable_dsc")

    def new_site(self, *, site_id: str, site_name: str, now: datetime) -> KeyPair:
        """Issue and store a site certificate under the site CA (``sites/<site_id>``)."""
        _check_site_id(site_id)
        site = make_site_certificate(self.load("site-ca"), site_id=site_id, site_name=site_name, now=now)
        self._store(f"sites/{site_id}", site)
        return site

    def _store(self, stem: str, pair: KeyPair) -> None:
        save_private_key(self.folder / f"{stem}.key", pair.private_key, self.passphrase)
        save_certificate(self.folder / f"{stem}.pem", pair.certificate)
