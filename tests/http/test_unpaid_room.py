"""Over HTTP: D25's room limits on never-paid orders answer 422 and create nothing."""

from __future__ import annotations

from typing import Any

import attrs

from adapters.http.context import SERVICES
from domain.model import GIB, IpRange
from domain.unpaid_room import UnpaidRoom
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
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


async def _tiny(c: ApiClient, key: NostrKey) -> Any:
    ssh = await add_key(c.api, key, name="tiny")
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    return await c.call("POST", "/api/v1/vm", key=key, json=body)


async def test_an_order_the_regions_ipv4_pool_cannot_address_is_422() -> None:
    """The region's last IPv4 address is held by an unpaid order in its hour: the next order
    is refused like a full host and creates nothing; a new range lets it through."""
    async with api_client(build()) as c:
        async with c.api.store() as uow:
            ip4 = await uow.ip_ranges.get(c.demo.ip4_range)
            assert ip4 is not None  # a /30 whose .1 is the gateway: .2 only
            await uow.ip_ranges.update(attrs.evolve(ip4, cidr="185.18.221.0/30"))
            await uow.commit()
        first = await _tiny(c, ALICE)
        assert first.status == 200, await first.text()

        refused = await _tiny(c, BOB)
        assert refused.status == 422
        assert await refused.json() == {"error": "No available hosts found"}
        assert await _vm_count(c) == 1

        async with c.api.store() as uow:
            await uow.ip_ranges.add(
                IpRange(  # five addresses more: unpaid orders may be promised half of six
                    id=0,
                    cidr="185.18.222.0/29",
                    enabled=True,
                    region_id=c.demo.region,
                    gateway="185.18.222.1",
                )
            )
            await uow.commit()
        again = await _tiny(c, BOB)
        assert again.status == 200, await again.text()
