"""Keys on a PKCS#11 token (an HSM; SoftHSM2 in tests), through python-pkcs11 (``pip install vaxcred[hsm]``).

Every private key is generated **inside** the token, ``token=True``, ``SENSITIVE``, not ``EXTRACTABLE`` (so
``LOCAL``, ``ALWAYS_SENSITIVE`` and ``NEVER_EXTRACTABLE`` hold), with a label and a random 16-byte ``CKA_ID``
shared by its public half; only the public key, CSRs and signatures leave (SECURITY.md §5 "Ceremony").
A key is found again by its public key (the certificate is the source of truth), never by a label alone.

Mechanisms are always named (python-pkcs11 defaults to ECDSA_SHA512 and RSA_SHA512_PKCS — SECURITY.md §2
"Library traps"):

- ``ECDSA_SHA256``: ``CKM_ECDSA`` over a SHA-256 digest computed here (SoftHSM2 and many HSMs lack
  ``CKM_ECDSA_SHA256``); the token returns raw ``r‖s``, COSE's form;
- ``RSA_PSS_SHA256``: ``CKM_SHA256_RSA_PKCS_PSS`` with ``CKM_SHA256``, ``CKG_MGF1_SHA256``, salt 32 (PS256);
- ``RSA_PKCS1V15_SHA256``: ``CKM_SHA256_RSA_PKCS`` (certificates and CRLs of an RSA CA).

PKCS#11 keeps the login per application and token, so a process holds one login per token, shared by every
:class:`Pkcs11Token` handle and counted (the last :meth:`Pkcs11Token.close` logs out); one session, used by one
operation at a time (a lock). Batch workers are spawned processes, each with its own login and session (the
issuer factory runs in the worker); never fork with an open session (a forked child must C_Initialize again).
The PIN is passed in; :func:`pin_from_env` reads ``VAXCRED_PKCS11_PIN`` for the CLI and the worker processes.
"""

from __future__ import annotations

__all__ = ["PIN_ENV", "Pkcs11Token", "TokenConfig", "TokenKey", "pin_from_env"]

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vaxcred.crypto import SignatureScheme
from vaxcred.errors import KeyStoreError

PIN_ENV = "VAXCRED_PKCS11_PIN"
#: DER of the named curve P-256 (prime256v1, 1.2.840.10045.3.1.7): CKA_EC_PARAMS
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")
_CONFIG_FILE = "token.json"
_MAX_CONFIG_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenConfig:
    """Where a chain's keys live: the PKCS#11 module (a shared library path) and the token label."""

    module: str
    token_label: str

    def __post_init__(self) -> None:
        if not self.module or not self.token_label:
            raise ValueError("module and token_label must not be empty")

    def save(self, folder: Path) -> None:
        """Write ``token.json`` into a key-chain folder (no PIN, no key material)."""
        data = {"module": self.module, "token_label": self.token_label}
        try:
            (folder / _CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise KeyStoreError(f"cannot write {_CONFIG_FILE}: {e.strerror}", code="keys.io") from e

    @classmethod
    def load(cls, folder: Path) -> TokenConfig | None:
        """The folder's ``token.json``, or ``None`` for a chain of key files."""
        path = folder / _CONFIG_FILE
        try:
            with path.open("rb") as f:
                raw = f.read(_MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise KeyStoreError(f"cannot read {_CONFIG_FILE}: {e.strerror}", code="keys.io") from e
        try:
            if len(raw) > _MAX_CONFIG_BYTES:
                raise ValueError("too large")
            data = json.loads(raw)
            return cls(module=str(data["module"]), token_label=str(data["token_label"]))
        except (ValueError, KeyError, TypeError) as e:
            raise KeyStoreError(f"{path} is not a valid token configuration", code="keys.bad_config") from e


def pin_from_env(var: str = PIN_ENV, environ: Mapping[str, str] | None = None) -> bytes:
    """The token PIN from an environment variable; KeyStoreError ``keys.no_pin`` when unset or empty."""
    value = (os.environ if environ is None else environ).get(var, "")
    if not value:
        raise KeyStoreError(f"environment variable {var} is not set or empty", code="keys.no_pin")
    return value.encode("utf-8")


class TokenKey:
    """A private key on the token (an :class:`~vaxcred.crypto.ExternalKey`): signs, never exports."""

    __slots__ = ("_handle", "_lock", "_public_key", "label")

    def __init__(
        self,
        handle: Any,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        label: str,
        lock: threading.Lock,
    ) -> None:
        self._handle = handle
        self._public_key = public_key
        self._lock = lock
        self.label = label

    def public_key(self) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The public half, read from the token when the key was found or made."""
        return self._public_key

    def sign_with(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign on the token with an explicitly named mechanism (module docstring)."""
        from pkcs11 import MGF, Mechanism, PKCS11Error

        is_ec = isinstance(self._public_key, ec.EllipticCurvePublicKey)
        if is_ec != (scheme is SignatureScheme.ECDSA_SHA256):
            raise KeyStoreError(f"{scheme.value} does not fit this key's type", code="keys.unsupported_key")
        try:
            with self._lock:
                if scheme is SignatureScheme.ECDSA_SHA256:
                    digest = hashlib.sha256(data).digest()
                    return bytes(self._handle.sign(digest, mechanism=Mechanism.ECDSA))
                if scheme is SignatureScheme.RSA_PSS_SHA256:
                    return bytes(
                        self._handle.sign(
                            data,
                            mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                            mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32),
                        )
                    )
                return bytes(self._handle.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
        except PKCS11Error as e:
            raise KeyStoreError(f"the token refused to sign: {type(e).__name__}", code="keys.device") from e

    def __repr__(self) -> str:
        return f"TokenKey(label={self.label!r})"


@dataclass(slots=True, eq=False)
class _Login:
    """The one logged-in session of this process on one token (PKCS#11 logins are per application)."""

    session: Any
    pin_digest: bytes
    lock: threading.Lock = field(default_factory=threading.Lock)
    found: dict[bytes, TokenKey] = field(default_factory=dict)
    users: int = 0


#: (module, token label) -> the process's login. PKCS#11 keeps the login state per application and token
#: (v2.40 §5.6: a second C_Login fails with USER_ALREADY_LOGGED_IN, one C_Logout ends every session's
#: login), so the process holds one login per token, shared by every Pkcs11Token and counted.
_LOGINS: dict[tuple[str, str], _Login] = {}
_LOGINS_LOCK = threading.Lock()


class Pkcs11Token:
    """A handle on this process's logged-in session on the token ``config.token_label``; close it when done.

    Handles on one token share one session and one login ("one token login per worker", SECURITY.md §5);
    the last :meth:`close` logs out. A second :meth:`open` must present the same PIN.
    """

    __slots__ = ("_closed", "_login", "config")

    def __init__(self, config: TokenConfig, login: _Login) -> None:
        self.config = config
        self._login = login
        self._closed = False

    @property
    def _session(self) -> Any:
        if self._closed:
            raise KeyStoreError("the token session is closed", code="keys.device")
        return self._login.session

    @property
    def _lock(self) -> threading.Lock:
        return self._login.lock

    @property
    def _found(self) -> dict[bytes, TokenKey]:
        return self._login.found

    @classmethod
    def open(cls, config: TokenConfig, pin: bytes) -> Pkcs11Token:
        """Load the module, find the token by label, open a R/W session and log in with ``pin`` (once per process).

        KeyStoreError codes: ``keys.no_pkcs11`` (python-pkcs11 missing), ``keys.device`` (module unloadable),
        ``keys.no_token``, ``keys.bad_pin``.
        """
        if not isinstance(pin, bytes) or not pin:
            raise ValueError("pin must be non-empty bytes")
        digest = hashlib.sha256(pin).digest()
        key = (config.module, config.token_label)
        with _LOGINS_LOCK:
            login = _LOGINS.get(key)
            if login is None:
                login = _Login(session=_login(config, pin), pin_digest=digest)
                _LOGINS[key] = login
            elif not hmac.compare_digest(login.pin_digest, digest):
                raise KeyStoreError("the token refused the PIN", code="keys.bad_pin")
            login.users += 1
        return cls(config, login)

    def close(self) -> None:
        """Release this handle; the last one logs out and closes the session."""
        if self._closed:
            return
        self._closed = True
        with _LOGINS_LOCK:
            login = self._login
            login.users -= 1
            if login.users == 0:
                _LOGINS.pop((self.config.module, self.config.token_label), None)
                with login.lock:
                    login.session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Token(config={self.config!r})"

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate(self, key_type: str, *, label: str, rsa_bits: int = 2048) -> TokenKey:
        """A new key pair made inside the token: ``"ec"`` (P-256) or ``"rsa"`` (``rsa_bits``), non-exportable."""
        from pkcs11 import Attribute, KeyType, PKCS11Error

        key_id = secrets.token_bytes(16)
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False}
        common: dict[str, Any] = {
            "id": key_id,
            "label": label,
            "store": True,
            "private_template": private_template,
            "public_template": public_template,
        }
        try:
            with self._lock:
                if key_type == "ec":
                    params = self._session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True
                    )
                    public, private = params.generate_keypair(**common)
                elif key_type == "rsa":
                    public, private = self._session.generate_keypair(KeyType.RSA, rsa_bits, **common)
                else:
                    raise ValueError(f"key must be 'ec' or 'rsa', not {key_type!r}")
                public_key = _public_key(public)
        except PKCS11Error as e:
            raise KeyStoreError(
                f"the token cannot make the key: {type(e).__name__}", code="keys.device"
            ) from e
        key = TokenKey(private, public_key, label, self._lock)
        self._found[_spki(public_key)] = key
        return key

    def find(self, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> TokenKey:
        """The token's private key whose public half is ``public_key``; KeyStoreError ``keys.not_on_token``."""
        wanted = _spki(public_key)
        if wanted in self._found:
            return self._found[wanted]
        from pkcs11 import Attribute, ObjectClass, PKCS11Error

        try:
            with self._lock:
                # finish the search before the next one: a session runs one find operation at a time
                publics = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
                for public in publics:
                    try:
                        candidate = _public_key(public)
                    except KeyStoreError:
                        continue
                    if _spki(candidate) != wanted:
                        continue
                    private = self._session.get_key(
                        object_class=ObjectClass.PRIVATE_KEY, id=public[Attribute.ID]
                    )
                    key = TokenKey(private, candidate, str(private.label), self._lock)
                    self._found[wanted] = key
                    return key
        except PKCS11Error as e:
            raise KeyStoreError(f"cannot search the token: {type(e).__name__}", code="keys.device") from e
        raise KeyStoreError("the key is not on the token", code="keys.not_on_token")


def _login(config: TokenConfig, pin: bytes) -> Any:
    try:
        import pkcs11
        from pkcs11 import exceptions as pkcs11_errors
    except ImportError as e:  # pragma: no cover - the hsm extra is installed in tests
        raise KeyStoreError(
            "PKCS#11 needs python-pkcs11: pip install 'vaxcred[hsm]'", code="keys.no_pkcs11"
        ) from e
    try:
        lib = pkcs11.lib(config.module)
    except Exception as e:
        raise KeyStoreError(f"cannot load the PKCS#11 module {config.module}", code="keys.device") from e
    try:
        token = lib.get_token(token_label=config.token_label)
    except (pkcs11_errors.NoSuchToken, pkcs11_errors.MultipleTokensReturned) as e:
        raise KeyStoreError(f"no single token labelled {config.token_label!r}", code="keys.no_token") from e
    try:
        return token.open(rw=True, user_pin=pin.decode("utf-8"))
    except (pkcs11_errors.PinIncorrect, pkcs11_errors.PinInvalid, pkcs11_errors.PinLenRange) as e:
        raise KeyStoreError("the token refused the PIN", code="keys.bad_pin") from e
    except (pkcs11_errors.PKCS11Error, UnicodeDecodeError) as e:
        raise KeyStoreError(f"cannot log in to the token: {type(e).__name__}", code="keys.device") from e


def _public_key(public: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    from pkcs11 import Attribute, KeyType

    key_type = public[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        if bytes(public[Attribute.EC_PARAMS]) != _P256_PARAMS:
            raise KeyStoreError("token EC key is not on P-256", code="keys.unsupported_key")
        point = bytes(public[Attribute.EC_POINT])
        # CKA_EC_POINT is the DER OCTET STRING around the uncompressed point (PKCS#11 v2.40 §2.3.3)
        if len(point) == 67 and point[:2] == b"\x04\x41":
            point = point[2:]
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    if key_type == KeyType.RSA:
        n = int.from_bytes(bytes(public[Attribute.MODULUS]), "big")
        e = int.from_bytes(bytes(public[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise KeyStoreError(f"unsupported token key type {key_type!r}", code="keys.unsupported_key")


def _spki(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
