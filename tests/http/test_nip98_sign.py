"""Headers signed by `nip98_header` pass the server's own NIP-98 verification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from coincurve import PublicKeyXOnly

from adapters.http.nip98 import Nip98Error
from adapters.http.nip98_sign import nip98_header
from tests.nostr_signing import verify_nip98

SECRET = bytes(range(1, 33))
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_a_signed_get_verifies_and_names_the_signer() -> None:
    header = nip98_header(
        SECRET, "http://127.0.0.1:8000/api/v1/vm?x=1", "get", int(NOW.timestamp())
    )
    pubkey = verify_nip98(header, "GET", "/api/v1/vm?x=1", NOW, None)
    assert pubkey == PublicKeyXOnly.from_secret(SECRET).format()


def test_a_signed_post_carries_the_body_hash() -> None:
    body = b'{"name":"k"}'
    header = nip98_header(SECRET, "http://h/api/v1/ssh-key", "POST", int(NOW.timestamp()), body)
    assert verify_nip98(header, "POST", "/api/v1/ssh-key", NOW, body)
    with pytest.raises(Nip98Error):
        verify_nip98(header, "POST", "/api/v1/ssh-key", NOW, b'{"name":"other"}')


def test_a_header_for_another_path_is_refused() -> None:
    header = nip98_header(SECRET, "http://h/api/v1/vm", "GET", int(NOW.timestamp()))
    with pytest.raises(Nip98Error, match="U tag does not match"):
        verify_nip98(header, "GET", "/api/v1/account", NOW, None)
