"""NIP-98 verification against real BIP-340-signed events (api.md §4.1, check order included)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from coincurve import PublicKeyXOnly
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http import nip98
from adapters.http.nip98 import (
    Nip98Error,
    Nip98Request,
    check_event,
    decode_event,
    uri_path,
    verify_nip98_token,
)
from tests.nostr_signing import NostrKey, auth_header, encode_event, nip98_event, verify_nip98

NOW = datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
KEY = NostrKey.from_seed(1)
OTHER = NostrKey.from_seed(2)
PATH = "/api/v1/vm/42/renew?method=lightning"  # the request target: path and query (D26)
URL = "https://api.example.net/api/v1/vm/42/renew?method=lightning"


def verify(
    header: str | None,
    method: str = "GET",
    path: str = PATH,
    body: bytes | None = b"",
    now: datetime = NOW,
) -> bytes:
    return verify_nip98(header, method, path, now, body)


def refused(header: str | None, **kw: Any) -> Nip98Error:
    with pytest.raises(Nip98Error) as info:
        verify(header, **kw)
    return info.value


def signed(url: str = URL, method: str = "GET", created_at: int = TS, **kw: Any) -> str:
    return auth_header(nip98_event(KEY, url, method, created_at, **kw))


def forged(event: dict[str, Any]) -> str:
    return "Nostr " + encode_event(event)


# --- accepted -------------------------------------------------------------------------------


def test_get_with_absolute_url_and_query_string_returns_the_signers_xonly_key() -> None:
    assert verify(signed()) == KEY.pubkey


def test_post_with_a_bare_path_u_tag_is_accepted() -> None:
    assert (
        verify(
            signed(url="/api/v1/vm", method="POST"),
            method="POST",
            path="/api/v1/vm",
            body=b'{"a":1}',
        )
        == KEY.pubkey
    )


@pytest.mark.parametrize(
    ("padded", "urlsafe"), [(True, False), (False, False), (False, True), (True, True)]
)
def test_padded_unpadded_and_url_safe_base64_are_accepted(padded: bool, urlsafe: bool) -> None:
    event = nip98_event(KEY, URL, "GET", TS, content="~~~?>>>")  # forces + and / in base64
    assert verify(auth_header(event, padded=padded, urlsafe=urlsafe)) == KEY.pubkey


def test_an_event_whose_json_needs_padding_decodes_without_it() -> None:
    for extra in range(3):
        event = nip98_event(KEY, URL, "GET", TS, content="x" * extra)
        header = auth_header(event, padded=False)
        assert verify(header) == KEY.pubkey


def test_created_at_exactly_600_seconds_either_way_is_accepted() -> None:
    assert verify(signed(created_at=TS - 600)) == KEY.pubkey
    assert verify(signed(created_at=TS + 600)) == KEY.pubkey


def test_sub_second_now_is_compared_in_whole_seconds() -> None:
    assert verify(signed(created_at=TS - 600), now=NOW + timedelta(milliseconds=999))


def test_unknown_extra_event_fields_are_tolerated() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    event["relays"] = ["wss://x"]
    assert verify(forged(event)) == KEY.pubkey


def test_payload_tag_matching_the_body_is_accepted() -> None:
    body = b'{"ssh_key_id":1}'
    header = signed(url="/api/v1/vm", method="POST", body=body)
    assert verify(header, method="POST", path="/api/v1/vm", body=body) == KEY.pubkey


def test_payload_tag_in_upper_case_hex_is_accepted() -> None:
    body = b"{}"
    tags = [["u", URL], ["method", "POST"], ["payload", hashlib.sha256(body).hexdigest().upper()]]
    header = auth_header(nip98_event(KEY, URL, "POST", TS, tags=tags))
    assert verify(header, method="POST", body=body) == KEY.pubkey


def test_unicode_content_hashes_as_utf8_like_nip01() -> None:
    event = nip98_event(KEY, URL, "GET", TS, content='héllo "\n\t\u0001 ✓')
    assert verify(forged(event)) == KEY.pubkey


# --- header and decoding (401 with the reference texts, D26) ----------------------------------


def test_missing_header_is_401_auth_header_not_found() -> None:
    """D26: a missing header is 401 (the reference said 403)."""
    err = refused(None)
    assert (err.status, err.text) == (401, "Auth header not found")


def test_non_ascii_header_is_401_auth_header_not_found() -> None:
    assert refused("Nostr é").text == "Auth header not found"


@pytest.mark.parametrize("header", ["", "nostr abc", "Bearer abc", "Nostr", "Nostrabc"])
def test_other_schemes_are_401_auth_scheme_must_be_nostr(header: str) -> None:
    err = refused(header)
    assert (err.status, err.text) == (401, "Auth scheme must be Nostr")


@pytest.mark.parametrize("payload", ["%%%", "abc d", "QQ===", "Q", "QQ=A", "QQ="])
def test_not_base64_is_401_invalid_auth_string(payload: str) -> None:
    err = refused("Nostr " + payload)
    assert (err.status, err.text) == (401, "Invalid auth: Invalid auth string")


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1,2]", b'{"id":"00"}', b"\xff\xfe"],
)
def test_not_an_event_is_401_invalid_nostr_event(raw: bytes) -> None:
    err = refused("Nostr " + base64.b64encode(raw).decode())
    assert (err.status, err.text) == (401, "Invalid auth: Invalid nostr event")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "zz" * 32),
        ("pubkey", "00" * 31),
        ("pubkey", "ff" * 32),  # not an x coordinate on the curve
        ("sig", "00" * 32),
        ("created_at", "1781690400"),
        ("created_at", -1),
        ("created_at", 1.5),
        ("kind", True),
        ("kind", 70000),
        ("tags", [["u", 1]]),
        ("tags", "u"),
        ("content", None),
    ],
)
def test_malformed_fields_are_invalid_nostr_event(field: str, value: object) -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    event[field] = value
    assert refused(forged(event)).reason == "Invalid nostr event"


def test_missing_field_is_invalid_nostr_event() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    del event["sig"]
    assert refused(forged(event)).reason == "Invalid nostr event"


def test_decode_event_rejects_lone_surrogates() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    text = json.dumps(event, separators=(",", ":"))
    raw = text.replace('"content":""', '"content":"\\ud800"').encode()
    with pytest.raises(Nip98Error, match="Invalid nostr event"):
        decode_event(base64.b64encode(raw).decode())


# --- the §4.1 checks, in order ----------------------------------------------------------------


def test_wrong_kind_is_refused() -> None:
    err = refused(signed(kind=1))
    assert (err.status, err.text) == (401, "Auth check failed: Wrong event kind")


@pytest.mark.parametrize("created_at", [TS - 601, TS + 601, 0])
def test_stale_or_future_beyond_600_seconds_is_refused(created_at: int) -> None:
    assert refused(signed(created_at=created_at)).reason == "Created timestamp is out of range"


def test_missing_u_tag_is_refused() -> None:
    header = signed(tags=[["method", "GET"]])
    assert refused(header).text == "Auth check failed: Missing url tag"


@pytest.mark.parametrize("tags", [[["u"], ["method", "GET"]], [[], ["u"], ["method", "GET"]]])
def test_a_u_tag_without_value_is_a_missing_url_tag_not_a_crash(tags: list[list[str]]) -> None:
    assert refused(signed(tags=tags)).reason == "Missing url tag"


def test_a_bare_u_tag_is_skipped_for_the_next_well_formed_one() -> None:
    header = signed(tags=[["u"], ["u", URL], ["method", "GET"]])
    assert verify(header) == KEY.pubkey


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api/v1/vm",
        "https://exa mple/x",
        "http://[::1/x",
        "https://h:99999/x",
        "https:///api/v1/vm",
        "/ä",
    ],
)
def test_unparseable_u_tag_is_invalid_u_tag(url: str) -> None:
    assert refused(signed(url=url)).reason == "Invalid U tag"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.net/api/v1/vm/42/renew/",
        "https://api.example.net/api/v1/vm/42",
        "/api/v1/vm/42/renew/",
        "/API/v1/vm/42/renew",
        "https://api.example.net",
    ],
)
def test_u_path_must_match_exactly(url: str) -> None:
    assert refused(signed(url=url)).reason == "U tag does not match"


def test_only_the_first_u_tag_counts() -> None:
    header = signed(tags=[["u", "/other"], ["u", URL], ["method", "GET"]])
    assert refused(header).reason == "U tag does not match"


def test_missing_method_tag_is_refused() -> None:
    assert refused(signed(tags=[["u", URL]])).text == "Auth check failed: Missing method tag"
    assert refused(signed(tags=[["u", URL], ["method"]])).reason == "Missing method tag"


@pytest.mark.parametrize("method", ["get", "POST", "Get", " GET"])
def test_method_is_compared_case_sensitively(method: str) -> None:
    assert refused(signed(method=method)).reason == "Method tag incorrect"


def test_tampered_content_breaks_the_id() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    event["content"] = "tampered"
    assert refused(forged(event)).text == "Auth check failed: Event signature invalid"


def test_tampered_tags_break_the_id() -> None:
    event = nip98_event(KEY, "/api/v1/other", "GET", TS)
    event["tags"][0][1] = URL
    assert refused(forged(event)).reason == "Event signature invalid"


def test_bad_signature_is_refused() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    event["sig"] = ("0" if event["sig"][0] != "0" else "1") + event["sig"][1:]
    assert refused(forged(event)).reason == "Event signature invalid"


def test_signature_from_another_key_is_refused() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    mine = nip98_event(OTHER, URL, "GET", TS)
    event["sig"] = mine["sig"]
    assert refused(forged(event)).reason == "Event signature invalid"


def test_claiming_another_pubkey_with_a_recomputed_id_is_refused() -> None:
    attacker = nip98_event(OTHER, URL, "GET", TS)
    victim = nip98_event(KEY, URL, "GET", TS)
    attacker["pubkey"], attacker["id"] = victim["pubkey"], victim["id"]
    assert refused(forged(attacker)).reason == "Event signature invalid"


def test_payload_tag_not_matching_the_body_is_refused() -> None:
    header = signed(method="POST", body=b'{"ssh_key_id":1}')
    err = refused(header, method="POST", body=b'{"ssh_key_id":999}')
    assert err.text == "Auth check failed: Payload tag does not match request body"


def test_payload_tag_without_a_body_is_refused() -> None:
    header = signed(method="POST", body=b"{}")
    assert refused(header, method="POST", body=None).reason == (
        "Payload tag present but request has no body"
    )


def test_checks_run_in_the_reference_order() -> None:
    """Wrong kind beats stale, stale beats bad u, u beats method, method beats signature."""
    tags = [["u", "/nope"], ["method", "PUT"]]
    assert refused(signed(kind=1, created_at=0, tags=tags)).reason == "Wrong event kind"
    assert refused(signed(created_at=0, tags=tags)).reason == "Created timestamp is out of range"
    assert refused(signed(tags=tags)).reason == "U tag does not match"
    event = nip98_event(KEY, URL, "PUT", TS)
    event["sig"] = "00" * 64
    assert refused(forged(event)).reason == "Method tag incorrect"
    event = nip98_event(KEY, URL, "GET", TS, body=b"signed")
    event["sig"] = "00" * 64
    assert refused(forged(event), body=b"other").reason == "Event signature invalid"


# --- helpers and the query-parameter variant ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/a/b?x=1#f", "/a/b"),
        ("https://h.example:8443/a%20b?q", "/a%20b"),
        ("http://h", "/"),
        ("/", "/"),
    ],
)
def test_uri_path_takes_the_path_component_only(url: str, path: str) -> None:
    assert uri_path(url) == path


def test_query_token_variant_accepts_a_valid_event() -> None:
    path = "/api/v1/payment/ab/invoice"
    token = encode_event(nip98_event(KEY, "https://h" + path, "GET", TS))
    assert verify_nip98_token(token, Nip98Request("GET", path, NOW)) == KEY.pubkey


def test_query_token_variant_uses_the_reference_texts() -> None:
    path = "/api/v1/payment/ab/invoice"
    with pytest.raises(Nip98Error) as missing:
        verify_nip98_token(None, Nip98Request("GET", path, NOW))
    assert missing.value.text == "Missing or invalid auth param"
    with pytest.raises(Nip98Error) as garbage:
        verify_nip98_token("%%", Nip98Request("GET", path, NOW))
    assert garbage.value.text == "Missing or invalid auth param"
    wrong_path = encode_event(nip98_event(KEY, "/api/v1/payment/cd/invoice", "GET", TS))
    with pytest.raises(Nip98Error) as bad:
        verify_nip98_token(wrong_path, Nip98Request("GET", path, NOW))
    assert (bad.value.text, bad.value.reason) == ("Invalid auth event", "U tag does not match")


def test_event_json_must_be_utf8_not_utf16() -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    raw = json.dumps(event).encode("utf-16")
    assert refused("Nostr " + base64.b64encode(raw).decode()).reason == "Invalid nostr event"


def test_an_event_changed_after_decoding_is_checked_against_its_own_fields() -> None:
    """The id and key `decode_event` keeps for the signature check are not carried over by
    `attrs.evolve`: an event whose key or content was changed fails its signature check."""
    event = decode_event(signed().removeprefix("Nostr "))
    assert event is not None and event.digest is not None and event.key is not None
    request = Nip98Request("GET", PATH, NOW)
    assert check_event(event, request) == KEY.pubkey
    for changed in (
        attrs.evolve(event, pubkey=OTHER.pubkey),
        attrs.evolve(event, content="changed"),
    ):
        assert changed.digest is None and changed.key is None
        with pytest.raises(Nip98Error):
            check_event(changed, request)


# --- orjson where it reads and writes what `json` does (issue 10) ------------------------------


def _json_canonical(event: dict[str, Any]) -> bytes:
    data = [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]]
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=300)
@given(content=st.text(), tag=st.lists(st.text(), min_size=1, max_size=3))
def test_the_event_id_is_json_dumps_of_any_text_and_tags(content: str, tag: list[str]) -> None:
    """orjson's compact output is NIP-01's serialisation (control characters, quotes, emoji,
    U+2028): the id `decode_event` keeps is sha256 of what `json.dumps` writes."""
    event = nip98_event(KEY, URL, "GET", TS)
    event["content"], event["tags"] = content, [*event["tags"], tag]
    try:
        expected = hashlib.sha256(_json_canonical(event)).digest()
    except UnicodeEncodeError:  # a lone surrogate: not a valid event either way
        with pytest.raises(Nip98Error, match="Invalid nostr event"):
            decode_event(encode_event(event))
        return
    assert decode_event(encode_event(event)).digest == expected


@pytest.mark.parametrize(
    ("extra", "valid"),
    [
        ('"x":NaN', True),  # json alone reads NaN, in a field nobody reads
        ('"x":1e400', True),
        ('"x":123456789012345678901234567890', True),
        ('"x":[' * 1100 + "]" * 1100, False),  # deeper than either parser goes
        ('"created_at":18446744073709551616', False),  # orjson: a float, json: too large
        ('"kind":1e3', False),
        ('"x":"\\ud800"', True),
    ],
)
def test_what_only_json_parses_gets_jsons_answer(extra: str, valid: bool) -> None:
    event = nip98_event(KEY, URL, "GET", TS)
    raw = json.dumps(event, separators=(",", ":"))[:-1] + "," + extra + "}"
    encoded = base64.b64encode(raw.encode()).decode()
    if valid:
        assert decode_event(encoded).pubkey == KEY.pubkey
    else:
        with pytest.raises(Nip98Error, match="Invalid nostr event"):
            decode_event(encoded)


def test_a_keys_events_parse_it_once_and_a_bad_key_is_refused_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10: the x-only key of a pubkey is parsed once for its events (kept, bounded);
    a pubkey that is not a curve point is refused on each request, never kept as valid."""
    parsed: list[bytes] = []
    real = PublicKeyXOnly

    def counting(pubkey: bytes) -> Any:
        parsed.append(pubkey)
        return real(pubkey)

    monkeypatch.setattr(nip98, "PublicKeyXOnly", counting)
    nip98._xonly_key.cache_clear()
    try:
        for at in (TS, TS + 1, TS + 2):
            assert verify(signed(created_at=at)) == KEY.pubkey
        assert parsed == [KEY.pubkey]
        event = nip98_event(KEY, URL, "GET", TS)
        event["pubkey"] = "ff" * 32  # x = 2^256 - 1 is above the field prime: no such point
        for _ in range(2):
            assert refused(forged(event)).reason == "Invalid nostr event"
        assert parsed == [KEY.pubkey, b"\xff" * 32, b"\xff" * 32]
    finally:
        nip98._xonly_key.cache_clear()
