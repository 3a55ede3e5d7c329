"""Every admin catalogue route: 403 naming its permission without it, 404 for unknown ids,
400 for a malformed body, and nothing changed by a refused request."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import NOBODY, VIEWER, AdminWorld
from tests.http.demo_catalogue import Demo

U = 999_999
#: (method, path with {…} from the demo, permission, body builder or None)
ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/companies", "company::view", None),
    ("GET", "/companies/{company}", "company::view", None),
    ("POST", "/companies", "company::create", lambda d: b.company()),
    ("PATCH", "/companies/{company}", "company::update", lambda d: {"name": "X"}),
    ("DELETE", "/companies/{company}", "company::delete", None),
    ("GET", "/regions", "hosts::view", None),
    ("GET", "/regions/{region}", "hosts::view", None),
    ("GET", "/regions/{region}/stats", "hosts::view", None),
    ("POST", "/regions", "hosts::create", b.region),
    ("PATCH", "/regions/{region}", "hosts::update", lambda d: {"name": "X"}),
    ("DELETE", "/regions/{region}", "hosts::delete", None),
    ("GET", "/hosts", "hosts::view", None),
    ("GET", "/hosts/{host}", "hosts::view", None),
    ("POST", "/hosts", "hosts::create", b.host),
    ("PATCH", "/hosts/{host}", "hosts::update", lambda d: {"name": "X"}),
    ("GET", "/hosts/{host}/disks", "hosts::view", None),
    ("GET", "/hosts/{host}/disks/{ssd}", "hosts::view", None),
    ("POST", "/hosts/{host}/disks", "hosts::update", lambda d: b.disk()),
    ("PATCH", "/hosts/{host}/disks/{ssd}", "hosts::update", lambda d: {"name": "X"}),
    ("GET", "/cost_plans", "vm_template::view", None),
    ("GET", "/cost_plans/{tiny_plan}", "vm_template::view", None),
    ("POST", "/cost_plans", "vm_template::create", lambda d: b.cost_plan()),
    ("PATCH", "/cost_plans/{tiny_plan}", "vm_template::update", lambda d: {"name": "X"}),
    ("DELETE", "/cost_plans/{tiny_plan}", "vm_template::delete", None),
    ("GET", "/vm_templates", "vm_template::view", None),
    ("GET", "/vm_templates/{tiny}", "vm_template::view", None),
    ("POST", "/vm_templates", "vm_template::create", b.template),
    ("PATCH", "/vm_templates/{tiny}", "vm_template::update", lambda d: {"name": "X"}),
    ("DELETE", "/vm_templates/{tiny}", "vm_template::delete", None),
    ("GET", "/custom_pricing", "vm_custom_pricing::view", None),
    ("GET", "/custom_pricing/{custom}", "vm_custom_pricing::view", None),
    ("POST", "/custom_pricing", "vm_custom_pricing::create", b.pricing),
    ("PATCH", "/custom_pricing/{custom}", "vm_custom_pricing::update", lambda d: {"name": "X"}),
    ("DELETE", "/custom_pricing/{custom}", "vm_custom_pricing::delete", None),
    (
        "POST",
        "/custom_pricing/{custom}/copy",
        "vm_custom_pricing::create",
        lambda d: {"name": "Copy"},
    ),
    ("GET", "/vm_os_images", "vm_os_image::view", None),
    ("GET", "/vm_os_images/{ubuntu}", "vm_os_image::view", None),
    ("POST", "/vm_os_images", "vm_os_image::create", lambda d: b.image()),
    ("PATCH", "/vm_os_images/{ubuntu}", "vm_os_image::update", lambda d: {"version": "9"}),
    ("DELETE", "/vm_os_images/{ubuntu}", "vm_os_image::delete", None),
    ("POST", "/vm_os_images/{ubuntu}/download", "vm_os_image::update", None),
    ("GET", "/ip_space", "ip_space::view", None),
    ("GET", "/ip_space/{ip4_space}", "ip_space::view", None),
    ("POST", "/ip_space", "ip_space::create", lambda d: b.space()),
    ("PATCH", "/ip_space/{ip4_space}", "ip_space::update", lambda d: {"is_available": False}),
    ("DELETE", "/ip_space/{ip4_space}", "ip_space::delete", None),
    ("GET", "/ip_space/{ip4_space}/pricing", "ip_space::view", None),
    ("POST", "/ip_space/{ip4_space}/pricing", "ip_space::create", lambda d: b.space_price()),
    ("GET", "/ip_space/{ip4_space}/pricing/{ip4_tier_24}", "ip_space::view", None),
    (
        "PATCH",
        "/ip_space/{ip4_space}/pricing/{ip4_tier_24}",
        "ip_space::update",
        lambda d: {"setup_fee": 1},
    ),
    ("DELETE", "/ip_space/{ip4_space}/pricing/{ip4_tier_24}", "ip_space::delete", None),
    ("GET", "/ip_space/{ip4_space}/subscriptions", "subscriptions::view", None),
]
IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def fill(path: str, demo: Demo, **override: int) -> str:
    values = {
        name: override.get(name, getattr(demo, name))
        for name in (
            "company",
            "region",
            "host",
            "ssd",
            "tiny_plan",
            "tiny",
            "custom",
            "ubuntu",
            "ip4_space",
            "ip4_tier_24",
        )
    }
    return path.format(**values)


async def _snapshot(world: AdminWorld) -> Any:
    store = world.api.store
    assert isinstance(store, MemoryUnitOfWorkFactory)
    # the audit trail records every attempt, refused ones included: it is not a change
    return {name: dict(rows) for name, rows in store.db.tables.items() if name != "admin_audit"}


@pytest.mark.parametrize(("method", "path", "permission", "body"), ROUTES, ids=IDS)
async def test_refused_without_the_permission_naming_it(
    world: AdminWorld, method: str, path: str, permission: str, body: Any
) -> None:
    demo = world.user.demo
    before = await _snapshot(world)
    key = (
        VIEWER if method != "GET" and not permission.startswith(("ip_space", "subscr")) else NOBODY
    )
    resp = await world.call(method, fill(path, demo), key, json=body(demo) if body else None)
    assert resp.status == 403, await resp.text()
    assert (await resp.json()) == {"error": f"Insufficient permissions for {permission}"}
    after = await _snapshot(world)
    assert {k: v for k, v in after.items() if k != "users"} == {
        k: v for k, v in before.items() if k != "users"
    }


@pytest.mark.parametrize(
    ("method", "path", "permission", "body"),
    [r for r in ROUTES if "{" in r[1]],
    ids=[i for i, r in zip(IDS, ROUTES, strict=True) if "{" in r[1]],
)
async def test_unknown_ids_are_404(
    world: AdminWorld, method: str, path: str, permission: str, body: Any
) -> None:
    demo = world.user.demo
    first = path.split("}")[0].split("{")[1]
    resp = await world.call(
        method, fill(path, demo, **{first: U}), json=body(demo) if body else None
    )
    assert resp.status == 404, await resp.text()
    assert "error" in await resp.json()


@pytest.mark.parametrize(
    ("method", "path", "permission", "body"),
    [r for r in ROUTES if r[3] is not None],
    ids=[i for i, r in zip(IDS, ROUTES, strict=True) if r[3] is not None],
)
async def test_a_body_that_is_not_an_object_is_400(
    world: AdminWorld, method: str, path: str, permission: str, body: Any
) -> None:
    before = await _snapshot(world)
    resp = await world.call(method, fill(path, world.user.demo), json=["not", "an", "object"])
    assert resp.status == 400, await resp.text()
    after = await _snapshot(world)
    assert {k: v for k, v in after.items() if k != "users"} == {
        k: v for k, v in before.items() if k != "users"
    }


async def test_non_numeric_ids_are_400(world: AdminWorld) -> None:
    for path in ("/companies/abc", "/regions/x/stats", "/hosts/1x/disks", "/ip_space/z/pricing"):
        assert (await world.call("GET", path)).status == 400, path
