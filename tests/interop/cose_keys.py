"""Key conversion from pyca/cryptography objects to pycose and python-cwt keys (the oracles' own types)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cwt import COSEKey
from cwt.cose_key_interface import COSEKeyInterface
from pycose.keys import EC2Key, RSAKey
from pycose.keys.curves import P256

from vaxcred.crypto import SigningKey


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def pycose_public_key(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> EC2Key | RSAKey:
    """The pycose verification key for a DSC public key, built from its numbers."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        n = public_key.public_numbers()
        return EC2Key(crv=P256, x=n.x.to_bytes(32, "big"), y=n.y.to_bytes(32, "big"))
    rn = public_key.public_numbers()
    return RSAKey(n=_int_bytes(rn.n), e=_int_bytes(rn.e))


def pycose_private_key(private_key: SigningKey) -> EC2Key | RSAKey:
    """The pycose signing key for a DSC private key, built from its numbers."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        n = private_key.private_numbers()
        return EC2Key(
            crv=P256,
            d=n.private_value.to_bytes(32, "big"),
            x=n.public_numbers.x.to_bytes(32, "big"),
            y=n.public_numbers.y.to_bytes(32, "big"),
        )
    rn = private_key.private_numbers()
    return RSAKey(
        n=_int_bytes(rn.public_numbers.n),
        e=_int_bytes(rn.public_numbers.e),
        d=_int_bytes(rn.d),
        p=_int_bytes(rn.p),
        q=_int_bytes(rn.q),
        dp=_int_bytes(rn.dmp1),
        dq=_int_bytes(rn.dmq1),
        qinv=_int_bytes(rn.iqmp),
    )


def cwt_private_key(private_key: SigningKey, kid: bytes) -> COSEKeyInterface:
    """The python-cwt signing key (ES256 or PS256 by key type) for a DSC private key."""
    alg = "ES256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "PS256"
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return COSEKey.from_pem(pem, alg=alg, kid=kid)
