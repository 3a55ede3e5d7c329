"""Admin payments: shapes, manual completion exactly once (twice, concurrently), ownership."""

from __future__ import annotations

import asyncio
from typing import Any

from domain.enums import VmHistoryActionType
from tests.http.admin.adminapp import VIEWER, AdminWorld
from tests.http.vm_helpers import order, renew, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)


async def pending(world: AdminWorld, key: NostrKey = ALICE) -> tuple[int, str]:
    """A freshly ordered VM and its unpaid Lightning purchase payment."""
    vm = await order(world.user, key)
    payment = await renew(world.user, key, vm["id"])
    return vm["id"], payment["id"]


async def renewals(world: AdminWorld, vm_id: int) -> int:
    async with world.api.store() as uow:
        entries = (await uow.vm_history.list_by_vm(vm_id, 100)).items
    return sum(e.action_type is VmHistoryActionType.RENEWED for e in entries)


async def test_vm_payment_list_and_get_shape(world: AdminWorld) -> None:
    vm_id, pid = await pending(world)
    page = await world.ok("GET", f"/vms/{vm_id}/payments", VIEWER)
    assert page["total"] == 1 and page["data"][0]["id"] == pid
    one: dict[str, Any] = (await world.ok("GET", f"/vms/{vm_id}/payments/{pid.upper()}"))["data"]
    assert one["vm_id"] == vm_id and one["is_paid"] is False and "paid_at" not in one
    assert one["payment_method"] == "lightning" and one["company_base_currency"] == "EUR"
    assert {
        "amount",
        "tax",
        "processing_fee",
        "currency",
        "rate",
        "created",
        "expires",
        "external_id",
    } <= one.keys()
    bad = await world.call("GET", f"/vms/{vm_id}/payments/zz")
    assert bad.status == 400 and await bad.json() == {"error": "Invalid payment ID format"}
    assert (await world.call("GET", f"/vms/{vm_id}/payments/{'ab' * 32}")).status == 404


async def test_complete_twice_pays_and_extends_once(world: AdminWorld) -> None:
    vm_id, pid = await pending(world)
    done = (await world.ok("POST", f"/vms/{vm_id}/payments/{pid}/complete"))["data"]
    assert done["is_paid"] is True and "paid_at" in done
    sub = await subscription_of(world.api, vm_id)
    assert sub.is_setup and sub.expires is not None
    again = await world.call("POST", f"/vms/{vm_id}/payments/{pid}/complete")
    assert again.status == 409
    assert await again.json() == {"error": "Payment is already completed"}
    assert (await subscription_of(world.api, vm_id)).expires == sub.expires
    assert await renewals(world, vm_id) == 1


async def test_concurrent_completes_pay_once(world: AdminWorld) -> None:
    vm_id, pid = await pending(world)
    path = f"/vms/{vm_id}/payments/{pid}/complete"
    answers = await asyncio.gather(*(world.call("POST", path) for _ in range(3)))
    assert sorted(r.status for r in answers) == [200, 409, 409]
    assert await renewals(world, vm_id) == 1
    sub = await subscription_of(world.api, vm_id)
    async with world.api.store() as uow:
        payment = await uow.payments.get(bytes.fromhex(pid))
    assert payment is not None and payment.is_paid
    assert sub.expires is not None and payment.time_value is not None
    assert (sub.expires - world.api.clock.now()).total_seconds() == payment.time_value


async def test_another_vms_payment_is_refused(world: AdminWorld) -> None:
    vm_a, _ = await pending(world, ALICE)
    _, pid_b = await pending(world, BOB)
    for method, suffix in (("GET", ""), ("POST", "/complete")):
        resp = await world.call(method, f"/vms/{vm_a}/payments/{pid_b}{suffix}")
        assert resp.status == 400
        assert await resp.json() == {"error": "Payment does not belong to this VM"}
    async with world.api.store() as uow:
        payment = await uow.payments.get(bytes.fromhex(pid_b))
    assert payment is not None and not payment.is_paid


async def test_subscription_payment_get_and_complete(world: AdminWorld) -> None:
    vm_id, pid = await pending(world)
    sub = await subscription_of(world.api, vm_id)
    listed = await world.ok("GET", f"/subscriptions/{sub.id}/payments")
    assert [p["id"] for p in listed["data"]] == [pid]
    one = (await world.ok("GET", f"/subscription_payments/{pid}"))["data"]
    assert one["payment_type"] == "Purchase" and one["subscription_id"] == sub.id
    assert one["is_paid"] is False and "time_value" in one
    viewer = await world.call("POST", f"/subscription_payments/{pid}/complete", VIEWER)
    assert viewer.status == 403
    answers = await asyncio.gather(
        world.call("POST", f"/subscription_payments/{pid}/complete"),
        world.call("POST", f"/vms/{vm_id}/payments/{pid}/complete"),
    )
    assert sorted(r.status for r in answers) == [200, 409]
    assert await renewals(world, vm_id) == 1
    assert (await world.ok("GET", f"/subscription_payments/{pid}"))["data"]["is_paid"] is True
    assert (await world.call("GET", "/subscription_payments/nothex")).status == 400
