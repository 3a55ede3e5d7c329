"""A renewal partly paid by VAT-free credit, overtaken by its VM's deletion (no room to bring
it back): its invoice, issued at booking, declared the VAT that credit paid, so the credit comes
back as ordinary credit at its net, never VAT-free again, or the next taxed supply would
declare the same VAT twice (review r22)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.billing.credit_balance import book_in
from app.billing.credit_settle import completion_settle
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from domain.account_credit import CreditReason, checked_entry
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.invoice import VAT_FREE_CREDIT_LINE
from domain.price_basis import CREDIT_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_overtaken_placement import GUARD_S, _host_full
from tests.contract.test_unrestorable_payment import _second_host
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import DAY, World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")
SECOND = timedelta(seconds=1)


async def test_an_overtaken_renewal_gives_vat_free_credit_back_as_ordinary_credit_at_its_net(
    world: World,
) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None and sub.user_id == ALICE
    async with world.shop.factory() as uow:  # 1.00 EUR VAT-free, as an unapplied upgrade leaves
        await book_in(
            uow,
            checked_entry(
                user_id=ALICE,
                currency=sub.currency,
                amount=100,
                reason=CreditReason.OVERPAYMENT,
                reference="up:100",
                note="an upgrade not applied",
                created=world.now,
                vat_free=100,
            ),
        )
        await uow.commit()
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    shop = world.shop
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    late = await shop.renew(vm, method=PaymentMethod.REVOLUT, settle=settle)
    assert payment_meta(late)["credit_applied"]["vat_free"] == 100 and late.amount > 0
    world.at(sub.expires + 7 * DAY + SECOND)
    world.host.hold("delete_vm")
    run: asyncio.Task[LifecycleReport] = asyncio.create_task(check_subscriptions(world.deps))
    await asyncio.wait_for(world.host.entered("delete_vm").wait(), GUARD_S)
    await _host_full(world, vm)
    await _second_host(world, cpu=1)
    assert (await asyncio.wait_for(world.complete(late), GUARD_S)).completed
    world.host.let_go("delete_vm")
    await run
    await world.run_jobs()
    async with shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(late.id)
        parts = await uow.credit_ledger.lock_parts(ALICE, sub.currency)
    assert invoice is not None
    paid = await shop.payment(late.id)
    assert payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    declared = [x for x in invoice.document.lines if x.description.endswith("VAT included)")]
    assert any(x.description == VAT_FREE_CREDIT_LINE for x in invoice.document.lines)
    vat = sum(x.tax for x in declared)
    assert vat > 0  # the issued invoice declared VAT on the 1.00 VAT-free credit (0.19)
    # the 1.00 comes back worth the net it paid (0.81), as ordinary credit
    applied = payment_meta(paid)["credit_applied"]
    net_back = 100 * applied["vat_free_net"] // (applied["vat_free_net"] + applied["vat"])
    assert parts.vat_free == 0, (parts, vat)
    assert net_back == 81  # 0.81 net + 0.19 VAT
    assert parts.total == 51 + net_back  # the card's money, net of its declared VAT, and it
