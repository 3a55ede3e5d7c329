"""D23 through the admin API: re-pricing a cost plan or a template's plan expires the pending
renewal quotes of the VMs it prices and cancels them at the node; a rename expires nothing."""

from __future__ import annotations

from typing import Any

from domain.model import SubscriptionPayment
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm, renew
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(43)


async def _pending_renewal(world: AdminWorld) -> tuple[dict[str, Any], bytes]:
    vm = await paid_vm(world.user, ALICE)
    payment = await renew(world.user, ALICE, vm["id"])
    return vm, bytes.fromhex(payment["id"])


async def _payment(world: AdminWorld, payment_id: bytes) -> SubscriptionPayment:
    async with world.api.store() as uow:
        found = await uow.payments.get(payment_id)
    assert found is not None
    return found


async def _is_pending(world: AdminWorld, payment_id: bytes) -> bool:
    payment = await _payment(world, payment_id)
    return not payment.is_paid and payment.expires > world.api.clock.now()


async def test_repricing_a_cost_plan_expires_and_cancels_its_vms_quotes(
    world: AdminWorld,
) -> None:
    _, payment_id = await _pending_renewal(world)
    path = f"/cost_plans/{world.user.demo.tiny_plan}"
    await world.ok("PATCH", path, json={"name": "Tiny renamed"})
    assert await _is_pending(world, payment_id)  # a rename changes no price

    await world.ok("PATCH", path, json={"amount": 999})
    assert not await _is_pending(world, payment_id)
    assert (await _payment(world, payment_id)).expires == world.api.clock.now()
    state = await world.api.node.invoice_state(payment_id)
    assert state == "CANCELED"


async def test_editing_a_templates_plan_price_expires_its_vms_quotes(world: AdminWorld) -> None:
    _, payment_id = await _pending_renewal(world)
    path = f"/vm_templates/{world.user.demo.tiny}"
    await world.ok("PATCH", path, json={"cost_plan_name": "Still tiny"})
    assert await _is_pending(world, payment_id)

    await world.ok("PATCH", path, json={"cost_plan_interval_amount": 3})
    assert not await _is_pending(world, payment_id)


async def test_moving_a_template_to_another_priced_plan_expires_its_vms_quotes(
    world: AdminWorld,
) -> None:
    _, payment_id = await _pending_renewal(world)
    other = (
        await world.ok(
            "POST",
            "/cost_plans",
            json={
                "name": "Dearer",
                "amount": 5000,
                "currency": "EUR",
                "interval_amount": 1,
                "interval_type": "month",
            },
        )
    )["data"]
    await world.ok(
        "PATCH", f"/vm_templates/{world.user.demo.tiny}", json={"cost_plan_id": other["id"]}
    )
    assert not await _is_pending(world, payment_id)
