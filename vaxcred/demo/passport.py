"""Demo part 1: a key chain, one passport, its QR code, and a border check of the QR image."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from cryptography import x509

from vaxcred import qr
from vaxcred.issue import Issuer, vaccination_dcc
from vaxcred.keys import KeyChainDir, TokenConfig, pin_from_env
from vaxcred.trust import Environment, TrustMode, load_signed_trust_list, sign_trust_list
from vaxcred.verify import verify

#: demo only: real deployments take the passphrase from $VAXCRED_PASSPHRASE or a prompt
_DEMO_PASSPHRASE = b"vaxcred demo passphrase - not for production"

SAMPLE_PERSON = {
    "name": "Nguyễn Thị Thu Hương",
    "dob": "1987-03-21",
    "vaccine": "Comirnaty",
    "dose": 3,
    "doses_total": 3,
    "date": "2022-03-02",
}


def _key_chain(keys_dir: Path, now: datetime, token: TokenConfig | None = None) -> KeyChainDir:
    if (
        token is not None or (keys_dir / "token.json").exists()
    ):  # keys on a PKCS#11 token, PIN from the environment
        if (keys_dir / "csca.pem").exists():
            print(f"1. key chain: reusing {keys_dir} (keys on the PKCS#11 token)")
            return KeyChainDir(folder=keys_dir, pin=pin_from_env())
        assert token is not None
        print(
            f"1. key chain: CSCA, DSC, trust-list key and site CA generated inside token {token.token_label!r}"
        )
        return KeyChainDir.init(keys_dir, b"", now, token=token, pin=pin_from_env())
    passphrase = os.environ.get("VAXCRED_PASSPHRASE", "").encode() or _DEMO_PASSPHRASE
    if (keys_dir / "csca.pem").exists():
        print(f"1. key chain: reusing {keys_dir}")
        return KeyChainDir(folder=keys_dir, passphrase=passphrase)
    print(f"1. key chain: CSCA, DSC, trust-list key and site CA in {keys_dir} (keys: encrypted PKCS#8)")
    return KeyChainDir.init(keys_dir, passphrase, now)


def run(out: Path, now: datetime, chain: KeyChainDir) -> int:
    """Part 1 (see the module docstring); returns 0 when the border check says VALID."""
    from vaxcred.cli.trustlist import chain_store  # the CLI's helper: one way to build the store

    dcc = vaccination_dcc(**SAMPLE_PERSON)  # type: ignore[arg-type]
    signer = chain.load_dsc_signer(now=now)
    passport = Issuer(signer).issue(dcc, now=now)
    (out / "passport.hc1.txt").write_text(passport.hc1 + "\n", encoding="ascii")
    (out / "passport.png").write_bytes(qr.render_png(passport.hc1))
    (out / "passport.svg").write_bytes(qr.render_svg(passport.hc1))
    print(
        f"2. issued {len(passport.hc1)}-char HC1 (kid {passport.kid.hex()}, valid until {passport.exp:%Y-%m-%d})"
    )
    print(f"   QR code: {out / 'passport.png'} and {out / 'passport.svg'} (alphanumeric, ECC Q)")

    store = chain_store(chain, Environment.TST, TrustMode.SIGNED_LIST)
    signed = sign_trust_list(store, signer=chain.load("trustlist").signer(), issued_at=now, sequence=1)
    (out / "trustlist.cbor").write_bytes(signed)
    print(f"3. signed national trust list: {out / 'trustlist.cbor'} ({len(signed)} bytes)")

    anchor: x509.Certificate = chain.load("csca").certificate
    trust = load_signed_trust_list(signed, anchor=anchor, environment=Environment.TST, now=now)
    result = verify((out / "passport.png").read_bytes(), trust, now=now)
    print("4. border check of passport.png:", result.status.value)
    if result.holder:
        h = result.holder
        print(f"   {h.fn} {h.gn} ({h.fnt} / {h.gnt}), born {h.dob}")
    for step in result.steps:
        print(f"   {step.result.value:<4}  {step.name:<10} {step.message}")
    return 0 if result.ok else 1


# --- part 2: the national pipeline ------------------------------------------------------------------------

#: the demo's provinces (Hà Nội, Hồ Chí Minh, Đà Nẵng, Hải Phòng, Cần Thơ), two vaccination sites each
