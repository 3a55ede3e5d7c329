"""D23 for upgrades on memory, SQLite and MariaDB: a catalogue change that moves what an
upgrade costs (the VM's own plan or pricing, the pricing it grows into, the template spec it
grows from) expires the pending upgrade quotes it concerns, in its own transaction, and
cancels them at their provider; so does a change of the terms an upgrade is judged by (a
custom pricing disabled, deleted, given an expiry, its size bounds moved); a change that moves
neither keeps them payable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from app.admin.catalogue_common import InUse
from app.admin.cost_plans import update_cost_plan
from app.admin.custom_pricing import delete_pricing, update_pricing
from app.admin.vm_templates import update_template
from app.billing.price_in_force import UPGRADES
from domain.enums import CpuMfg
from domain.model import GIB, SubscriptionPayment, Vm
from ports.storage import PricedBy
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import PRICING, TEMPLATE, Shop

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB
shop = lifecycle_world.shop

PLAN = 1  # the shop's template's cost plan
REGION = 1


@attrs.frozen
class Quotes:
    """A paid standard VM and a paid custom VM, each with a pending renewal and upgrade."""

    standard: Vm
    custom: Vm
    standard_renewal: bytes
    standard_upgrade: bytes
    custom_renewal: bytes
    custom_upgrade: bytes


async def _upgrade(shop: Shop, vm: Vm) -> SubscriptionPayment:
    return await upgrade_payment(shop, vm)


async def _quotes(shop: Shop) -> Quotes:
    standard, custom = await shop.order(), await shop.order_custom()
    for vm in (standard, custom):
        await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(hours=1))
    return Quotes(
        standard=standard,
        custom=custom,
        standard_renewal=(await shop.renew(standard)).id,
        standard_upgrade=(await _upgrade(shop, standard)).id,
        custom_renewal=(await shop.renew(custom)).id,
        custom_upgrade=(await _upgrade(shop, custom)).id,
    )


async def _pending(shop: Shop, vm: Vm) -> set[bytes]:
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        rows = await uow.payments.list_pending_for_subscription(sub.id, shop.clock.now())
    return {p.id for p in rows}


def _kw(shop: Shop) -> dict[str, Any]:
    return {"clock": shop.clock, "rails": shop.rails}


async def test_a_cost_plan_price_expires_its_vms_upgrade_quotes(shop: Shop) -> None:
    q = await _quotes(shop)
    await update_cost_plan(shop.factory, PLAN, {"name": "renamed"}, **_kw(shop))
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}

    await update_cost_plan(shop.factory, PLAN, {"amount": 999}, **_kw(shop))

    assert await _pending(shop, q.standard) == set()
    assert (await shop.payment(q.standard_upgrade)).expires == shop.clock.now()
    assert sorted(shop.node.cancelled) == sorted([q.standard_renewal, q.standard_upgrade])
    assert await _pending(shop, q.custom) == {q.custom_renewal, q.custom_upgrade}


async def test_a_template_plan_edit_expires_its_vms_upgrade_quotes(shop: Shop) -> None:
    q = await _quotes(shop)
    await update_template(shop.factory, TEMPLATE, {"cost_plan_currency": "USD"}, **_kw(shop))
    assert await _pending(shop, q.standard) == set()
    assert await _pending(shop, q.custom) == {q.custom_renewal, q.custom_upgrade}


async def test_a_custom_pricing_price_expires_the_upgrades_growing_into_it(shop: Shop) -> None:
    """Its custom VM's quotes (its own price and its growth), and the upgrade of the standard
    VM of its region, which grows into it; the standard VM's renewal keeps its price."""
    q = await _quotes(shop)
    await update_pricing(shop.factory, PRICING, {"name": "renamed"}, **_kw(shop))
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}
    assert await _pending(shop, q.custom) == {q.custom_renewal, q.custom_upgrade}

    await update_pricing(shop.factory, PRICING, {"cpu_cost": 300}, **_kw(shop))

    assert await _pending(shop, q.custom) == set()
    assert await _pending(shop, q.standard) == {q.standard_renewal}
    expired = [q.custom_renewal, q.custom_upgrade, q.standard_upgrade]
    assert sorted(shop.node.cancelled) == sorted(expired)
    for payment_id in expired:
        assert (await shop.payment(payment_id)).expires == shop.clock.now()


async def test_a_disabled_pricing_expires_every_upgrade_growing_on_it(shop: Shop) -> None:
    """Disabled, the pricing is no longer what the standard VMs of its region grow into, and
    its custom VM may no longer grow on it (`upgrades._refuse_withdrawn`): both upgrade
    quotes go (paid, they would be credited, not applied); the custom VM's price is as it
    was, so its renewal stays."""
    q = await _quotes(shop)
    await update_pricing(shop.factory, PRICING, {"enabled": False}, **_kw(shop))
    assert await _pending(shop, q.standard) == {q.standard_renewal}
    assert await _pending(shop, q.custom) == {q.custom_renewal}
    assert sorted(shop.node.cancelled) == sorted([q.standard_upgrade, q.custom_upgrade])


@pytest.mark.parametrize("ahead", [timedelta(days=30), -timedelta(seconds=1)], ids=["set", "past"])
async def test_a_pricing_given_an_expiry_expires_its_custom_vms_upgrades(
    shop: Shop, ahead: timedelta
) -> None:
    """A custom VM grows on its pricing only until the pricing's `expires`: setting (or
    moving) it ends the custom VM's upgrade quote, made under other terms; its renewal keeps
    its price. A standard VM's growth does not read the pricing's expiry (R11.1): kept."""
    q = await _quotes(shop)
    expires = shop.clock.now() + ahead

    await update_pricing(shop.factory, PRICING, {"expires": expires}, **_kw(shop))

    assert await _pending(shop, q.custom) == {q.custom_renewal}
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}
    assert shop.node.cancelled == [q.custom_upgrade]
    assert (await shop.payment(q.custom_upgrade)).expires == shop.clock.now()


@pytest.mark.parametrize(
    "edit",
    [{"max_cpu": 3}, {"min_memory": 2 * GIB}, "disk-sizes"],
    ids=["max-cpu", "min-memory", "disk-sizes"],
)
async def test_new_bounds_expire_every_upgrade_growing_on_the_pricing(
    shop: Shop, edit: object
) -> None:
    """The bounds an upgrade's new values are judged by (D21) moved: a quote judged by the
    old ones is ended, the custom VM's and the region's standard VM's; renewals stay."""
    q = await _quotes(shop)
    if edit == "disk-sizes":
        async with shop.factory() as uow:
            rows = await uow.custom_pricing.list_disks(PRICING)
        fields: dict[str, Any] = {
            "disk_pricing": [
                {
                    "kind": d.kind,
                    "interface": d.interface,
                    "cost": d.cost,
                    "min_disk_size": d.min_disk_size,
                    "max_disk_size": d.max_disk_size + GIB,
                }
                for d in rows
            ]
        }
    else:
        assert isinstance(edit, dict)
        fields = edit

    await update_pricing(shop.factory, PRICING, fields, **_kw(shop))

    assert await _pending(shop, q.custom) == {q.custom_renewal}
    assert await _pending(shop, q.standard) == {q.standard_renewal}
    assert sorted(shop.node.cancelled) == sorted([q.custom_upgrade, q.standard_upgrade])


async def test_deleting_a_used_pricing_disables_it_and_expires_its_upgrades(shop: Shop) -> None:
    """A pricing custom VMs use is disabled instead of deleted: as a PATCH disabling it, it
    ends the upgrade quotes growing on it; renewals stay."""
    q = await _quotes(shop)

    message = await delete_pricing(shop.factory, shop.clock, PRICING, rails=shop.rails)

    assert message.startswith("Custom pricing model disabled instead of deleted")
    assert await _pending(shop, q.custom) == {q.custom_renewal}
    assert await _pending(shop, q.standard) == {q.standard_renewal}
    assert sorted(shop.node.cancelled) == sorted([q.custom_upgrade, q.standard_upgrade])


async def test_renaming_a_pricing_expires_nothing(shop: Shop) -> None:
    q = await _quotes(shop)
    await update_pricing(shop.factory, PRICING, {"name": "renamed", "enabled": True}, **_kw(shop))
    assert await _pending(shop, q.custom) == {q.custom_renewal, q.custom_upgrade}
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}
    assert shop.node.cancelled == []


async def test_a_template_spec_change_expires_its_vms_upgrades_only(shop: Shop) -> None:
    """Another CPU maker on the template: the custom pricing the VM's upgrade grows into
    may change, so the upgrade's price moves; the VM's own price is its plan's, so its
    renewal stays payable. (The size its VMs were built with cannot change under them.)"""
    q = await _quotes(shop)
    await update_template(shop.factory, TEMPLATE, {"name": "renamed"}, **_kw(shop))
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}

    await update_template(shop.factory, TEMPLATE, {"cpu_mfg": CpuMfg.AMD}, **_kw(shop))

    assert await _pending(shop, q.standard) == {q.standard_renewal}
    assert shop.node.cancelled == [q.standard_upgrade]
    assert await _pending(shop, q.custom) == {q.custom_renewal, q.custom_upgrade}


async def test_a_templates_built_spec_does_not_change_under_its_live_vms(shop: Shop) -> None:
    """Review r7: more (or less) memory, disk, CPU or another region on a template with live
    VMs would make their record say what their host does not hold; refused (422), nothing
    changed, no quote expired. Without live VMs the spec may change."""
    q = await _quotes(shop)
    async with shop.factory() as uow:
        template = await uow.templates.get(TEMPLATE)
    assert template is not None
    for edit in ({"memory": 2 * template.memory}, {"disk_size": template.disk_size // 2}):
        with pytest.raises(InUse, match="live VMs were built from"):
            await update_template(shop.factory, TEMPLATE, edit, **_kw(shop))
    async with shop.factory() as uow:
        assert await uow.templates.get(TEMPLATE) == template
    assert await _pending(shop, q.standard) == {q.standard_renewal, q.standard_upgrade}

    async with shop.factory() as uow:
        for vm in await uow.vms.list_active():
            await uow.vms.delete(vm.id)
        await uow.commit()
    await update_template(shop.factory, TEMPLATE, {"memory": 2 * template.memory}, **_kw(shop))
    async with shop.factory() as uow:
        grown = await uow.templates.get(TEMPLATE)
    assert grown is not None and grown.memory == 2 * template.memory


async def test_the_lookup_finds_the_standard_vms_of_a_region(shop: Shop) -> None:
    q = await _quotes(shop)
    now = shop.clock.now()
    async with shop.factory() as uow:
        pending_on = uow.subscriptions.ids_with_pending_on
        in_region = await pending_on(now, UPGRADES, PricedBy(template_region_id=REGION))
        elsewhere = await pending_on(now, UPGRADES, PricedBy(template_region_id=REGION + 1))
    assert in_region == [(await shop.subscription(q.standard)).id]
    assert elsewhere == []
