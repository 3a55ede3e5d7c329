"""Revolut and Stripe webhook signatures checked against real HMACs; event bodies parsed."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fiat.revolut_webhook import parse_revolut_event, verify_revolut_signature
from adapters.fiat.stripe_webhook import parse_stripe_event, verify_stripe_signature
from domain.errors import DomainError
from ports.payment_rail import WebhookPayloadInvalid, WebhookSignatureInvalid

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
NOW_MS = NOW_S * 1000
REVOLUT_SECRET = "wsk_r59a4HfWVAKycbCaNO1RvgCJec02gRd8"
STRIPE_SECRET = "whsec_test_0123456789abcdef"
REVOLUT_BODY = json.dumps(
    {"event": "ORDER_COMPLETED", "order_id": "6516e61c-d279-a454-a837-bc52ce55ed49"}
).encode()
STRIPE_BODY = json.dumps(
    {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_123", "object": "payment_intent"}},
    }
).encode()


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def revolut_headers(
    body: bytes = REVOLUT_BODY, secret: str = REVOLUT_SECRET, ts: int = NOW_MS
) -> dict[str, str]:
    digest = _hex(secret, f"v1.{ts}.".encode() + body)
    return {"Revolut-Signature": f"v1={digest}", "Revolut-Request-Timestamp": str(ts)}


def stripe_headers(
    body: bytes = STRIPE_BODY, secret: str = STRIPE_SECRET, ts: int = NOW_S
) -> dict[str, str]:
    return {"Stripe-Signature": f"t={ts},v1={_hex(secret, f'{ts}.'.encode() + body)}"}


def _reason(exc: pytest.ExceptionInfo[WebhookSignatureInvalid]) -> str:
    return exc.value.reason


# -- the error type -----------------------------------------------------------------------


def test_error_is_a_401_domain_error() -> None:
    err = WebhookSignatureInvalid("nope")
    assert isinstance(err, DomainError)
    assert err.status == 401 and err.kind == "unauthorized"
    assert err.reason == err.message == "nope"


# -- Revolut ------------------------------------------------------------------------------


def test_revolut_valid() -> None:
    verify_revolut_signature(revolut_headers(), REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_documented_example() -> None:
    """The worked example of Revolut's documentation, byte for byte."""
    body = (
        b'{"data":{"id":"645a7696-22f3-aa47-9c74-cbae0449cc46","new_state":"completed",'
        b'"old_state":"pending","request_id":"app_charges-9f5d5eb3-1e06-46c5-b1c0-3914763e0bcb"},'
        b'"event":"TransactionStateChanged","timestamp":"2023-05-09T16:36:38.028960Z"}'
    )
    headers = revolut_headers(body, ts=1683650202360)
    signed_at = datetime.fromtimestamp(1683650202.360, UTC)
    verify_revolut_signature(headers, body, REVOLUT_SECRET, signed_at)


def test_revolut_tampered_body() -> None:
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_revolut_signature(revolut_headers(), REVOLUT_BODY + b" ", REVOLUT_SECRET, NOW)
    assert _reason(exc) == "No valid signature found"


def test_revolut_tampered_timestamp() -> None:
    headers = revolut_headers()
    headers["Revolut-Request-Timestamp"] = str(NOW_MS + 1)
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_wrong_secret() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(revolut_headers(), REVOLUT_BODY, "wsk_other", NOW)


def test_revolut_empty_secret_refused() -> None:
    headers = revolut_headers(secret="")
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(headers, REVOLUT_BODY, "", NOW)


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("Revolut-Signature", "Missing Revolut-Signature header"),
        ("Revolut-Request-Timestamp", "Missing Revolut-Request-Timestamp header"),
    ],
)
def test_revolut_missing_headers(missing: str, reason: str) -> None:
    headers = revolut_headers()
    del headers[missing]
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)
    assert _reason(exc) == reason


def test_revolut_no_headers_at_all() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature({}, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_several_candidates_one_valid() -> None:
    """During a secret rotation Revolut sends one signature per active secret."""
    good = revolut_headers()["Revolut-Signature"]
    other = revolut_headers(secret="wsk_old")["Revolut-Signature"]
    headers = revolut_headers()
    headers["Revolut-Signature"] = f"{other}, {good}"
    verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)
    headers["Revolut-Signature"] = f"{other},v1=00,garbage"
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_other_versions_ignored() -> None:
    """Only the v1 scheme counts, even when a v2 item carries the right MAC over "v2."."""
    digest = _hex(REVOLUT_SECRET, f"v2.{NOW_MS}.".encode() + REVOLUT_BODY)
    headers = revolut_headers()
    headers["Revolut-Signature"] = f"v2={digest}"
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)
    assert "No v1 signature" in _reason(exc)


def test_revolut_uppercase_and_lowercase_header_names_and_hex() -> None:
    headers = {k.upper(): v.upper() for k, v in revolut_headers().items()}
    headers = {k: v.replace("V1=", "v1=") for k, v in headers.items()}
    verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)
    lower = {k.lower(): v for k, v in revolut_headers().items()}
    verify_revolut_signature(lower, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_conflicting_duplicate_headers_refused() -> None:
    headers = revolut_headers()
    headers["revolut-signature"] = revolut_headers(secret="wsk_x")["Revolut-Signature"]
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_non_numeric_timestamp() -> None:
    headers = revolut_headers()
    headers["Revolut-Request-Timestamp"] = "yesterday"
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(headers, REVOLUT_BODY, REVOLUT_SECRET, NOW)


def test_revolut_five_minute_window_by_default() -> None:
    """Revolut's documented replay window; the reference had none (issue 8 §5)."""
    verify_revolut_signature(
        revolut_headers(ts=NOW_MS - 300_000), REVOLUT_BODY, REVOLUT_SECRET, NOW
    )
    for ts in (NOW_MS - 600_000, NOW_MS - 301_000, NOW_MS + 301_000):
        with pytest.raises(WebhookSignatureInvalid) as exc:
            verify_revolut_signature(revolut_headers(ts=ts), REVOLUT_BODY, REVOLUT_SECRET, NOW)
        assert "tolerance" in _reason(exc)


def test_revolut_window_can_be_turned_off() -> None:
    old = revolut_headers(ts=NOW_MS - 86_400_000)
    verify_revolut_signature(old, REVOLUT_BODY, REVOLUT_SECRET, None, None)


def test_revolut_tolerance_in_milliseconds() -> None:
    inside = revolut_headers(ts=NOW_MS - 299_000)
    verify_revolut_signature(inside, REVOLUT_BODY, REVOLUT_SECRET, NOW, 300)
    stale = revolut_headers(ts=NOW_MS - 301_000)
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_revolut_signature(stale, REVOLUT_BODY, REVOLUT_SECRET, NOW, 300)
    assert "tolerance" in _reason(exc)
    future = revolut_headers(ts=NOW_MS + 301_000)
    with pytest.raises(WebhookSignatureInvalid):
        verify_revolut_signature(future, REVOLUT_BODY, REVOLUT_SECRET, NOW, 300)


def test_revolut_tolerance_without_now_is_a_bug() -> None:
    with pytest.raises(ValueError, match="now"):
        verify_revolut_signature(revolut_headers(), REVOLUT_BODY, REVOLUT_SECRET, None, 300)


# -- Stripe -------------------------------------------------------------------------------


def test_stripe_valid() -> None:
    verify_stripe_signature(stripe_headers(), STRIPE_BODY, STRIPE_SECRET, NOW)


def test_stripe_tampered_body() -> None:
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_stripe_signature(stripe_headers(), STRIPE_BODY[:-1], STRIPE_SECRET, NOW)
    assert _reason(exc) == "Invalid signature"


def test_stripe_tampered_timestamp() -> None:
    sig = stripe_headers()["Stripe-Signature"].replace(f"t={NOW_S}", f"t={NOW_S - 1}")
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe_signature({"Stripe-Signature": sig}, STRIPE_BODY, STRIPE_SECRET, NOW)


def test_stripe_wrong_secret() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe_signature(stripe_headers(), STRIPE_BODY, "whsec_other", NOW)


def test_stripe_missing_header() -> None:
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_stripe_signature({}, STRIPE_BODY, STRIPE_SECRET, NOW)
    assert _reason(exc) == "Missing Stripe-Signature header"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("v1=abc", "Missing timestamp in signature"),
        (f"t={NOW_S}", "No v1 signature in Stripe-Signature"),
        (f"t={NOW_S},t={NOW_S},v1=ab", "More than one timestamp in signature"),
        ("t=soon,v1=ab", "Stripe-Signature timestamp is not a Unix timestamp"),
        ("", "Missing timestamp in signature"),
    ],
)
def test_stripe_malformed_header(value: str, reason: str) -> None:
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_stripe_signature({"Stripe-Signature": value}, STRIPE_BODY, STRIPE_SECRET, NOW)
    assert _reason(exc) == reason


def test_stripe_several_candidates_one_valid() -> None:
    good = stripe_headers()["Stripe-Signature"]
    bad = _hex("whsec_old", f"{NOW_S}.".encode() + STRIPE_BODY)
    value = good.replace(",v1=", f",v1={bad},v0=ignored,v1=")
    verify_stripe_signature({"Stripe-Signature": value}, STRIPE_BODY, STRIPE_SECRET, NOW)
    only_bad = f"t={NOW_S},v1={bad},v0={good.split('v1=')[1]}"
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe_signature({"Stripe-Signature": only_bad}, STRIPE_BODY, STRIPE_SECRET, NOW)


def test_stripe_stale_timestamp_refused() -> None:
    """Stricter than the reference (no tolerance there): Stripe's 300 s default applies."""
    stale = stripe_headers(ts=NOW_S - 301)
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_stripe_signature(stale, STRIPE_BODY, STRIPE_SECRET, NOW)
    assert "tolerance" in _reason(exc)
    verify_stripe_signature(stripe_headers(ts=NOW_S - 300), STRIPE_BODY, STRIPE_SECRET, NOW)
    later = NOW + timedelta(seconds=301)
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe_signature(stripe_headers(), STRIPE_BODY, STRIPE_SECRET, later)
    verify_stripe_signature(stale, STRIPE_BODY, STRIPE_SECRET, NOW, tolerance_s=600)
    verify_stripe_signature(stale, STRIPE_BODY, STRIPE_SECRET, None, tolerance_s=None)


def test_stripe_future_timestamp_refused() -> None:
    future = stripe_headers(ts=NOW_S + 301)
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe_signature(future, STRIPE_BODY, STRIPE_SECRET, NOW)


def test_stripe_tolerance_without_now_is_a_bug() -> None:
    with pytest.raises(ValueError, match="now"):
        verify_stripe_signature(stripe_headers(), STRIPE_BODY, STRIPE_SECRET, None)


def test_stripe_uppercase_header_name() -> None:
    headers = {"STRIPE-SIGNATURE": stripe_headers()["Stripe-Signature"]}
    verify_stripe_signature(headers, STRIPE_BODY, STRIPE_SECRET, NOW)
    lower = {"stripe-signature": stripe_headers()["Stripe-Signature"]}
    verify_stripe_signature(lower, STRIPE_BODY, STRIPE_SECRET, NOW)


def test_stripe_signs_raw_bytes() -> None:
    """A body that is not UTF-8 is signed over its bytes (the reference used lossy UTF-8)."""
    body = b'{"type":"x","data":{"object":{}},"n":"\xff"}'
    verify_stripe_signature(stripe_headers(body), body, STRIPE_SECRET, NOW)


def test_multidict_headers_from_aiohttp() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    headers = CIMultiDictProxy(CIMultiDict(stripe_headers()))
    verify_stripe_signature(headers, STRIPE_BODY, STRIPE_SECRET, NOW)


# -- event parsing ------------------------------------------------------------------------


def test_parse_revolut_event() -> None:
    assert parse_revolut_event(REVOLUT_BODY) == (
        "ORDER_COMPLETED",
        "6516e61c-d279-a454-a837-bc52ce55ed49",
    )
    with_ref = {"event": "ORDER_COMPLETED", "order_id": "o1", "merchant_order_ext_ref": "r1"}
    assert parse_revolut_event(json.dumps(with_ref).encode()) == ("ORDER_COMPLETED", "r1")
    empty_ref = {"event": "ORDER_CANCELLED", "order_id": "o1", "merchant_order_ext_ref": ""}
    assert parse_revolut_event(json.dumps(empty_ref).encode()) == ("ORDER_CANCELLED", "o1")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"order_id":"o1"}',
        b'{"event":"ORDER_COMPLETED"}',
        b'{"event":"ORDER_COMPLETED","order_id":5}',
    ],
)
def test_parse_revolut_event_malformed(body: bytes) -> None:
    with pytest.raises(WebhookPayloadInvalid):
        parse_revolut_event(body)


def test_parse_stripe_event() -> None:
    assert parse_stripe_event(STRIPE_BODY) == ("payment_intent.succeeded", "pi_123")
    bare = {"type": "payment_intent.canceled", "data": {"object": {"id": "pi_9"}}}
    assert parse_stripe_event(json.dumps(bare).encode()) == ("payment_intent.canceled", "pi_9")
    charge = {"type": "charge.succeeded", "data": {"object": {"id": "ch_1", "object": "charge"}}}
    assert parse_stripe_event(json.dumps(charge).encode()) == ("charge.succeeded", None)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00",
        b'"x"',
        b'{"data":{"object":{}}}',
        b'{"type":"payment_intent.succeeded"}',
        b'{"type":"payment_intent.succeeded","data":{"object":{"object":"payment_intent"}}}',
    ],
)
def test_parse_stripe_event_malformed(body: bytes) -> None:
    with pytest.raises(WebhookPayloadInvalid):
        parse_stripe_event(body)


@pytest.mark.parametrize("digits", [17, 400, 5000])
def test_huge_timestamps_refused_as_unauthorised(digits: int) -> None:
    """A timestamp of hundreds or thousands of digits is a 401 like any bad timestamp, never an
    overflow or conversion error (which would answer 500)."""
    huge = "9" * digits
    revolut = revolut_headers()
    revolut["Revolut-Request-Timestamp"] = huge
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_revolut_signature(revolut, REVOLUT_BODY, REVOLUT_SECRET, NOW)
    assert _reason(exc) == "Revolut-Request-Timestamp is not a Unix timestamp"
    stripe = {"Stripe-Signature": f"t={huge},v1=ab"}
    with pytest.raises(WebhookSignatureInvalid) as exc:
        verify_stripe_signature(stripe, STRIPE_BODY, STRIPE_SECRET, NOW)
    assert _reason(exc) == "Stripe-Signature timestamp is not a Unix timestamp"
