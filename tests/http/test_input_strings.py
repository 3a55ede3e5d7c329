"""Strings at the HTTP edge (issue 8 §4): each POST/PATCH string field has a length and a form,
refused with 400 and nothing stored, on every backend (MariaDB refused over-long values with
a 500; SQLite and memory stored them as sent)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.model import IpAssignment
from tests.http.apiapp import ALICE, SSH_PUBLIC_KEY, ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import order, paid_vm

__all__ = ["admin", "backend", "c", "database"]

KEY_TYPE, KEY_BLOB, _ = SSH_PUBLIC_KEY.split(" ", 2)
ACCOUNT = "/api/v1/account"
ADDRESS = "185.18.221.14"
BASE = {"contact_nip17": True, "contact_email": False}


async def refused(resp: Any) -> str:
    assert resp.status == 400, await resp.text()
    message: str = (await resp.json())["error"]
    return message


# --- reverse DNS ----------------------------------------------------------------------------


async def vm_with_address(c: ApiClient) -> int:
    vm = await paid_vm(c, ALICE)
    async with c.api.store() as uow:
        await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=vm["id"], ip_range_id=c.demo.ip4_range, ip=ADDRESS)
        )
        await uow.commit()
    vm_id: int = vm["id"]
    return vm_id


async def reverse_dns(c: ApiClient, vm_id: int) -> set[str | None]:
    """The PTR names of the VM's addresses (one, or more if payment assigned some)."""
    got = (await (await c.call("GET", f"/api/v1/vm/{vm_id}")).json())["data"]
    assert got["ip_assignments"]
    return {a["reverse_dns"] for a in got["ip_assignments"]}


@pytest.mark.parametrize(
    "name",
    [
        "a" * 900_000,
        "<script>alert(1)</script>.example",
        "vm .example",
        "-vm.example",
        "vm-.example",
        "vm..example",
        ("a" * 63 + ".") * 4 + "a",  # 257 characters
        "x" * 64 + ".example",
        "vm.example\nevil.example",
        "bücher.example",
    ],
)
async def test_reverse_dns_must_be_a_host_name(c: ApiClient, name: str) -> None:
    vm_id = await vm_with_address(c)
    path = f"/api/v1/vm/{vm_id}"
    assert (await c.call("PATCH", path, json={"reverse_dns": "vm1.example"})).status == 200
    message = await refused(
        await c.call("PATCH", path, json={"reverse_dns": name, "auto_renewal_enabled": True})
    )
    assert "reverse_dns" in message
    assert await reverse_dns(c, vm_id) == {"vm1.example"}
    got = (await (await c.call("GET", path)).json())["data"]
    assert got["auto_renewal_enabled"] is False  # nothing of the refused PATCH was applied


async def test_reverse_dns_accepts_long_valid_names_and_clears_with_empty(c: ApiClient) -> None:
    vm_id = await vm_with_address(c)
    path = f"/api/v1/vm/{vm_id}"
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    for name in (longest, longest + ".", "Mail-1.Example.COM", "1.2.3.in-addr.arpa"):
        assert (await c.call("PATCH", path, json={"reverse_dns": name})).status == 200, name
        assert await reverse_dns(c, vm_id) == {name}
    assert (await c.call("PATCH", path, json={"reverse_dns": ""})).status == 200
    assert await reverse_dns(c, vm_id) == {None}


# --- SSH keys -------------------------------------------------------------------------------


async def stored_keys(c: ApiClient) -> list[str]:
    user_id = await c.user_id()
    async with c.api.store() as uow:
        keys = [k.key_data for k in await uow.ssh_keys.list_by_user(user_id)]
    assert all(isinstance(k, str) for k in keys)
    return [str(k) for k in keys]


@pytest.mark.parametrize(
    "key_data",
    [
        f"{SSH_PUBLIC_KEY}\n{SSH_PUBLIC_KEY.replace('demo@host', 'second@key')}",
        f"{KEY_TYPE} {KEY_BLOB} me\nssh-rsa AAAA injected",
        f"{KEY_TYPE} {KEY_BLOB} {'c' * 900_000}",
        f"{KEY_TYPE} {KEY_BLOB} {'c' * 101}",
        f"{KEY_TYPE} {KEY_BLOB} bell\x07",
        f"{KEY_TYPE} {KEY_BLOB[:-8]}",  # a truncated key
        f"ssh-rsa {KEY_BLOB}",  # blob names another type
        f"{KEY_TYPE} not-base64!",
        'command="/bin/sh" ' + SSH_PUBLIC_KEY,
    ],
)
async def test_ssh_keys_that_are_not_one_openssh_line_are_refused(
    c: ApiClient, key_data: str
) -> None:
    message = await refused(
        await c.call("POST", "/api/v1/ssh-key", json={"name": "x", "key_data": key_data})
    )
    assert message.startswith("Invalid SSH public key format")
    assert await stored_keys(c) == []


async def test_ssh_keys_are_stored_normalised(c: ApiClient) -> None:
    public = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    kind, blob = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode().split()
    sent = f"  {kind}\t{blob}   me@laptop  \r\n"
    resp = await c.call("POST", "/api/v1/ssh-key", json={"name": "", "key_data": sent})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["name"] == "me@laptop"
    assert await stored_keys(c) == [f"{kind} {blob} me@laptop"]


async def test_ssh_key_name_is_one_bounded_line(c: ApiClient) -> None:
    for name in ("n" * 101, "two\nlines"):
        message = await refused(
            await c.call("POST", "/api/v1/ssh-key", json={"name": name, "key_data": SSH_PUBLIC_KEY})
        )
        assert "name" in message
    assert await stored_keys(c) == []


# --- account --------------------------------------------------------------------------------


async def account(c: ApiClient) -> dict[str, Any]:
    data: dict[str, Any] = (await (await c.call("GET", ACCOUNT)).json())["data"]
    return data


@pytest.mark.parametrize("code", ["XX", "ZZZ", "Ireland", "I" * 900_000, "I E", "12"])
async def test_unknown_country_codes_are_refused(c: ApiClient, code: str) -> None:
    assert (await c.call("PATCH", ACCOUNT, json={**BASE, "country_code": "IE"})).status == 200
    message = await refused(
        await c.call("PATCH", ACCOUNT, json={**BASE, "country_code": code, "name": "Changed"})
    )
    assert "country code" in message.lower()
    got = await account(c)
    assert (got["country_code"], got["name"]) == ("IRL", None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "n" * 201),
        ("name", "Alice\nBcc: evil@example.com"),
        ("address_1", "a" * 900_000),
        ("address_2", "line\x00"),
        ("city", "c" * 101),
        ("state", "Tab\there"),
        ("postcode", "p" * 51),
        ("tax_id", "t" * 51),
        ("email", "alice@example.com\r\nBcc: x@y.z"),
        ("email", "a" * 250 + "@x.com"),
        ("nwc_connection_string", "nostr+walletconnect://" + "a" * 5000),
        (
            "nwc_connection_string",
            "nostr+walletconnect://" + "ab" * 32 + "?relay=wss://r\n&secret=" + "cd" * 32,
        ),
    ],
)
async def test_account_text_fields_have_a_length_and_a_form(
    c: ApiClient, field: str, value: str
) -> None:
    before = await account(c)
    await refused(await c.call("PATCH", ACCOUNT, json={**BASE, field: value}))
    assert await account(c) == before


# --- order and subscription strings -----------------------------------------------------------


@pytest.mark.parametrize("ref_code", ["r" * 21, "has space", "tab\t", "x" * 900_000])
async def test_ref_code_is_bounded(c: ApiClient, ref_code: str) -> None:
    vm = await order(c, ALICE)  # the user and a key exist
    body = {
        "template_id": c.demo.tiny,
        "image_id": c.demo.ubuntu,
        "ssh_key_id": vm["ssh_key"]["id"],
        "ref_code": ref_code,
    }
    assert "ref_code" in await refused(await c.call("POST", "/api/v1/vm", json=body))
    assert len((await (await c.call("GET", "/api/v1/vm")).json())["data"]) == 1


async def test_ref_code_of_twenty_characters_is_stored(c: ApiClient) -> None:
    vm = await order(c, ALICE, ref_code="R" * 20)
    async with c.api.store() as uow:
        stored = await uow.vms.get(vm["id"])
    assert stored is not None and stored.ref_code == "R" * 20


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n" * 201},
        {"name": "two\nlines"},
        {"description": "d" * 10_001},
        {"description": "nul\x00"},
        {"currency": "E" * 900_000},
    ],
)
async def test_subscription_strings_are_bounded(c: ApiClient, body: dict[str, Any]) -> None:
    items = [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}]
    await refused(await c.call("POST", "/api/v1/subscriptions", json={"line_items": items, **body}))
    listed = await (await c.call("GET", "/api/v1/subscriptions")).json()
    assert listed["total"] == 0


async def test_dns_hosting_domain_must_be_a_host_name(c: ApiClient) -> None:
    items = [{"type": "dns_hosting", "domain": "<b>x</b>"}]
    message = await refused(
        await c.call("POST", "/api/v1/subscriptions", json={"line_items": items})
    )
    assert "domain" in message


# --- any JSON body ----------------------------------------------------------------------------


async def test_lone_surrogates_in_json_bodies_are_400(c: ApiClient, admin: ApiClient) -> None:
    """Valid JSON, but no UTF-8 text: SQLite and MariaDB raised UnicodeEncodeError (500)."""
    json_type = {"Content-Type": "application/json"}
    resp = await admin.call(
        "POST",
        "/api/admin/v1/roles",
        key=ROOT,
        headers=json_type,
        data=b'{"name": "\\ud800", "permissions": []}',
    )
    assert "JSON" in await refused(resp)
    resp = await admin.call(
        "POST",
        "/api/admin/v1/roles",
        key=ROOT,
        headers=json_type,
        data=b'{"name": "ok", "permissions": [], "\\udcff": 1}',
    )
    assert "JSON" in await refused(resp)
    resp = await c.call(
        "PATCH",
        ACCOUNT,
        headers=json_type,
        data=b'{"contact_nip17": true, "contact_email": false, "city": "\\ud83d"}',
    )
    await refused(resp)
    async with c.api.store() as uow:
        names = {r.name for r in (await uow.roles.list_roles(100, 0)).items}
    assert names == {"super_admin", "read_only"}


async def test_admin_role_names_are_bounded_and_unique(c: ApiClient, admin: ApiClient) -> None:
    """`admin_roles.name` is VARCHAR(50), unique: a duplicate was an IntegrityError (500)."""
    path = "/api/admin/v1/roles"
    assert "name" in await refused(
        await admin.call("POST", path, key=ROOT, json={"name": "r" * 51, "permissions": []})
    )
    assert (
        await admin.call("POST", path, key=ROOT, json={"name": "ops", "permissions": []})
    ).status == 200
    again = await admin.call("POST", path, key=ROOT, json={"name": "ops", "permissions": []})
    assert again.status == 409 and "ops" in (await again.json())["error"]
    async with c.api.store() as uow:
        names = [r.name for r in (await uow.roles.list_roles(100, 0)).items]
    assert sorted(names) == ["ops", "read_only", "super_admin"]


async def test_assigning_an_unknown_role_is_404(c: ApiClient, admin: ApiClient) -> None:
    """The SQL foreign key refused the row with an IntegrityError (500); memory stored it."""
    user_id = await c.user_id()
    resp = await admin.call(
        "POST", f"/api/admin/v1/users/{user_id}/roles", key=ROOT, json={"role_id": 424242}
    )
    assert resp.status == 404 and await resp.json() == {"error": "Role not found"}
    async with c.api.store() as uow:
        assert await uow.roles.assignments_of(user_id) == []
