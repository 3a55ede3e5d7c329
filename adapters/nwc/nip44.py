"""NIP-44 v2 encryption: secp256k1 ECDH, HKDF-SHA256, padding, ChaCha20, HMAC-SHA256, base64."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from coincurve import PublicKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

VERSION = 2
_SALT = b"nip44-v2"
_MIN_PLAIN, _MAX_PLAIN = 1, 65535


class Nip44Error(ValueError):
    """Not a NIP-44 v2 payload, a bad MAC or padding, or keys that cannot agree."""


def conversation_key(secret: bytes, pubkey_xonly: bytes) -> bytes:
    """HKDF-extract(salt "nip44-v2", IKM = x of ECDH(secret, 02‖pubkey)); the same both ways."""
    try:
        shared = PublicKey(b"\x02" + pubkey_xonly).multiply(secret).format(compressed=True)[1:]
    except ValueError as exc:
        raise Nip44Error("cannot derive a NIP-44 conversation key") from exc
    return hmac.new(_SALT, shared, hashlib.sha256).digest()


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """(ChaCha20 key, ChaCha20 nonce, HMAC key) = HKDF-expand(conv_key, info=nonce, 76 bytes)."""
    if len(conv_key) != 32 or len(nonce) != 32:
        raise Nip44Error("conversation key and nonce must be 32 bytes")
    keys = HKDFExpand(algorithm=hashes.SHA256(), length=76, info=nonce).derive(conv_key)
    return keys[:32], keys[32:44], keys[44:]


def padded_length(length: int) -> int:
    """The padded plaintext size: 32 up to 32 bytes, then power-of-two-based chunks."""
    if length <= 32:
        return 32
    next_power = 1 << (length - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((length - 1) // chunk + 1)


def _chacha(key: bytes, nonce: bytes, data: bytes) -> bytes:
    """IETF ChaCha20 (12-byte nonce) from block counter 0; `cryptography` takes counter‖nonce."""
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00" * 4 + nonce), mode=None).encryptor()
    return cipher.update(data) + cipher.finalize()


def _mac(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(key, nonce + ciphertext, hashlib.sha256).digest()


def encrypt(conv_key: bytes, text: str, nonce: bytes | None = None) -> str:
    """The base64 payload `02‖nonce‖ciphertext‖mac`; a random nonce unless given (tests)."""
    nonce = os.urandom(32) if nonce is None else nonce
    plain = text.encode("utf-8")
    if not _MIN_PLAIN <= len(plain) <= _MAX_PLAIN:
        raise Nip44Error("NIP-44 plaintext must be 1 to 65535 bytes")
    padded = len(plain).to_bytes(2, "big") + plain
    padded += b"\x00" * (2 + padded_length(len(plain)) - len(padded))
    key, chacha_nonce, mac_key = message_keys(conv_key, nonce)
    ciphertext = _chacha(key, chacha_nonce, padded)
    raw = bytes([VERSION]) + nonce + ciphertext + _mac(mac_key, nonce, ciphertext)
    return base64.b64encode(raw).decode()


def decrypt(conv_key: bytes, payload: str) -> str:
    """The plaintext of a v2 payload; Nip44Error for another version, a bad MAC or padding."""
    if not payload or payload[0] == "#":
        raise Nip44Error("unknown NIP-44 version")
    if not 132 <= len(payload) <= 87472:
        raise Nip44Error("NIP-44 payload has an invalid size")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Nip44Error("NIP-44 payload is not base64") from exc
    if len(raw) < 99 or raw[0] != VERSION:
        raise Nip44Error("unknown NIP-44 version")
    nonce, ciphertext, mac = raw[1:33], raw[33:-32], raw[-32:]
    key, chacha_nonce, mac_key = message_keys(conv_key, nonce)
    if not hmac.compare_digest(_mac(mac_key, nonce, ciphertext), mac):
        raise Nip44Error("NIP-44 MAC does not match")
    padded = _chacha(key, chacha_nonce, ciphertext)
    length = int.from_bytes(padded[:2], "big")
    if length < _MIN_PLAIN or len(padded) != 2 + padded_length(length):
        raise Nip44Error("NIP-44 padding is invalid")
    try:
        return padded[2 : 2 + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Nip44Error("NIP-44 plaintext is not UTF-8") from exc
