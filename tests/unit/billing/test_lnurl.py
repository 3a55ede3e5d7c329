"""Pay-what-you-want renewals through LNURL-pay (LUD-06, pricing.md §7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from app.billing.errors import AmountOutOfRange, TooManyOpenInvoices, VmNotFound, VmNotPaidYet
from app.billing.lnurl import (
    LNURL_CLIENT_KEY,
    LNURL_MAX_LIVE_INVOICES,
    LNURL_MAX_LIVE_PER_CLIENT,
    LNURL_MIN_MSAT,
    lnurl_offer,
    renew_by_amount,
)
from domain.enums import PaymentMethod, SubscriptionPaymentType, SubscriptionType
from domain.model import LineItem, Subscription, SubscriptionPayment, Vm
from tests.unit.billing.world import ALICE, BOB, START, Shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)


async def _by_amount(
    shop: Shop, vm: Vm, msat: int, client: str | None = None
) -> SubscriptionPayment:
    return await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=msat,
        client=client,
    )


async def _paid_vm_with_ids_apart(shop: Shop) -> Vm:
    """A paid VM whose subscription id differs from its VM id (the reference mixed them up)."""
    async with shop.factory() as uow:
        await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0, user_id=ALICE, company_id=1, name="x", created=START, currency="EUR"
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="x",
                    amount=1,
                )
            ],
        )
        await uow.commit()
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).id != vm.id
    return vm


@pytest.mark.parametrize("msat", [0, 999, 1_000, 99_000, 100_500, 1_000_000_001])
async def test_amounts_outside_the_accepted_range_are_refused(shop: Shop, msat: int) -> None:
    vm = await shop.order()
    with pytest.raises(AmountOutOfRange) as err:
        await _by_amount(shop, vm, msat)
    assert err.value.kind == "bad_input"
    assert await shop.payments(vm) == []


async def test_the_time_bought_is_floor_of_seconds_times_paid_over_price(shop: Shop) -> None:
    vm = await _paid_vm_with_ids_apart(shop)
    payment = await _by_amount(shop, vm, 123_000)
    # tax-inclusive (LUD-06: the invoice is for exactly the amount asked): 23 % in IE
    net = 123_000 * 100 // 123
    assert (payment.amount, payment.tax) == (net, 123_000 - net) == (100_000, 23_000)
    assert shop.node.invoices[payment.id].amount_msat == 123_000
    assert payment.metadata["tax_rate"] == "23"  # what its invoice prints
    # one month from 28 Feb on the subscription's grid (months from its creation, 31 Jan)
    # is 28 Feb → 31 Mar, 2 678 400 s, for 1 320 000 msat
    assert payment.time_value == 2_678_400 * 100_000 // 1_320_000 == 202_909
    assert payment.subscription_id == (await shop.subscription(vm)).id
    assert payment.payment_type is SubscriptionPaymentType.RENEWAL
    assert payment.payment_method is PaymentMethod.LIGHTNING
    await shop.complete(payment)
    assert (await shop.subscription(vm)).expires == FEB_28 + timedelta(seconds=202_909)


async def test_an_lnurl_payment_records_exactly_the_amount_the_wallet_asked(shop: Shop) -> None:
    """LUD-06 wallets check the invoice is for the amount they chose: a whole-sat amount
    is invoiced as it is, and the payment books no rounding fee (net + tax = the amount)."""
    vm = await _paid_vm_with_ids_apart(shop)
    payment = await _by_amount(shop, vm, 100_000)
    assert (payment.amount, payment.tax, payment.processing_fee) == (81_300, 18_700, 0)
    assert payment.total == shop.node.invoices[payment.id].amount_msat == 100_000


async def test_the_advertised_minimum_is_the_enforced_one(shop: Shop) -> None:
    """The reference advertised minSendable 100 000 msat and invoiced 1 000 (issue 8 §2)."""
    vm = await _paid_vm_with_ids_apart(shop)
    assert LNURL_MIN_MSAT == 100_000
    with pytest.raises(AmountOutOfRange):
        await _by_amount(shop, vm, LNURL_MIN_MSAT - 1_000)
    assert (await _by_amount(shop, vm, LNURL_MIN_MSAT)).amount > 0


async def test_a_live_invoice_for_the_same_amount_is_reused(shop: Shop) -> None:
    """D25: 200 identical requests no longer store 200 payment rows."""
    vm = await _paid_vm_with_ids_apart(shop)
    before = len(await shop.payments(vm))
    first = await _by_amount(shop, vm, 500_000)
    for _ in range(20):
        assert (await _by_amount(shop, vm, 500_000)).id == first.id
    other = await _by_amount(shop, vm, 600_000)
    assert other.id != first.id
    assert len(await shop.payments(vm)) == before + 2
    assert len(shop.node.invoices) == before + 2  # no invoice made and thrown away either
    assert (await shop.renew(vm)).id not in (first.id, other.id)  # D10 never picks it

    shop.clock.set(first.expires - timedelta(seconds=59))  # too little life left to hand out
    fresh = await _by_amount(shop, vm, 500_000)
    assert fresh.id != first.id
    await shop.complete(fresh)
    assert (await _by_amount(shop, vm, 500_000)).id not in (first.id, fresh.id)  # paid: new


async def test_a_never_paid_vm_cannot_be_set_up_by_a_stranger(shop: Shop) -> None:
    """D25: 1 sat set up someone's unpaid order and built it; now LNURL only tops up."""
    vm = await shop.order()
    with pytest.raises(VmNotPaidYet) as err:
        await _by_amount(shop, vm, 100_000)
    assert err.value.kind == "unprocessable"
    assert await shop.payments(vm) == [] and shop.node.invoices == {}
    sub = await shop.subscription(vm)
    assert not sub.is_setup and sub.expires is None


async def test_a_vm_given_time_without_a_payment_can_be_topped_up(shop: Shop) -> None:
    """An expiry without a paid payment (an operator's, or an adopted comped LNVPS VM that
    keeps is_setup = 0, D18) is service the owner may extend by LNURL like a paid one."""
    vm = await shop.order()
    sub = await shop.subscription(vm)
    given = shop.clock.now() + timedelta(days=30)
    async with shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, expires=given))
        await uow.commit()
    payment = await _by_amount(shop, vm, 100_000)
    await shop.complete(payment)
    after = await shop.subscription(vm)
    assert after.expires is not None and after.expires > given


async def test_a_vm_given_time_that_still_owes_a_setup_fee_is_not_topped_up(shop: Shop) -> None:
    """An LNURL payment is priced as a renewal; completing it sets the subscription up, so
    a setup fee it still owes would never be charged: its owner's renew request (a Purchase)
    pays first."""
    vm = await shop.order()
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        await uow.subscriptions.update(
            attrs.evolve(sub, expires=shop.clock.now() + timedelta(days=30))
        )
        (item,) = await uow.line_items.list_by_subscription(sub.id)
        await uow.line_items.update(attrs.evolve(item, setup_amount=500))
        await uow.commit()
    with pytest.raises(VmNotPaidYet):
        await _by_amount(shop, vm, 100_000)
    assert await shop.payments(vm) == []


async def test_an_untaxed_buyer_gets_time_for_the_whole_amount(shop: Shop) -> None:
    vm = await shop.order(user_id=BOB)
    await shop.complete(await shop.renew(vm))
    payment = await _by_amount(shop, vm, 100_000)
    assert (payment.amount, payment.tax, payment.time_value) == (100_000, 0, 202_909)
    assert payment.metadata["tax_rate"] == "0"


async def test_a_deleted_vm_cannot_be_paid_by_amount(shop: Shop) -> None:
    vm = await shop.order()
    async with shop.factory() as uow:
        await uow.vms.delete(vm.id)
        await uow.commit()
    with pytest.raises(VmNotFound):
        await _by_amount(shop, vm, 100_000)


async def test_a_vm_has_at_most_twenty_live_lnurl_invoices(shop: Shop) -> None:
    """Reuse stops repeats of one amount; this stops a spread of amounts (many addresses)."""
    vm = await _paid_vm_with_ids_apart(shop)
    made = [await _by_amount(shop, vm, 100_000 * (i + 1)) for i in range(LNURL_MAX_LIVE_INVOICES)]
    rows = len(await shop.payments(vm))
    with pytest.raises(TooManyOpenInvoices) as err:
        await _by_amount(shop, vm, 99_000_000)
    assert err.value.kind == "unprocessable"
    assert len(await shop.payments(vm)) == rows
    assert (await _by_amount(shop, vm, 200_000)).id == made[1].id  # reuse still answers
    assert (await shop.renew(vm)).id not in {p.id for p in made}  # the owner's renew is apart
    shop.clock.set(made[0].expires)  # all expired: room again
    await _by_amount(shop, vm, 99_000_000)


async def test_one_client_holds_at_most_five_of_a_vms_live_lnurl_invoices(shop: Shop) -> None:
    """D25: a stranger's spread of amounts cannot fill the VM's cap and lock the owner out."""
    vm = await _paid_vm_with_ids_apart(shop)
    made = [
        await _by_amount(shop, vm, 100_000 * (i + 1), client="2001:db8::/48")
        for i in range(LNURL_MAX_LIVE_PER_CLIENT)
    ]
    assert made[0].metadata[LNURL_CLIENT_KEY] == "2001:db8::/48"
    rows, invoices = len(await shop.payments(vm)), len(shop.node.invoices)
    with pytest.raises(TooManyOpenInvoices, match="from your address") as err:
        await _by_amount(shop, vm, 99_000_000, client="2001:db8::/48")
    assert err.value.kind == "unprocessable"
    assert (len(await shop.payments(vm)), len(shop.node.invoices)) == (rows, invoices)
    assert (await _by_amount(shop, vm, 200_000, client="2001:db8::/48")).id == made[1].id
    await _by_amount(shop, vm, 99_000_000, client="198.51.100.7")  # the owner's wallet
    shop.clock.set(made[0].expires)  # expired: the client's room is back
    await _by_amount(shop, vm, 98_000_000, client="2001:db8::/48")


async def test_the_vms_cap_counts_the_invoices_of_every_client(shop: Shop) -> None:
    vm = await _paid_vm_with_ids_apart(shop)
    for i in range(LNURL_MAX_LIVE_INVOICES):
        client = f"198.51.100.{i // LNURL_MAX_LIVE_PER_CLIENT}"
        await _by_amount(shop, vm, 100_000 * (i + 1), client=client)
    with pytest.raises(TooManyOpenInvoices, match="for this VM: pay"):
        await _by_amount(shop, vm, 99_000_000, client="203.0.113.9")


async def test_a_vm_whose_120_intervals_cost_less_than_the_minimum_has_no_offer(
    shop: Shop,
) -> None:
    """maxSendable is what 120 intervals cost: below minSendable no amount could be taken,
    so the payRequest is refused rather than advertising max < min."""
    async with shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None
        await uow.cost_plans.update(attrs.evolve(plan, currency="BTC", amount=100_000))
        await uow.commit()
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    async with shop.factory() as uow:  # 100 msat a month: 120 months is 12 000 msat
        await uow.cost_plans.update(attrs.evolve(plan, currency="BTC", amount=100))
        await uow.commit()
    with pytest.raises(AmountOutOfRange, match="cannot be topped up by Lightning address"):
        await lnurl_offer(shop.factory, shop.clock, shop.rates, shop.tax_rates, vm.id)
    with pytest.raises(AmountOutOfRange, match="cannot be topped up by Lightning address"):
        await _by_amount(shop, vm, LNURL_MIN_MSAT)
