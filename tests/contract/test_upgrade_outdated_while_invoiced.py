"""An upgrade quote that is outdated before it is stored, on memory, SQLite and MariaDB: a
renewal completes, the pricing is re-priced or the VM is deleted while the Lightning node
makes the upgrade's invoice. What ends pending upgrade quotes on such a change could not
see this one yet, so storing judges it again under the subscription's lock: 409, nothing
stored, the new invoice cancelled at the node. Before, it was stored payable, and paid it
was not applied but credited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.admin.custom_pricing import update_pricing
from app.billing.errors import UpgradeNoLongerPossible, UpgradeQuoteOutdated, UpgradeRepriced
from app.worker.jobs import delete_by_admin
from domain.enums import SubscriptionPaymentType
from domain.errors import DomainError
from domain.model import SubscriptionPayment, Vm
from ports.jobs import DeleteVm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import PRICING
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")


async def _upgrade(world: World, vm: Vm) -> SubscriptionPayment:
    shop = world.shop
    return await upgrade_payment(shop, vm, tax_rates=shop.tax_rates)


async def _refused_while_invoiced(
    world: World, vm: Vm, meanwhile: Callable[[], Awaitable[None]], refused: type[DomainError]
) -> None:
    """`meanwhile` commits while the node makes the upgrade's invoice: storing it is
    refused with `refused` (409), no upgrade is stored and the invoice is cancelled."""
    node = world.shop.node
    make_invoice = node.create_invoice

    async def racing(amount_msat: int, memo: str, expiry_seconds: int) -> Any:
        invoice = await make_invoice(amount_msat, memo, expiry_seconds)
        await meanwhile()
        return invoice

    node.create_invoice = racing  # type: ignore[method-assign]
    before, cancelled = list(node.invoices), list(node.cancelled)
    with pytest.raises(refused) as caught:
        await _upgrade(world, vm)
    node.create_invoice = make_invoice  # type: ignore[method-assign]
    assert caught.value.kind == "conflict"
    [made] = [h for h in node.invoices if h not in before]
    assert made in node.cancelled and made not in cancelled
    kinds = [p.payment_type for p in await world.shop.payments(vm)]
    assert SubscriptionPaymentType.UPGRADE not in kinds


async def test_a_renewal_completed_while_the_upgrade_is_invoiced_refuses_it(
    world: World,
) -> None:
    """The reviewer's case: the renewal's D13 sweep ran before the upgrade's row existed;
    the quote ran to the old expiry, so it is refused ("quote again"), and a new quote,
    pro-rated to the new expiry, is stored and applied when paid."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    expires = (await world.sub(vm)).expires

    async def renewal_lands() -> None:
        assert (await world.complete(renewal)).completed

    await _refused_while_invoiced(world, vm, renewal_lands, UpgradeQuoteOutdated)
    assert (await world.sub(vm)).expires != expires

    again = await _upgrade(world, vm)
    assert (await world.complete(again)).completed
    assert (await world.shop.vm(vm.id)).custom_template_id is not None


async def test_a_reprice_committed_while_the_upgrade_is_invoiced_refuses_it(
    world: World,
) -> None:
    vm = await world.paid_vm()
    shop = world.shop

    async def repriced() -> None:
        await update_pricing(
            shop.factory, PRICING, {"cpu_cost": 300}, clock=shop.clock, rails=shop.rails
        )

    await _refused_while_invoiced(world, vm, repriced, UpgradeRepriced)


async def test_a_vm_deleted_while_its_upgrade_is_invoiced_refuses_it(world: World) -> None:
    vm = await world.paid_vm()

    async def deleted() -> None:
        await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id, reason="abuse"))

    await _refused_while_invoiced(world, vm, deleted, UpgradeNoLongerPossible)
    assert (await world.shop.vm(vm.id)).deleted


async def test_an_upgrade_nothing_changed_under_is_stored_payable(world: World) -> None:
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    assert upgrade.is_pending(world.now)
    assert (await world.shop.payment(upgrade.id)).is_pending(world.now)
