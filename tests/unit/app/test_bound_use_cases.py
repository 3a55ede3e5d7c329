"""The injected use cases: `bind` fixes the leading ports, and `Services` builds its bundles over
its own ports (a renewal there settles from credit, an admin update passes clock and rails)."""

from __future__ import annotations

from typing import Any

import attrs

from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.resolver import VmHostClients
from app.billing.credit_balance import adjust_credit
from app.billing.ordering import OrderTerms
from app.bound.admin import AdminUseCases
from app.bound.inject import bind, repricing
from app.services import Services
from domain.model import Vm
from tests.unit.billing.world import (
    ALICE,
    ALICE_KEY,
    IMAGE,
    PLAN_EUR_CENTS,
    TEMPLATE,
    Shop,
    new_shop,
)

_TERMS = OrderTerms(user_id=ALICE, image_id=IMAGE, ssh_key_id=ALICE_KEY)


async def _fetch(store: str, clock: int, item: int, *, scale: int = 1) -> tuple[Any, ...]:
    return (store, clock, item, scale)


async def test_bind_puts_the_ports_first_and_keeps_the_callers_arguments() -> None:
    fetch = bind(_fetch, "store", 7)
    assert await fetch(3) == ("store", 7, 3, 1)
    assert await fetch(item=4, scale=2) == ("store", 7, 4, 2)
    assert fetch.__name__ == "_fetch"


async def test_repricing_passes_the_clock_and_rails_by_keyword() -> None:
    shop = await new_shop()
    seen: list[tuple[Any, ...]] = []

    async def update(
        uow_factory: Any, item_id: int, fields: dict[str, int], /, *, clock: Any, rails: Any = None
    ) -> int:
        seen.append((uow_factory, item_id, fields, clock, rails))
        return item_id * 2

    bound = repricing(update, shop.factory, shop.clock, shop.rails)
    assert await bound(21, {"cpu": 2}) == 42
    assert seen == [(shop.factory, 21, {"cpu": 2}, shop.clock, shop.rails)]


def _services(shop: Shop) -> Services:
    return Services(
        uow_factory=shop.factory,
        clock=shop.clock,
        rails=shop.rails,
        rates=shop.rates,
        queue=shop.queue,
        hosts=VmHostClients(shop.clock, DummyVmHost(None, shop.clock)),
        tax_rates=shop.tax_rates,
    )


async def _paid_vm(shop: Shop, svc: Services) -> Vm:
    vm = await svc.account.order_vm(_TERMS, TEMPLATE)
    await shop.complete(await svc.billing.renew(user_id=ALICE, vm_id=vm.id))
    return vm


async def test_the_bundles_work_on_the_services_own_store_and_clock() -> None:
    shop = await new_shop()
    svc = _services(shop)
    vm = await _paid_vm(shop, svc)
    assert (await shop.subscription(vm)).expires is not None
    pending = await svc.billing.renew(user_id=ALICE, vm_id=vm.id)
    assert await shop.payment(pending.id) == pending
    assert pending.created == shop.clock.now()


async def test_a_renewal_the_credit_covers_is_completed_by_the_injected_settle() -> None:
    shop = await new_shop()
    svc = _services(shop)
    vm = await _paid_vm(shop, svc)
    before = (await shop.subscription(vm)).expires
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=PLAN_EUR_CENTS,
        note="test",
        reference=None,
    )
    payment = await svc.billing.renew(user_id=ALICE, vm_id=vm.id)
    assert (await shop.payment(payment.id)).is_paid
    assert (await shop.subscription(vm)).expires != before


async def test_evolved_services_rebuild_their_bundles_over_the_new_ports() -> None:
    shop, other = await new_shop(), await new_shop()
    svc = _services(shop)
    moved = attrs.evolve(svc, uow_factory=other.factory)
    assert moved.admin is not svc.admin and isinstance(moved.admin, AdminUseCases)
    vm = await moved.account.order_vm(_TERMS, TEMPLATE)
    async with other.factory() as uow:
        assert await uow.vms.get(vm.id) is not None
    async with shop.factory() as uow:
        assert await uow.vms.get(vm.id) is None
