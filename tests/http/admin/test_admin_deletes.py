"""DELETE payment_methods/{id}, subscriptions/{id}, subscription_line_items/{id} (§9.11–§9.12)."""

from __future__ import annotations

from typing import Any

from domain.enums import SubscriptionType
from domain.model import LineItem, Subscription
from tests.http.admin.adminapp import ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import order, paid_vm, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def _status(
    world: AdminWorld, method: str, path: str, key: NostrKey = ROOT, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def test_delete_payment_method_config(world: AdminWorld) -> None:
    config = (await world.ok("GET", "/payment_methods"))["data"][0]
    path = f"/payment_methods/{config['id']}"
    assert await _status(world, "DELETE", path, VIEWER) == (
        403,
        {"error": "Insufficient permissions for payment_method_config::delete"},
    )
    assert await world.ok("DELETE", path) == {
        "data": {"success": True, "message": "Payment method configuration deleted successfully"}
    }
    assert (await world.call("GET", path)).status == 404
    assert await _status(world, "DELETE", path) == (
        404,
        {"error": "Payment method config not found"},
    )
    assert (await world.call("DELETE", "/payment_methods/x")).status == 400


async def _bare_subscription(world: AdminWorld) -> tuple[int, int]:
    """A DNS subscription with one line item and nothing else hanging on it."""
    uid = await world.user.user_id(ALICE)
    async with world.api.store() as uow:
        sub, [item] = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=uid,
                company_id=1,
                name="dns",
                created=world.api.clock.now(),
                currency="EUR",
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.DNS_HOSTING,
                    name="dns",
                    amount=100,
                )
            ],
        )
        await uow.commit()
    return sub.id, item.id


async def test_delete_subscription_and_line_item(world: AdminWorld) -> None:
    sub_id, item_id = await _bare_subscription(world)
    assert await _status(world, "DELETE", f"/subscription_line_items/{item_id}", VIEWER) == (
        403,
        {"error": "Insufficient permissions for subscription_line_items::delete"},
    )
    assert await world.ok("DELETE", f"/subscription_line_items/{item_id}") == {
        "data": {"success": True, "message": "Subscription line item deleted successfully"}
    }
    assert (await world.call("GET", f"/subscription_line_items/{item_id}")).status == 404
    assert (await _status(world, "DELETE", f"/subscription_line_items/{item_id}"))[0] == 404
    assert await _status(world, "DELETE", f"/subscriptions/{sub_id}", VIEWER) == (
        403,
        {"error": "Insufficient permissions for subscriptions::delete"},
    )
    assert await world.ok("DELETE", f"/subscriptions/{sub_id}") == {
        "data": {"success": True, "message": "Subscription deleted successfully"}
    }
    assert (await world.call("GET", f"/subscriptions/{sub_id}")).status == 404
    assert await _status(world, "DELETE", f"/subscriptions/{sub_id}") == (
        404,
        {"error": "Subscription not found"},
    )


async def test_deletes_refused_while_something_depends_on_them(world: AdminWorld) -> None:
    paid = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, paid["id"])
    assert await _status(world, "DELETE", f"/subscriptions/{sub.id}") == (
        422,
        {
            "error": "Cannot delete subscription: 1 paid payments exist. "
            "Consider deactivating instead."
        },
    )
    unpaid = await order(world.user, NostrKey.from_seed(22))
    await world.user.call("GET", f"/api/v1/vm/{unpaid['id']}/renew", key=NostrKey.from_seed(22))
    unpaid_sub = await subscription_of(world.api, unpaid["id"])
    status, body = await _status(world, "DELETE", f"/subscriptions/{unpaid_sub.id}")
    assert status == 422 and "unpaid payments exist" in body["error"]
    bare = await order(world.user, NostrKey.from_seed(23))
    bare_sub = await subscription_of(world.api, bare["id"])
    assert await _status(world, "DELETE", f"/subscriptions/{bare_sub.id}") == (
        422,
        {"error": f"Cannot delete subscription: it bills VM {bare['id']}. Delete the VM instead."},
    )
    async with world.api.store() as uow:
        [item] = await uow.line_items.list_by_subscription(bare_sub.id)
    assert await _status(world, "DELETE", f"/subscription_line_items/{item.id}") == (
        422,
        {"error": f"Cannot delete line item: it bills VM {bare['id']}. Delete the VM instead."},
    )
    assert (await subscription_of(world.api, bare["id"])).id == bare_sub.id
