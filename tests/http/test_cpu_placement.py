"""Over HTTP: an offer whose CPU no host of its region has is neither listed nor ordered (422,
"No available hosts found", nothing created) until such a host comes; its VM is built there."""

from __future__ import annotations

from typing import Any

import attrs

from domain.enums import CpuMfg
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.test_unpaid_room import _custom, _tiny, _vm_count
from tests.http.vm_helpers import build
from tests.unit.billing.world import add_host

GIB = 1024**3


async def _ask_for_intel(c: ApiClient) -> None:
    """The Tiny template and the Dublin custom pricing made Intel-only (the demo host is AMD)."""
    async with c.api.store() as uow:
        tiny = await uow.templates.get(c.demo.tiny)
        pricing = await uow.custom_pricing.get(c.demo.custom)
        assert tiny is not None and pricing is not None
        await uow.templates.update(attrs.evolve(tiny, cpu_mfg=CpuMfg.INTEL))
        await uow.custom_pricing.update(attrs.evolve(pricing, cpu_mfg=CpuMfg.INTEL))
        await uow.commit()


async def _listed(c: ApiClient) -> tuple[list[int], list[int]]:
    """The ids of the listed templates and custom pricings."""
    resp = await c.call("GET", "/api/v1/vm/templates", signed=False)
    data: dict[str, Any] = (await resp.json())["data"]
    return [t["id"] for t in data["templates"]], [p["id"] for p in data["custom_template"]]


async def test_an_offer_whose_cpu_its_region_lacks_is_not_listed_nor_ordered() -> None:
    """Until a host of that CPU comes, the order is refused as if the region were full."""
    async with api_client(build()) as c:
        await _ask_for_intel(c)
        assert await _listed(c) == ([c.demo.yearly], [])  # Yearly asks for AMD: still there

        for refused in (await _custom(c, ALICE, 2, 4 * GIB), await _tiny(c, BOB)):
            assert refused.status == 422
            assert await refused.json() == {"error": "No available hosts found"}
        assert await _vm_count(c) == 0

        async with c.api.store() as uow:
            host = await add_host(uow, region_id=c.demo.region, name="dub2", ip="10.0.0.2")
            await uow.hosts.update(attrs.evolve(host, cpu_mfg=CpuMfg.INTEL))
            await uow.commit()
        assert await _listed(c) == ([c.demo.tiny, c.demo.yearly], [c.demo.custom])

        ordered = await _custom(c, ALICE, 2, 4 * GIB)
        assert ordered.status == 200, await ordered.text()
        async with c.api.store() as uow:
            vm = await uow.vms.get((await ordered.json())["data"]["id"])
        assert vm is not None and vm.host_id == host.id
