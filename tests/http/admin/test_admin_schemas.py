"""The admin OpenAPI document describes the real payloads: required ⊆ keys ⊆ properties."""

from __future__ import annotations

from typing import Any

from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm, renew, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` breaks `schema` (the subset of JSON Schema the admin schemas use)."""
    if "anyOf" in schema:
        options = [problems(value, s, where) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else options[0]
    kind = schema.get("type")
    if kind is not None and not isinstance(value, _TYPES[kind]):
        return [f"{where}: {value!r} is not {kind}"]
    if kind in ("integer", "number") and isinstance(value, bool):
        return [f"{where}: bool is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    out: list[str] = []
    if kind == "object" and "properties" in schema:
        props = schema["properties"]
        out += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        out += [f"{where}: undocumented {k}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                out += problems(v, props[k], f"{where}.{k}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{where}[{i}]")
    return out


async def check(
    world: AdminWorld, doc: dict[str, Any], method: str, path: str, template: str, **kw: Any
) -> None:
    body = await world.ok(method, path, **kw)
    op = doc["paths"]["/api/admin/v1" + template][method.lower()]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert problems(body, schema) == [], (path, problems(body, schema))


async def test_payloads_match_the_document(world: AdminWorld) -> None:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    vm = await paid_vm(world.user, ALICE)
    pending = await renew(world.user, ALICE, vm["id"])
    sub = await subscription_of(world.api, vm["id"])
    vm_id, pid = vm["id"], pending["id"]
    uid = (await world.ok("GET", f"/vms/{vm_id}"))["data"]["user_id"]
    await world.ok("PUT", f"/vms/{vm_id}/extend", json={"days": 2})
    for path, template in (
        ("/vms", "/vms"),
        (f"/vms/{vm_id}", "/vms/{id}"),
        (f"/vms/{vm_id}/history", "/vms/{id}/history"),
        (f"/vms/{vm_id}/payments", "/vms/{id}/payments"),
        (f"/vms/{vm_id}/payments/{pid}", "/vms/{id}/payments/{payment_id}"),
        (f"/subscriptions/{sub.id}/payments", "/subscriptions/{subscription_id}/payments"),
        (f"/subscription_payments/{pid}", "/subscription_payments/{id}"),
        (f"/subscriptions?user_id={uid}", "/subscriptions"),
        (f"/subscriptions/{sub.id}", "/subscriptions/{id}"),
        (f"/subscriptions/{sub.id}/line_items", "/subscriptions/{subscription_id}/line_items"),
        (f"/users/{uid}", "/users/{id}"),
        ("/payment_methods", "/payment_methods"),
    ):
        await check(world, doc, "GET", path, template)
    await check(
        world,
        doc,
        "POST",
        f"/vms/{vm_id}/payments/{pid}/complete",
        "/vms/{id}/payments/{payment_id}/complete",
    )
    await check(world, doc, "POST", f"/vms/{vm_id}/stop", "/vms/{id}/stop")
    await check(world, doc, "PUT", f"/vms/{vm_id}/extend", "/vms/{id}/extend", json={"days": 1})
    await check(
        world, doc, "POST", "/roles", "/roles", json={"name": "r", "permissions": ["users::view"]}
    )
