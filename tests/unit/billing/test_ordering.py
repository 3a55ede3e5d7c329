"""Ordering a VM: validation first (D21, D22, §6), then one transaction of records."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWork
from app.billing.errors import (
    EmailNotVerified,
    ImageNotFound,
    NoHostAvailable,
    OfferUnavailable,
    SshKeyNotFound,
    UnsupportedDisk,
)
from app.billing.ordering import OrderTerms, order_vm
from domain.enums import DiskInterface, IntervalType, SubscriptionType, VmHistoryActionType
from domain.errors import SpecOutOfLimits
from domain.model import GIB, PLACEHOLDER_MAC
from domain.pricing import NotWholeGib
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.unit.billing.world import (
    ALICE,
    ALICE_KEY,
    BOB_KEY,
    HIDDEN_IMAGE,
    IMAGE,
    PLAN_EUR_CENTS,
    START,
    TEMPLATE,
    Shop,
)


def _terms(*, image_id: int = IMAGE, ssh_key_id: int = ALICE_KEY) -> OrderTerms:
    return OrderTerms(user_id=ALICE, image_id=image_id, ssh_key_id=ssh_key_id)


async def _counts(shop: Shop) -> tuple[int, int, int]:
    async with shop.factory() as uow:
        subs = (await uow.subscriptions.list_by_user(ALICE, 100)).total
        vms = (await uow.vms.list_by_user(ALICE, 100)).total
        templates = len([t for t in [await uow.custom_templates.get(1)] if t is not None])
    return subs, vms, templates


async def test_an_order_writes_an_unpaid_subscription_line_item_vm_and_history(shop: Shop) -> None:
    vm = await shop.order(ref_code="friend")
    assert (vm.template_id, vm.custom_template_id, vm.mac_address) == (
        TEMPLATE,
        None,
        PLACEHOLDER_MAC,
    )
    assert (vm.host_id, vm.disk_id, vm.ref_code) == (1, 1, "friend")
    sub = await shop.subscription(vm)
    assert (sub.is_active, sub.is_setup, sub.expires) == (False, False, None)
    assert (sub.company_id, sub.currency, sub.interval_type) == (1, "EUR", IntervalType.MONTH)
    assert sub.name == f"VM{vm.id} subscription" and sub.created == START
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None
    assert (item.subscription_type, item.amount) == (SubscriptionType.VPS, PLAN_EUR_CENTS)
    assert item.name == f"VM{vm.id} - Tiny"
    [created] = await shop.history(vm)
    assert created.action_type is VmHistoryActionType.CREATED
    assert created.initiated_by_user == ALICE and created.description == f"VM {vm.id} was created"


async def test_a_custom_order_stores_its_template_and_the_monthly_price(shop: Shop) -> None:
    vm = await shop.order_custom()
    assert vm.template_id is None and vm.custom_template_id is not None
    async with shop.factory() as uow:
        spec = await uow.custom_templates.get(vm.custom_template_id)
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert spec is not None and (spec.cpu, spec.memory, spec.disk_size) == (2, 4 * GIB, 80 * GIB)
    # 2 × 200 + 4 × 100 + 80 × 50 (+ 0 for the one IPv4 and one IPv6 always billed)
    assert item is not None and item.amount == 400 + 400 + 4000
    assert item.name == f"VM{vm.id} - Custom IE"
    sub = await shop.subscription(vm)
    assert (sub.interval_type, sub.interval_amount) == (IntervalType.MONTH, 1)


async def test_another_users_ssh_key_is_not_found(shop: Shop) -> None:
    with pytest.raises(SshKeyNotFound) as err:
        await order_vm(shop.factory, shop.clock, _terms(ssh_key_id=BOB_KEY), TEMPLATE)
    assert err.value.kind == "not_found"
    assert await _counts(shop) == (0, 0, 0)


async def test_a_hidden_or_unknown_image_is_not_found(shop: Shop) -> None:
    for image in (HIDDEN_IMAGE, 99):
        with pytest.raises(ImageNotFound):
            await order_vm(shop.factory, shop.clock, _terms(image_id=image), TEMPLATE)


async def test_a_disabled_or_expired_template_cannot_be_ordered(shop: Shop) -> None:
    async with shop.factory() as uow:
        template = await uow.templates.get(TEMPLATE)
        assert template is not None
        await uow.templates.update(attrs.evolve(template, enabled=False))
        await uow.commit()
    with pytest.raises(OfferUnavailable, match="disabled template"):
        await shop.order()
    async with shop.factory() as uow:
        past = START - timedelta(seconds=1)
        await uow.templates.update(attrs.evolve(template, enabled=True, expires=past))
        await uow.commit()
    with pytest.raises(OfferUnavailable, match="expired template"):
        await shop.order()


@pytest.mark.parametrize(
    "spec",
    [{"cpu": 9}, {"cpu": 0}, {"memory": 32 * GIB}, {"disk": 1024 * GIB}, {"disk": 1 * GIB}],
)
async def test_a_custom_spec_outside_the_limits_is_bad_input(
    shop: Shop, spec: dict[str, int]
) -> None:
    with pytest.raises(SpecOutOfLimits) as err:
        await shop.order_custom(**spec)
    assert err.value.kind == "bad_input"
    assert await _counts(shop) == (0, 0, 0)


@pytest.mark.parametrize("spec", [{"memory": 4 * GIB - 1}, {"disk": 80 * GIB + 1}])
async def test_a_custom_size_that_is_not_whole_gib_is_bad_input(
    shop: Shop, spec: dict[str, int]
) -> None:
    # priced per whole GiB, so the VM would get less (or more) than it is billed for
    with pytest.raises(NotWholeGib) as err:
        await shop.order_custom(**spec)
    assert err.value.kind == "bad_input"
    assert await _counts(shop) == (0, 0, 0)


async def test_a_disk_interface_the_pricing_does_not_sell_is_bad_input(shop: Shop) -> None:
    with pytest.raises(UnsupportedDisk):
        await shop.order_custom(disk_interface=DiskInterface.SATA)


async def test_without_room_on_any_host_nothing_is_written(shop: Shop) -> None:
    for _ in range(8):  # 8 × 2 CPUs fill the 16-CPU host (load factor 1); no D25 cap here
        await shop.order(max_unpaid=None, unpaid_room=NO_UNPAID_ROOM_LIMITS)
    with pytest.raises(NoHostAvailable):
        await shop.order(max_unpaid=None, unpaid_room=NO_UNPAID_ROOM_LIMITS)
    assert (await _counts(shop))[:2] == (8, 8)


async def test_the_email_gate_applies_only_when_asked(shop: Shop) -> None:
    with pytest.raises(EmailNotVerified):
        await shop.order(require_verified_email=True)
    assert (await shop.order(require_verified_email=False)).id == 1


async def test_a_failure_inside_the_transaction_leaves_no_orphan(shop: Shop) -> None:
    class Failing(MemoryUnitOfWork):
        def __init__(self) -> None:
            super().__init__(shop.factory.db)

            async def boom(entry: object) -> object:
                raise RuntimeError("disk full")

            self.vm_history.add = boom  # type: ignore[method-assign,assignment]

    with pytest.raises(RuntimeError):
        await order_vm(Failing, shop.clock, _terms(), TEMPLATE)
    assert await _counts(shop) == (0, 0, 0)
