"""SecretBox: LNVPS `ENC:` format (AES-256-GCM), plain values read back, key files (§2)."""

from __future__ import annotations

import base64
import math
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto.secretbox import (
    AesGcmSecretBox,
    KeyFileError,
    load_or_create_key,
    stored_length,
)
from ports.secrets import SecretBox, SecretBoxError

KEY = bytes(range(32))


def test_round_trip_and_protocol() -> None:
    box: SecretBox = AesGcmSecretBox(KEY)
    for plain in ["", "lnbc1...", "ünïcødé ✓", "x" * 5000]:
        stored = box.encrypt(plain)
        assert stored.startswith("ENC:") and box.is_encrypted(stored)
        assert box.decrypt(stored) == plain


def test_fresh_nonce_per_encryption() -> None:
    box = AesGcmSecretBox(KEY)
    assert box.encrypt("same") != box.encrypt("same")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 31, 32, 33, 100, 1000])
def test_stored_length_formula(n: int) -> None:
    stored = AesGcmSecretBox(KEY).encrypt("a" * n)
    assert len(stored) == 4 + 4 * math.ceil((n + 28) / 3) == stored_length(n)


def test_decrypts_a_vector_made_with_the_primitives() -> None:
    nonce = bytes.fromhex("000102030405060708090a0b")
    sealed = AESGCM(KEY).encrypt(nonce, b"hello lnvps", None)
    stored = "ENC:" + base64.b64encode(nonce + sealed).decode()
    assert AesGcmSecretBox(KEY).decrypt(stored) == "hello lnvps"
    # and our output is exactly that layout: nonce || ciphertext || tag, standard base64
    ours = base64.b64decode(AesGcmSecretBox(KEY).encrypt("abc")[4:])
    assert AESGCM(KEY).decrypt(ours[:12], ours[12:], None) == b"abc"


def test_wrong_key_fails_clearly() -> None:
    stored = AesGcmSecretBox(KEY).encrypt("secret")
    with pytest.raises(SecretBoxError, match="wrong encryption key"):
        AesGcmSecretBox(bytes(32)).decrypt(stored)


def test_corrupt_values_fail_clearly() -> None:
    box = AesGcmSecretBox(KEY)
    with pytest.raises(SecretBoxError, match="base64"):
        box.decrypt("ENC:!!!")
    with pytest.raises(SecretBoxError, match="too short"):
        box.decrypt("ENC:" + base64.b64encode(b"short").decode())


def test_plain_values_pass_through() -> None:
    assert AesGcmSecretBox(KEY).decrypt("not encrypted") == "not encrypted"
    assert not AesGcmSecretBox(KEY).is_encrypted("plain")


def test_key_length_rejected() -> None:
    with pytest.raises(KeyFileError, match="exactly 32 bytes"):
        AesGcmSecretBox(b"short")


def test_key_file_created_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "key.bin"
    key = load_or_create_key(path, auto_generate=True)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    box = AesGcmSecretBox.from_key_file(path)
    assert box.decrypt(AesGcmSecretBox(key).encrypt("k")) == "k"


def test_two_processes_creating_the_key_at_once_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "key.bin"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_or_create_key(path, auto_generate=True), range(8)))
    assert len(set(keys)) == 1 and path.read_bytes() == keys[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.bin"]  # no temporary left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_missing_or_wrong_length(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_or_create_key(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_bytes(b"x" * 33)
    with pytest.raises(KeyFileError, match="exactly 32 raw bytes, found 33"):
        load_or_create_key(bad, auto_generate=True)
