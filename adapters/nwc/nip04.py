"""NIP-04 encryption: AES-256-CBC keyed by the x coordinate of secp256k1 ECDH."""

from __future__ import annotations

import base64
import binascii
import os

from coincurve import PublicKey
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class Nip04Error(ValueError):
    """The content is not a NIP-04 payload or does not decrypt with this key pair."""


def shared_secret(secret: bytes, pubkey_xonly: bytes) -> bytes:
    """The x coordinate of ECDH(secret, 02‖pubkey) — unhashed, as NIP-04 specifies."""
    point = PublicKey(b"\x02" + pubkey_xonly).multiply(secret)
    return point.format(compressed=True)[1:]


def encrypt(secret: bytes, pubkey_xonly: bytes, text: str, iv: bytes | None = None) -> str:
    """`base64(ciphertext)?iv=base64(iv)`; a random IV unless one is given (tests)."""
    iv = os.urandom(16) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    plain = padder.update(text.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(shared_secret(secret, pubkey_xonly)), modes.CBC(iv)).encryptor()
    cipher = enc.update(plain) + enc.finalize()
    return base64.b64encode(cipher).decode() + "?iv=" + base64.b64encode(iv).decode()


def decrypt(secret: bytes, pubkey_xonly: bytes, content: str) -> str:
    """The plaintext of a NIP-04 `content`; Nip04Error if malformed or the key is wrong."""
    body, sep, iv_b64 = content.partition("?iv=")
    try:
        if not sep:
            raise ValueError("missing ?iv=")
        cipher = base64.b64decode(body, validate=True)
        iv = base64.b64decode(iv_b64, validate=True)
        dec = Cipher(algorithms.AES(shared_secret(secret, pubkey_xonly)), modes.CBC(iv)).decryptor()
        padded = dec.update(cipher) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Nip04Error("cannot decrypt NIP-04 content") from exc
