"""Over HTTP: D25's room limits on never-paid orders answer 422 and create nothing."""

from __future__ import annotations

from typing import Any

import attrs

from adapters.http.context import SERVICES
from domain.model import GIB
from domain.unpaid_room import UnpaidRoom
from tests.http.apiapp import BOB, ApiClient, api_client
from tests.http.vm_helpers import add_key, build, renew, settle
from tests.nostr_signing import NostrKey

#: a free key that tries to order the whole demo host (16 CPU / 64 GiB) and never pay
GRABBER = NostrKey.from_seed(4343)


async def _custom(c: ApiClient, key: NostrKey, cpu: int, memory: int) -> Any:
    ssh = await add_key(c.api, key, name=f"k{cpu}")
    body = {
        "pricing_id": c.demo.custom,
        "cpu": cpu,
        "memory": memory,
        "disk": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "image_id": c.demo.ubuntu,
        "ssh_key_id": ssh.id,
    }
    return await c.call("POST", "/api/v1/vm/custom-template", key=key, json=body)


async def _vm_count(c: ApiClient) -> int:
    async with c.api.store() as uow:
        return len(await uow.vms.list_active())


async def test_a_free_key_ordering_a_whole_host_is_422_and_paying_customers_still_order() -> None:
    """The incident: before the host share this order took the host for about 70 minutes,
    again every hour, and Bob's order got "no capacity"."""
    async with api_client(build()) as c:
        resp = await _custom(c, GRABBER, 16, 64 * GIB)
        assert resp.status == 422
        assert await resp.json() == {"error": "No available hosts found"}
        assert await _vm_count(c) == 0

        half = await _custom(c, GRABBER, 8, 32 * GIB)  # the unpaid half of the host
        assert half.status == 200, await half.text()
        ssh = await add_key(c.api, BOB, name="bob")
        body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
        full = await c.call("POST", "/api/v1/vm", key=BOB, json=body)
        assert full.status == 422  # Bob's order is unpaid too: the unpaid half is taken
        assert await _vm_count(c) == 1

        vm_id = (await half.json())["data"]["id"]
        await settle(c.api, (await renew(c, GRABBER, vm_id))["id"])  # paid: the other half
        again = await c.call("POST", "/api/v1/vm", key=BOB, json=body)
        assert again.status == 200, await again.text()


async def test_an_order_past_the_buyers_unpaid_room_is_422_with_the_reason() -> None:
    api = build()
    small = UnpaidRoom(cpu=4, memory=16 * GIB, disk=None)
    api.services = attrs.evolve(api.services, unpaid_room=small)
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        for _ in range(2):
            resp = await _custom(c, GRABBER, 2, 4 * GIB)
            assert resp.status == 200, await resp.text()
        resp = await _custom(c, GRABBER, 2, 12 * GIB)
        assert resp.status == 422
        assert (await resp.json())["error"] == (
            "Your unpaid orders would hold 6 vCPUs (at most 4), 20 GiB memory (at most 16 GiB):"
            " pay for an order, choose a smaller VM, or wait until unpaid orders are removed"
            " (one hour after ordering)"
        )
        assert await _vm_count(c) == 2
        other = await _custom(c, NostrKey.from_seed(4344), 2, 4 * GIB)  # a budget per buyer
        assert other.status == 200, await other.text()
