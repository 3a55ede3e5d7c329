"""The admin OpenAPI document describes the catalogue payloads exactly (required ⊆ keys ⊆
properties), for rows with every optional field set and with none."""

from __future__ import annotations

from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.http.admin.test_admin_schemas import check


async def test_catalogue_payloads_match_the_document(world: AdminWorld) -> None:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    demo = world.user.demo
    host = (await world.ok("POST", "/hosts", json=b.host(demo)))["data"]["id"]
    full = b.template(
        demo,
        disk_iops_read=1,
        disk_iops_write=2,
        disk_mbps_read=3,
        disk_mbps_write=4,
        network_mbps=5,
        cpu_limit=0.5,
        cpu_mfg="amd",
        cpu_arch="x86_64",
        cpu_features=["AVX"],
    )
    await world.ok("POST", "/vm_templates", json=full)
    await world.ok("POST", "/custom_pricing", json={**b.pricing(demo), "cpu_mfg": "intel"})
    s = demo.ip4_space
    for path, template in (
        ("/companies", "/companies"),
        (f"/companies/{demo.company}", "/companies/{id}"),
        ("/regions", "/regions"),
        (f"/regions/{demo.region}", "/regions/{id}"),
        (f"/regions/{demo.region}/stats", "/regions/{id}/stats"),
        ("/hosts", "/hosts"),
        (f"/hosts/{host}", "/hosts/{id}"),
        (f"/hosts/{demo.host}/disks", "/hosts/{id}/disks"),
        (f"/hosts/{demo.host}/disks/{demo.ssd}", "/hosts/{id}/disks/{disk_id}"),
        ("/cost_plans", "/cost_plans"),
        (f"/cost_plans/{demo.tiny_plan}", "/cost_plans/{id}"),
        ("/vm_templates", "/vm_templates"),
        (f"/vm_templates/{demo.yearly}", "/vm_templates/{id}"),
        ("/custom_pricing", "/custom_pricing"),
        (f"/custom_pricing/{demo.custom}", "/custom_pricing/{id}"),
        ("/vm_os_images", "/vm_os_images"),
        (f"/vm_os_images/{demo.ubuntu}", "/vm_os_images/{id}"),
        ("/ip_space", "/ip_space"),
        (f"/ip_space/{s}", "/ip_space/{id}"),
        (f"/ip_space/{s}/pricing", "/ip_space/{id}/pricing"),
        (f"/ip_space/{s}/pricing/{demo.ip4_tier_24}", "/ip_space/{id}/pricing/{pricing_id}"),
        (f"/ip_space/{s}/subscriptions", "/ip_space/{id}/subscriptions"),
    ):
        await check(world, doc, "GET", path, template)
    await check(world, doc, "POST", "/companies", "/companies", json=b.company())
    await check(world, doc, "POST", "/vm_os_images", "/vm_os_images", json=b.image())
    await check(
        world, doc, "POST", f"/vm_os_images/{demo.ubuntu}/download", "/vm_os_images/{id}/download"
    )
    await check(world, doc, "DELETE", f"/vm_templates/{demo.retired}", "/vm_templates/{id}")
    await check(
        world,
        doc,
        "POST",
        f"/custom_pricing/{demo.custom}/copy",
        "/custom_pricing/{id}/copy",
        json={"name": "c"},
    )
    await check(world, doc, "DELETE", f"/ip_space/{demo.reserved_space}", "/ip_space/{id}")
