"""NIP-19 public keys: the spec's npub example, hex, and what is refused."""

from __future__ import annotations

import pytest

from domain.nip19 import npub, parse_pubkey

SPEC_HEX = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
SPEC_NPUB = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"


def test_the_spec_example_both_ways() -> None:
    assert npub(bytes.fromhex(SPEC_HEX)) == SPEC_NPUB
    assert parse_pubkey(SPEC_NPUB) == bytes.fromhex(SPEC_HEX)
    assert parse_pubkey(SPEC_NPUB.upper()) == bytes.fromhex(SPEC_HEX)
    assert parse_pubkey(f" {SPEC_HEX.upper()} ") == bytes.fromhex(SPEC_HEX)


@pytest.mark.parametrize(
    "text",
    [
        SPEC_NPUB[:-1] + "7",  # checksum
        "nsec1" + SPEC_NPUB[5:],  # another prefix
        SPEC_NPUB[:10] + SPEC_NPUB[10:].upper(),  # mixed case
        SPEC_HEX[:-2],
        "npub1b",
        "",
        npub(b"\x01" * 31),  # valid bech32, wrong length
    ],
)
def test_bad_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Nostr public key"):
        parse_pubkey(text)
