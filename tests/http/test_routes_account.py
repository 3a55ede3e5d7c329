"""Account and SSH-key routes with real NIP-98 events: shapes, PATCH tri-state, e-mail, keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from adapters.http.openapi import documented_operations, served_operations
from adapters.http.routes_account import add_account_routes
from domain.unreadable import Unreadable
from ports.jobs import SendEmailVerification
from tests.http.apiapp import ALICE, BOB, SSH_PUBLIC_KEY, ApiClient, api_client, build_api_app
from tests.nostr_signing import NostrKey

ACCOUNT = "/api/v1/account"
FRESH: dict[str, Any] = {
    "contact_nip17": True,
    "contact_email": False,
    "country_code": None,
    "name": None,
    "address_1": None,
    "address_2": None,
    "state": None,
    "city": None,
    "postcode": None,
    "tax_id": None,
    "nwc_connection_string": None,
    "credit": [],
}
NWC = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Frelay.example&secret=" + "cd" * 32
MASKED = "nostr+walletconnect://abab\u2026"
ONE_ADDRESS = (
    "Invalid email address: give one plain address (name@example.com), no list, name or spaces"
)


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build_api_app()) as client:
        yield client


async def account(c: ApiClient, key: Any = ALICE) -> dict[str, Any]:
    resp = await c.call("GET", ACCOUNT, key=key)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def patch(c: ApiClient, body: Any, key: Any = ALICE) -> tuple[int, Any]:
    resp = await c.call("PATCH", ACCOUNT, key=key, json=body)
    return resp.status, await resp.json()


async def pending_jobs(c: ApiClient) -> list[Any]:
    return [d.job for d in await c.api.queue.receive(max_jobs=50, block_ms=0)]


# --- GET / auth ---------------------------------------------------------------------------------


async def test_a_fresh_account_has_the_documented_shape(c: ApiClient) -> None:
    data = await account(c)
    assert data == FRESH
    assert list(data) == list(FRESH)  # reference order; no email keys without an address


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": ""}, 401), ({"Authorization": "Nostr xyz%"}, 401)],
)
async def test_auth_refusals_are_json(c: ApiClient, headers: dict[str, str], status: int) -> None:
    for method, path in (
        ("GET", ACCOUNT),
        ("PATCH", ACCOUNT),
        ("GET", "/api/v1/ssh-key"),
        ("POST", "/api/v1/ssh-key"),
    ):
        resp = await c.call(method, path, signed=False, headers=headers)
        assert resp.status == status, (method, path)
        assert "error" in await resp.json()


async def test_a_signature_for_another_method_is_refused(c: ApiClient) -> None:
    resp = await c.client.patch(ACCOUNT, json=FRESH, headers=c.auth(ACCOUNT, "GET"))
    assert resp.status == 401


# --- PATCH --------------------------------------------------------------------------------------


async def test_echoing_the_get_output_back_succeeds_and_changes_nothing(c: ApiClient) -> None:
    before = await account(c)
    assert await patch(c, before) == (200, {"data": None})
    assert await account(c) == before


async def test_patch_tri_state_absent_keeps_null_clears_value_sets(c: ApiClient) -> None:
    base = {"contact_nip17": True, "contact_email": False}
    await patch(c, {**base, "name": "Alice", "city": "Dublin", "postcode": "D01"})
    assert await patch(c, {**base, "city": None}) == (200, {"data": None})
    data = await account(c)
    assert (data["name"], data["city"], data["postcode"]) == ("Alice", None, "D01")


async def test_contact_flags_are_required_booleans(c: ApiClient) -> None:
    status, body = await patch(c, {"contact_nip17": True})
    assert (status, body) == (400, {"error": "missing field `contact_email`"})
    status, _ = await patch(c, {"contact_nip17": "yes", "contact_email": False})
    assert status == 400
    status, _ = await patch(c, ["not", "an", "object"])
    assert status == 400
    assert await account(c) == FRESH


async def test_country_codes_are_stored_as_alpha3_and_unknown_ones_refused(c: ApiClient) -> None:
    base = {"contact_nip17": True, "contact_email": False}
    await patch(c, {**base, "country_code": "ie"})
    assert (await account(c))["country_code"] == "IRL"
    await patch(c, {**base, "country_code": "DEU"})
    assert (await account(c))["country_code"] == "DEU"
    status, body = await patch(c, {**base, "country_code": "XX"})
    assert status == 400 and "country code" in body["error"]
    assert (await account(c))["country_code"] == "DEU"  # unchanged
    assert await patch(c, {**base, "country_code": ""}) == (200, {"data": None})
    assert (await account(c))["country_code"] is None


async def test_overlong_fields_and_wrong_types_are_400(c: ApiClient) -> None:
    base = {"contact_nip17": True, "contact_email": False}
    status, body = await patch(c, {**base, "postcode": "9" * 51})
    assert status == 400 and "postcode" in body["error"]
    status, _ = await patch(c, {**base, "name": 12})
    assert status == 400


async def stored_nwc(c: ApiClient) -> str | None:
    async with c.api.store() as uow:
        user = await uow.users.get_by_pubkey(ALICE.pubkey)
    assert user is not None
    assert not isinstance(user.nwc_connection_string, Unreadable)
    return user.nwc_connection_string


async def test_nwc_string_is_checked_stored_shown_masked_and_cleared(c: ApiClient) -> None:
    base = {"contact_nip17": True, "contact_email": False}
    assert await patch(c, {**base, "nwc_connection_string": NWC}) == (200, {"data": None})
    assert await stored_nwc(c) == NWC
    assert (await account(c))["nwc_connection_string"] == MASKED
    status, body = await patch(c, {**base, "nwc_connection_string": "https://wallet"})
    assert status == 400 and body["error"].startswith("Failed to parse NWC url")
    assert await stored_nwc(c) == NWC
    await patch(c, {**base, "nwc_connection_string": ""})
    assert (await account(c))["nwc_connection_string"] is None
    assert await stored_nwc(c) is None


async def test_the_account_never_echoes_the_wallet_secret(c: ApiClient) -> None:
    """D28: the NWC string is a spending credential; a GET shows only a masked form."""
    base = {"contact_nip17": True, "contact_email": False}
    await patch(c, {**base, "nwc_connection_string": NWC})
    resp = await c.call("GET", ACCOUNT)
    text = await resp.text()
    assert "cd" * 32 not in text and "ab" * 32 not in text
    assert (await resp.json())["data"]["nwc_connection_string"] == MASKED


async def test_echoing_the_masked_account_back_keeps_the_stored_wallet(c: ApiClient) -> None:
    """Clients PATCH the whole account they read; its masked wallet string means "unchanged"."""
    base = {"contact_nip17": True, "contact_email": False}
    await patch(c, {**base, "nwc_connection_string": NWC})
    shown = await account(c)
    assert await patch(c, {**shown, "name": "Alice"}) == (200, {"data": None})
    assert await stored_nwc(c) == NWC
    assert (await account(c))["name"] == "Alice"


async def test_tax_id_is_stored_trimmed(c: ApiClient) -> None:
    base = {"contact_nip17": True, "contact_email": False}
    await patch(c, {**base, "tax_id": " IE1234567T "})
    assert (await account(c))["tax_id"] == "IE1234567T"


# --- e-mail -------------------------------------------------------------------------------------


async def test_setting_an_email_queues_verification_and_the_link_verifies_once(
    c: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = await c.user_id()
    with caplog.at_level(logging.INFO, logger="lnvps.http"):
        status, _ = await patch(c, {**await account(c), "email": "alice@example.com"})
    assert status == 200
    data = await account(c)
    assert (data["email"], data["email_verified"]) == ("alice@example.com", False)
    assert list(data)[:2] == ["email", "email_verified"]
    [job] = await pending_jobs(c)
    assert job == SendEmailVerification(user_id=user_id)
    async with c.api.store() as uow:
        user = await uow.users.get(user_id)
    assert user is not None and len(user.email_verify_token) == 64
    link = f"https://api.lnvps.test/api/v1/account/verify-email?token={user.email_verify_token}"
    assert link in caplog.text  # D22: dev mode logs the link

    path = f"/api/v1/account/verify-email?token={user.email_verify_token}"
    page = await c.call("GET", path, signed=False)
    assert (page.status, page.content_type) == (200, "text/html")
    assert "Email Verified" in await page.text()
    assert (await account(c))["email_verified"] is True
    again = await c.call("GET", path, signed=False)
    assert again.status == 200 and "Invalid or Expired Link" in await again.text()

    # the same address again: nothing to verify, no new mail
    await patch(c, await account(c))
    assert await pending_jobs(c) == []
    assert (await account(c))["email_verified"] is True


async def test_an_unverified_address_with_a_legacy_token_gets_a_new_one(c: ApiClient) -> None:
    user_id = await c.user_id()
    async with c.api.store() as uow:
        user = await uow.users.get(user_id)
        assert user is not None
        await uow.users.update(
            attrs.evolve(user, email="a@example.com", email_verify_token="ff" * 32)
        )
        await uow.commit()
    await patch(c, {**FRESH, "email": "a@example.com"})
    assert len(await pending_jobs(c)) == 1
    async with c.api.store() as uow:
        token = (await uow.users.get(user_id)).email_verify_token  # type: ignore[union-attr]
    assert token != "ff" * 32
    page = await c.call("GET", f"/api/v1/account/verify-email?token={token}", signed=False)
    assert "Email Verified" in await page.text()
    # a pending token of ours is kept, and mailed again for the same unverified address
    await patch(c, {**FRESH, "email": "b@example.com"})
    await pending_jobs(c)
    async with c.api.store() as uow:
        pending = (await uow.users.get(user_id)).email_verify_token  # type: ignore[union-attr]
    await patch(c, {**FRESH, "email": "b@example.com"})
    assert await pending_jobs(c) == [SendEmailVerification(user_id=user_id)]
    async with c.api.store() as uow:
        assert (await uow.users.get(user_id)).email_verify_token == pending  # type: ignore[union-attr]


async def test_changing_the_address_unverifies_it(c: ApiClient) -> None:
    await patch(c, {**FRESH, "email": "a@example.com"})
    await pending_jobs(c)
    await patch(c, {**FRESH, "email": "b@example.com"})
    data = await account(c)
    assert (data["email"], data["email_verified"]) == ("b@example.com", False)
    assert len(await pending_jobs(c)) == 1


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("  ", "Email address cannot be empty"),
        ("alice-at-example", "Invalid email address"),
        ("a@" + "x" * 260 + ".com", "Email address is longer than 255 characters"),
        ("a@example", "Invalid email address"),
        ("a@@example.com", "Invalid email address"),
        ('a@x.com,b@y.com,"x"<c@z.org>', ONE_ADDRESS),
        ("a@x.com;b@y.com", ONE_ADDRESS),
        ("Alice <a@x.com>", ONE_ADDRESS),
        ('"a b"@x.com', ONE_ADDRESS),
        ("a(comment)@x.com", ONE_ADDRESS),
        ("a\t@x.com", ONE_ADDRESS),
    ],
)
async def test_bad_email_addresses_are_400(c: ApiClient, email: str, error: str) -> None:
    assert await patch(c, {**FRESH, "email": email}) == (400, {"error": error})


async def test_an_address_cannot_be_removed_but_null_without_one_is_fine(c: ApiClient) -> None:
    assert await patch(c, {**FRESH, "email": None}) == (200, {"data": None})
    await patch(c, {**FRESH, "email": "a@example.com"})
    assert await patch(c, {**FRESH, "email": None}) == (
        400,
        {"error": "Email address is required and cannot be removed"},
    )
    assert (await account(c))["email"] == "a@example.com"


async def test_email_notifications_need_an_address(c: ApiClient) -> None:
    assert await patch(c, {**FRESH, "contact_email": True}) == (
        400,
        {"error": "An email address is required to enable email notifications"},
    )
    status, _ = await patch(c, {**FRESH, "contact_email": True, "email": "a@example.com"})
    assert status == 200
    assert (await account(c))["contact_email"] is True


async def test_pulumi_account_patch_helper_flow(c: ApiClient) -> None:
    """Pulumi: GET, set `email`, PATCH the whole object (email_verified and nulls included)."""
    data = await account(c)
    data["email"] = "ops@example.com"
    data["email_verified"] = True  # ignored
    assert await patch(c, data) == (200, {"data": None})
    assert (await account(c))["email_verified"] is False


@pytest.mark.parametrize("token", ["", "zz", "00" * 32, "0000000000000001" + "ab" * 24])
async def test_unknown_tokens_get_the_invalid_page(c: ApiClient, token: str) -> None:
    await c.user_id()
    resp = await c.call("GET", f"/api/v1/account/verify-email?token={token}", signed=False)
    assert (resp.status, resp.content_type) == (200, "text/html")
    assert "Invalid or Expired Link" in await resp.text()


async def test_verify_email_without_a_token_is_400(c: ApiClient) -> None:
    resp = await c.call("GET", "/api/v1/account/verify-email", signed=False)
    assert resp.status == 400 and resp.content_type == "application/json"
    assert "token" in (await resp.json())["error"]


async def test_a_token_of_another_user_does_not_verify_mine(c: ApiClient) -> None:
    await patch(c, {**FRESH, "email": "a@example.com"})
    await patch(c, {**FRESH, "email": "b@example.com"}, key=BOB)
    alice, bob = await c.user_id(ALICE), await c.user_id(BOB)
    async with c.api.store() as uow:
        bob_token = (await uow.users.get(bob)).email_verify_token  # type: ignore[union-attr]
    forged = f"{alice:016x}" + bob_token[16:]
    resp = await c.call("GET", f"/api/v1/account/verify-email?token={forged}", signed=False)
    assert "Invalid or Expired Link" in await resp.text()
    assert (await account(c))["email_verified"] is False


# --- SSH keys -----------------------------------------------------------------------------------


async def test_ssh_keys_add_and_list_without_key_material(c: ApiClient) -> None:
    assert await (await c.call("GET", "/api/v1/ssh-key")).json() == {"data": []}
    resp = await c.call(
        "POST", "/api/v1/ssh-key", json={"name": "laptop", "key_data": SSH_PUBLIC_KEY + "\n"}
    )
    assert resp.status == 200
    key = (await resp.json())["data"]
    assert list(key) == ["id", "name", "created"]
    assert isinstance(key["id"], int) and key["name"] == "laptop"
    assert key["created"] == "2026-06-17T10:00:00Z"
    listed = (await (await c.call("GET", "/api/v1/ssh-key")).json())["data"]
    assert listed == [key]
    user_id = await c.user_id()
    async with c.api.store() as uow:
        [stored] = await uow.ssh_keys.list_by_user(user_id)
    assert stored.key_data == SSH_PUBLIC_KEY


async def test_a_first_request_adding_a_key_creates_its_user_and_the_key_is_theirs(
    c: ApiClient,
) -> None:
    carol = NostrKey.from_seed(4242)
    resp = await c.call(
        "POST", "/api/v1/ssh-key", key=carol, json={"name": "n", "key_data": SSH_PUBLIC_KEY}
    )
    assert resp.status == 200, await resp.text()
    key_id = (await resp.json())["data"]["id"]
    async with c.api.store() as uow:
        user = await uow.users.get_by_pubkey(carol.pubkey)
        assert user is not None
        assert [k.id for k in await uow.ssh_keys.list_by_user(user.id)] == [key_id]


async def test_a_refused_key_from_a_new_caller_still_creates_the_user(c: ApiClient) -> None:
    """As on every authenticated route, the caller's user exists before any refusal."""
    dave = NostrKey.from_seed(4343)
    resp = await c.call("POST", "/api/v1/ssh-key", key=dave, json={"name": "x", "key_data": "no"})
    assert resp.status == 400
    async with c.api.store() as uow:
        user = await uow.users.get_by_pubkey(dave.pubkey)
        assert user is not None
        assert await uow.ssh_keys.list_by_user(user.id) == []


async def test_an_empty_name_takes_the_key_comment(c: ApiClient) -> None:
    resp = await c.call("POST", "/api/v1/ssh-key", json={"name": "", "key_data": SSH_PUBLIC_KEY})
    assert (await resp.json())["data"]["name"] == "demo@host"


async def test_users_never_see_each_others_keys(c: ApiClient) -> None:
    await c.ssh_key_id(ALICE)
    assert await (await c.call("GET", "/api/v1/ssh-key", key=BOB)).json() == {"data": []}


@pytest.mark.parametrize(
    "key_data",
    [
        "not a key",
        "ssh-ed25519",
        "ssh-ed25519 !!!notbase64",
        "ssh-rsa " + SSH_PUBLIC_KEY.split()[1],  # blob names another type
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOh",  # truncated key
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
async def test_invalid_keys_are_400(c: ApiClient, key_data: str) -> None:
    resp = await c.call("POST", "/api/v1/ssh-key", json={"name": "x", "key_data": key_data})
    assert (resp.status, await resp.json()) == (400, {"error": "Invalid SSH public key format"})


async def test_ssh_key_body_rules(c: ApiClient) -> None:
    missing = await c.call("POST", "/api/v1/ssh-key", json={"name": "x"})
    assert (missing.status, await missing.json()) == (400, {"error": "missing field `key_data`"})
    long_name = await c.call(
        "POST", "/api/v1/ssh-key", json={"name": "n" * 101, "key_data": SSH_PUBLIC_KEY}
    )
    assert long_name.status == 400
    wrong_type = await c.call(
        "POST", "/api/v1/ssh-key", data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status == 415


# --- OpenAPI --------------------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_served_account_routes() -> None:
    api = build_api_app(add_account_routes)
    async with api_client(api, seed=False) as client:
        doc = await (await client.call("GET", "/openapi.json", signed=False)).json()
    served = served_operations(api.app)
    assert documented_operations(doc) == served
    assert served - {("GET", "/openapi.json")} == {
        ("GET", ACCOUNT),
        ("PATCH", ACCOUNT),
        ("GET", "/api/v1/account/verify-email"),
        ("GET", "/api/v1/ssh-key"),
        ("POST", "/api/v1/ssh-key"),
        ("GET", "/api/v1/account/credit"),
    }
    assert doc["paths"][ACCOUNT]["patch"]["security"] == [{"nip98": []}]
    assert "security" not in doc["paths"]["/api/v1/account/verify-email"]["get"]
