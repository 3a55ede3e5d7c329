"""NIP-44 v2 against a selection of the NIP's published test vectors (nip44.vectors.json, v2)."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PublicKeyXOnly

from adapters.nwc import nip44

CONVERSATION_KEYS = [
    (
        "315e59ff51cb9209768cf7da80791ddcaae56ac9775eb25b6dee1234bc5d2268",
        "c2f9d9948dc8c7c38321e4b85c8558872eafa0641cd269db76848a6073e69133",
        "3dfef0ce2a4d80a25e7a328accf73448ef67096f65f79588e358d9a0eb9013f1",
    ),
    (
        "a1e37752c9fdc1273be53f68c5f74be7c8905728e8de75800b94262f9497c86e",
        "03bb7947065dde12ba991ea045132581d0954f042c84e06d8c00066e23c1a800",
        "4d14f36e81b8452128da64fe6f1eae873baae2f444b02c950b90e43553f2178b",
    ),
    (
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364139",
        "0000000000000000000000000000000000000000000000000000000000000002",
        "8b6392dbf2ec6a2b2d5b1477fc2be84d63ef254b667cadd31bd3f444c44ae6ba",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        "3b4610cb7189beb9cc29eb3716ecc6102f1247e8f3101a03a1787d8908aeb54e",
    ),
]

MESSAGE_KEYS_CONV = "a1a3d60f3470a8612633924e91febf96dc5366ce130f658b1f0fc652c20b3b54"
MESSAGE_KEYS = [
    (
        "e1e6f880560d6d149ed83dcc7e5861ee62a5ee051f7fde9975fe5d25d2a02d72",
        "f145f3bed47cb70dbeaac07f3a3fe683e822b3715edb7c4fe310829014ce7d76",
        "c4ad129bb01180c0933a160c",
        "027c1db445f05e2eee864a0975b0ddef5b7110583c8c192de3732571ca5838c4",
    ),
    (
        "e1d6d28c46de60168b43d79dacc519698512ec35e8ccb12640fc8e9f26121101",
        "e35b88f8d4a8f1606c5082f7a64b100e5d85fcdb2e62aeafbec03fb9e860ad92",
        "22925e920cee4a50a478be90",
        "46a7c55d4283cb0df1d5e29540be67abfe709e3b2e14b7bf9976e6df994ded30",
    ),
]

PADDED = [
    (16, 32),
    (32, 32),
    (33, 64),
    (37, 64),
    (45, 64),
    (49, 64),
    (64, 64),
    (65, 96),
    (100, 128),
    (111, 128),
    (200, 224),
    (250, 256),
    (320, 320),
    (383, 384),
    (384, 384),
    (400, 448),
    (500, 512),
    (512, 512),
    (515, 640),
    (700, 768),
    (800, 896),
    (900, 1024),
    (1020, 1024),
    (65536, 65536),
]

#: (sec1, sec2, conversation key, nonce, plaintext, payload)
ENCRYPT_DECRYPT = [
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "0000000000000000000000000000000000000000000000000000000000000002",
        "c41c775356fd92eadc63ff5a0dc1da211b268cbea22316767095b2871ea1412d",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "a",
        "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABee0G5VSK0/9YypIObAtDKfYEAjD35uVkHyB0F4DwrcNaCX"
        "lCWZKaArsGrY6M9wnuTMxWfp1RTN9Xga8no+kF5Vsb",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "c41c775356fd92eadc63ff5a0dc1da211b268cbea22316767095b2871ea1412d",
        "f00000000000000000000000000000f00000000000000000000000000000000f",
        "🍕🫃",
        "AvAAAAAAAAAAAAAAAAAAAPAAAAAAAAAAAAAAAAAAAAAPSKSK6is9ngkX2+cSq85Th16oRTISAOfhStnixqZziKMDvB"
        "0QQzgFZdjLTPicCJaV8nDITO+QfaQ61+KbWQIOO2Yj",
    ),
    (
        "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a",
        "4b22aa260e4acb7021e32f38a6cdf4b673c6a277755bfce287e370c924dc936d",
        "3e2b52a63be47d34fe0a80e34e73d436d6963bc8f39827f327057a9986c20a45",
        "b635236c42db20f021bb8d1cdff5ca75dd1a0cc72ea742ad750f33010b24f73b",
        "表ポあA鷗ŒéＢ逍Üßªąñ丂㐀𠀀",
        "ArY1I2xC2yDwIbuNHN/1ynXdGgzHLqdCrXUPMwELJPc7s7JqlCMJBAIIjfkpHReBPXeoMCyuClwgbT419jUWU1PwaN"
        "l4FEQYKCDKVJz+97Mp3K+Q2YGa77B6gpxB/lr1QgoqpDf7wDVrDmOqGoiPjWDqy8KzLueKDcm9BVP8xeTJIxs=",
    ),
    (
        "eba1687cab6a3101bfc68fd70f214aa4cc059e9ec1b79fdb9ad0a0a4e259829f",
        "dff20d262bef9dfd94666548f556393085e6ea421c8af86e9d333fa8747e94b3",
        "4f1538411098cf11c8af216836444787c462d47f97287f46cf7edb2c4915b8a5",
        "2180b52ae645fcf9f5080d81b1f0b5d6f2cd77ff3c986882bb549158462f3407",
        "( ͡° ͜ʖ ͡°)",
        "AiGAtSrmRfz59QgNgbHwtdbyzXf/PJhogrtUkVhGLzQHv4qhKQwnFQ54OjVMgqCea/Vj0YqBSdhqNR777TJ4zIUk7R"
        "0fnizp6l1zwgzWv7+ee6u+0/89KIjY5q1wu6inyuiv",
    ),
]

INVALID_CONVERSATION_KEYS = [
    (
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef",
    ),  # sec1 > n
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef",
    ),  # sec1 = 0
    (
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364139",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ),  # pub2 no sqrt
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef",
    ),  # pub2 no sqrt
    (
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),  # twist, order 3
]

#: (conversation key, payload, what is wrong)
INVALID_DECRYPT = [
    (
        "ca2527a037347b91bea0c8a30fc8d9600ffd81ec00038671e3a0f0cb0fc9f642",
        "#Atqupco0WyaOW2IGDKcshwxI9xO8HgD/P8Ddt46CbxDbrhdG8VmJdU0MIDf06CUvEvdnr1cp1fiMtlM/GrE92xAc1"
        "K5odTpCzUB+mjXgbaqtntBUbTToSUoT0ovrlPwzGjyp",
        "version",
    ),
    (
        "36f04e558af246352dcf73b692fbd3646a2207bd8abd4b1cd26b234db84d9481",
        "AK1AjUvoYW3IS7C/BGRUoqEC7ayTfDUgnEPNeWTF/reBZFaha6EAIRueE9D1B1RuoiuFScC0Q94yjIuxZD3JStQtE8"
        "JMNacWFs9rlYP+ZydtHhRucp+lxfdvFlaGV/sQlqZz",
        "version",
    ),
    (
        "ca2527a037347b91bea0c8a30fc8d9600ffd81ec00038671e3a0f0cb0fc9f642",
        "Atфupco0WyaOW2IGDKcshwxI9xO8HgD/P8Ddt46CbxDbrhdG8VmJZE0UICD06CUvEvdnr1cp1fiMtlM/GrE92xAc1E"
        "wsVCQEgWEu2gsHUVf4JAa3TpgkmFc3TWsax0v6n/Wq",
        "base64",
    ),
    (
        "cff7bd6a3e29a450fd27f6c125d5edeb0987c475fd1e8d97591e0d4d8a89763c",
        "Agn/l3ULCEAS4V7LhGFM6IGA17jsDUaFCKhrbXDANholyySBfeh+EN8wNB9gaLlg4j6wdBYh+3oK+mnxWu3NKRbSvQ"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "MAC",
    ),
    (
        "cfcc9cf682dfb00b11357f65bdc45e29156b69db424d20b3596919074f5bf957",
        "AmWxSwuUmqp9UsQX63U7OQ6K1thLI69L7G2b+j4DoIr0oRWQ8avl4OLqWZiTJ10vIgKrNqjoaX+fNhE9RqmR5g0f6B"
        "tUg1ijFMz71MO1D4lQLQfW7+UHva8PGYgQ1QpHlKgR",
        "MAC",
    ),
]


@pytest.mark.parametrize(("sec1", "pub2", "expected"), CONVERSATION_KEYS)
def test_conversation_keys(sec1: str, pub2: str, expected: str) -> None:
    assert nip44.conversation_key(bytes.fromhex(sec1), bytes.fromhex(pub2)).hex() == expected


@pytest.mark.parametrize(("nonce", "key", "chacha_nonce", "mac_key"), MESSAGE_KEYS)
def test_message_keys(nonce: str, key: str, chacha_nonce: str, mac_key: str) -> None:
    got = nip44.message_keys(bytes.fromhex(MESSAGE_KEYS_CONV), bytes.fromhex(nonce))
    assert [k.hex() for k in got] == [key, chacha_nonce, mac_key]


def test_padded_lengths() -> None:
    assert [(n, nip44.padded_length(n)) for n, _ in PADDED] == PADDED


@pytest.mark.parametrize(("sec1", "sec2", "conv", "nonce", "plaintext", "payload"), ENCRYPT_DECRYPT)
def test_encrypt_decrypt(
    sec1: str, sec2: str, conv: str, nonce: str, plaintext: str, payload: str
) -> None:
    pub2 = PublicKeyXOnly.from_secret(bytes.fromhex(sec2)).format()
    key = nip44.conversation_key(bytes.fromhex(sec1), pub2)
    assert key.hex() == conv
    pub1 = PublicKeyXOnly.from_secret(bytes.fromhex(sec1)).format()
    assert nip44.conversation_key(bytes.fromhex(sec2), pub1) == key  # symmetric
    assert nip44.encrypt(key, plaintext, bytes.fromhex(nonce)) == payload
    assert nip44.decrypt(key, payload) == plaintext


def test_a_long_message_matches_the_published_digest() -> None:
    key = bytes.fromhex("8fc262099ce0d0bb9b89bac05bb9e04f9bc0090acc181fef6840ccee470371ed")
    nonce = bytes.fromhex("326bcb2c943cd6bb717588c9e5a7e738edf6ed14ec5f5344caa6ef56f0b9cff7")
    text = "x" * 65535
    payload = nip44.encrypt(key, text, nonce)
    assert hashlib.sha256(payload.encode()).hexdigest() == (
        "90714492225faba06310bff2f249ebdc2a5e609d65a629f1c87f2d4ffc55330a"
    )
    assert nip44.decrypt(key, payload) == text


@pytest.mark.parametrize(("sec1", "pub2"), INVALID_CONVERSATION_KEYS)
def test_invalid_conversation_keys(sec1: str, pub2: str) -> None:
    with pytest.raises(nip44.Nip44Error):
        nip44.conversation_key(bytes.fromhex(sec1), bytes.fromhex(pub2))


@pytest.mark.parametrize(("conv", "payload", "what"), INVALID_DECRYPT)
def test_invalid_payloads_are_refused(conv: str, payload: str, what: str) -> None:
    with pytest.raises(nip44.Nip44Error, match=what):
        nip44.decrypt(bytes.fromhex(conv), payload)


@pytest.mark.parametrize("length", [0, 65536])
def test_plaintext_lengths_outside_1_to_65535_are_refused(length: int) -> None:
    with pytest.raises(nip44.Nip44Error):
        nip44.encrypt(b"\x01" * 32, "x" * length)
