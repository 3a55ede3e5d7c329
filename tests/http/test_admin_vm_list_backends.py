"""`GET /api/admin/v1/vms` as the LNVPS admin UI calls it, on every storage backend: filters
combined, totals across pages, soft-deleted VMs with `include_deleted=true`, bad parameters."""

from __future__ import annotations

from typing import Any

import attrs

from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import order, paid_vm, user_of
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "c", "database"]

ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)


async def _get(admin: ApiClient, query: str) -> tuple[int, Any]:
    resp = await admin.call("GET", "/api/admin/v1/vms" + query, key=ROOT)
    return resp.status, await resp.json()


async def _ids(admin: ApiClient, query: str) -> tuple[list[int], int]:
    status, body = await _get(admin, query)
    assert status == 200, body
    return [v["id"] for v in body["data"]], body["total"]


async def _move(c: ApiClient, vm_id: int, host_id: int) -> None:
    async with c.api.store() as uow:
        vm = await uow.vms.get(vm_id)
        assert vm is not None
        await uow.vms.update(attrs.evolve(vm, host_id=host_id))
        await uow.commit()


async def _other_host(c: ApiClient) -> tuple[int, int]:
    """The demo's second host (in the closed region) and that region."""
    async with c.api.store() as uow:
        [host] = [h for h in await uow.hosts.list_all() if h.id != c.demo.host]
    return host.id, host.region_id


async def _delete(c: ApiClient, vm_id: int) -> None:
    async with c.api.store() as uow:
        await uow.vms.delete(vm_id)
        await uow.commit()


async def test_deleted_vms_are_listed_when_asked_for_and_rendered_whole(
    c: ApiClient, admin: ApiClient
) -> None:
    live = await paid_vm(c, ALICE)
    gone = await paid_vm(c, ALICE)
    await _delete(c, gone["id"])
    assert await _ids(admin, "") == ([live["id"]], 1)
    assert await _ids(admin, "?include_deleted=false") == ([live["id"]], 1)
    status, body = await _get(admin, "?include_deleted=true")
    assert status == 200 and body["total"] == 2
    assert [(v["id"], v["deleted"]) for v in body["data"]] == [
        (gone["id"], True),
        (live["id"], False),
    ]
    shown = body["data"][0]
    assert shown["user_pubkey"] == ALICE.pubkey_hex and shown["host_name"] == "dub1"
    assert shown["region_name"] == "Dublin" and shown["subscription"]["is_setup"] is True
    one = await admin.call("GET", f"/api/admin/v1/vms/{gone['id']}", key=ROOT)
    assert (await one.json())["data"] == shown  # the list renders it as the VM page does


async def test_filters_combine_and_totals_hold_across_pages(c: ApiClient, admin: ApiClient) -> None:
    a1 = (await order(c, ALICE))["id"]
    a2 = (await order(c, ALICE))["id"]
    b1 = (await order(c, BOB))["id"]
    b2 = (await order(c, BOB))["id"]
    other_host, other_region = await _other_host(c)
    await _move(c, a2, other_host)
    await _delete(c, b2)
    alice = (await user_of(c.api, ALICE)).id
    bob = (await user_of(c.api, BOB)).id
    dublin = c.demo.region
    cases = {
        f"?user_id={alice}": [a2, a1],
        f"?pubkey={BOB.pubkey_hex}": [b1],
        f"?pubkey={BOB.pubkey_hex.upper()}&include_deleted=true": [b2, b1],
        f"?pubkey={ALICE.pubkey_hex}&user_id={bob}": [],
        f"?pubkey={ALICE.pubkey_hex}&user_id={alice}&region_id={dublin}": [a1],
        f"?host_id={c.demo.host}": [b1, a1],
        f"?host_id={c.demo.host}&include_deleted=true": [b2, b1, a1],
        f"?region_id={other_region}": [a2],
        f"?region_id={other_region}&host_id={c.demo.host}": [],
        f"?user_id={bob}&region_id={dublin}&include_deleted=true": [b2, b1],
        "?pubkey=" + "00" * 32: [],
        "?pubkey=": [b1, a2, a1],  # an empty key filters nothing, as the admin UI may send it
    }
    for query, expected in cases.items():
        assert await _ids(admin, query) == (expected, len(expected)), query
    every = [b2, b1, a2, a1]  # id descending
    for offset in range(5):
        page = await _ids(admin, f"?include_deleted=true&limit=2&offset={offset}")
        assert page == (every[offset : offset + 2], 4), offset
    assert await _ids(admin, f"?user_id={alice}&limit=1&offset=1") == ([a1], 2)
    assert await _ids(admin, "?offset=100") == ([], 3)


async def test_bad_parameters_are_refused_with_a_clear_message(
    c: ApiClient, admin: ApiClient
) -> None:
    """Ids and `include_deleted` that do not parse are 400 naming the parameter (a filter
    dropped silently would list every VM); a pubkey that is not hex matches no user: an
    empty page, total 0, as the reference's lookup of it gives."""
    await order(c, ALICE)
    for query, message in (
        ("?user_id=-1", "user_id must be a whole number from 1 to"),
        ("?user_id=0", "user_id must be a whole number from 1 to"),
        ("?host_id=abc", "host_id must be a whole number from 1 to"),
        ("?region_id=1.5", "region_id must be a whole number from 1 to"),
        ("?include_deleted=yes", "include_deleted must be true or false"),
        ("?include_deleted=1", "include_deleted must be true or false"),
        ("?limit=-1", "limit must be a whole number from 0 to"),
        ("?offset=x", "offset must be a whole number from 0 to"),
    ):
        status, body = await _get(admin, query)
        assert status == 400 and body["error"].startswith(message), (query, body)
    for pubkey in ("zz", "abc", "npub1xyz"):
        assert await _ids(admin, f"?pubkey={pubkey}") == ([], 0), pubkey
