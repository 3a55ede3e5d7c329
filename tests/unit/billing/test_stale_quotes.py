"""D23: a payment buys time at the price in force when it completes; price changes end quotes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from app.account.profile import AccountPatch, update_account
from app.admin.subscriptions import LineItemPatch, update_line_item
from app.admin.users import update_user
from app.billing.errors import PriceChanged
from app.billing.lnurl import renew_by_amount
from app.billing.renewal import renew
from domain.enums import IntervalType, PaymentMethod, SubscriptionType, VmHistoryActionType
from domain.intervals import MONTHLY
from domain.model import GIB, IpAssignment, LineItem, Subscription, SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from ports.jobs import SendAdminNotification
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, BOB, START, Shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)
#: 16 vCPU is over the shop's limit; its biggest custom spec is 8 CPU / 16 GiB / 512 GiB:
#: 8 × 200 + 16 × 100 + 512 × 50 = EUR 288.00 a month, against the Tiny plan's EUR 1.32.
BIG = UpgradeConfig(new_cpu=8, new_memory=16 * GIB, new_disk=512 * GIB)
BIG_MONTHLY_MSAT = 288_000_000  # EUR 288.00 at 100 000 EUR/BTC
TINY_MONTHLY_MSAT = 1_320_000
#: by value, time is measured on the subscription's grid of months counted from its
#: creation (31 Jan 12:00): the month from 28 Feb is the cell 28 Feb → 31 Mar, 31 days
FEB_28_TO_MAR_31 = 31 * 86_400
RENEWED = VmHistoryActionType.RENEWED


async def _paid_tiny(shop: Shop) -> Vm:
    """A Tiny VM paid for one month: expires 28 Feb 12:00 (ordered 31 Jan 12:00)."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == FEB_28
    return vm


async def _upgrade_and_pay(shop: Shop, vm: Vm) -> None:
    upgrade = await upgrade_payment(shop, vm, BIG)
    report = await shop.complete(upgrade)
    assert report.completed and report.problems == ()


def _admin_notices(shop: Shop) -> list[SendAdminNotification]:
    return [job for job in shop.queue.sent if isinstance(job, SendAdminNotification)]


async def _stale_renewal_after_upgrade(shop: Shop, intervals: int) -> tuple[Vm, int]:
    vm = await _paid_tiny(shop)
    shop.clock.advance(timedelta(days=1))
    stale = await shop.renew(vm, intervals=intervals)
    assert stale.amount == intervals * TINY_MONTHLY_MSAT
    await _upgrade_and_pay(shop, vm)
    # the price change expired the renewal and cancelled its invoice at the node
    assert (await shop.payment(stale.id)).expires == shop.clock.now()
    assert stale.id in shop.node.cancelled
    shop.queue.sent.clear()
    report = await shop.complete(stale)  # a wallet paid it just before the cancel
    assert report.completed
    sub = await shop.subscription(vm)
    assert sub.expires is not None
    seconds = int((sub.expires - FEB_28).total_seconds())
    assert (await shop.payment(stale.id)).time_value == seconds
    [renewed] = [h for h in await shop.history(vm, RENEWED) if h.metadata.get("credit")]
    assert renewed.metadata["time_added_seconds"] == seconds
    [notice] = _admin_notices(shop)
    assert "credited by value" in notice.message
    assert "price per interval EUR 1.32 → EUR 288.00" in notice.message
    return vm, seconds


async def test_a_stale_120_month_renewal_after_an_upgrade_buys_only_its_value(shop: Shop) -> None:
    """Issue 8 §1: ×120 at the Tiny price paid after the upgrade moved 120 months."""
    _, seconds = await _stale_renewal_after_upgrade(shop, 120)
    # 120 × EUR 1.32 = EUR 158.40 buys 158.40 / 288 = 0.55 of the month from 28 Feb
    assert seconds == FEB_28_TO_MAR_31 * 55 // 100 == 1_473_120


async def test_a_stale_one_month_renewal_after_an_upgrade_buys_only_its_value(shop: Shop) -> None:
    _, seconds = await _stale_renewal_after_upgrade(shop, 1)
    assert seconds == FEB_28_TO_MAR_31 * TINY_MONTHLY_MSAT // BIG_MONTHLY_MSAT == 12_276


async def test_monthly_invoices_paid_in_a_burst_in_any_order_add_exact_calendar_months(
    shop: Shop,
) -> None:
    """Issue 8: 54–62 monthly invoices paid together drifted −8 to +6 days (quote seconds)."""
    vm = await _paid_tiny(shop)
    invoices: list[SubscriptionPayment] = []
    for _ in range(60):
        invoices.append(await shop.renew(vm))
        shop.clock.advance(timedelta(minutes=11))  # each expires, so the next is a new one
    assert len({p.id for p in invoices}) == 60
    random.Random(8).shuffle(invoices)
    for payment in invoices:  # the late settlements of wallets that paid in time
        assert (await shop.complete(payment)).completed
    sub = await shop.subscription(vm)
    assert sub.expires == datetime(2031, 2, 28, 12, tzinfo=UTC)  # 60 calendar months on
    assert _admin_notices(shop) == []


async def test_n_interval_renewals_count_from_the_expiry_at_completion(shop: Shop) -> None:
    """A ×3 quoted while expiry was 28 Feb (89 days on) and paid after another month was
    paid: three calendar months from 28 Mar (92 days), not the quote's 89 days."""
    vm = await _paid_tiny(shop)
    three = await shop.renew(vm, intervals=3)
    assert three.time_value == 89 * 86_400
    await shop.complete(await shop.renew(vm, method=PaymentMethod.REVOLUT))  # → 28 Mar
    await shop.complete(three)
    assert (await shop.subscription(vm)).expires == datetime(2026, 6, 28, 12, tzinfo=UTC)
    assert (await shop.payment(three.id)).time_value == 92 * 86_400


async def test_a_stale_lnurl_invoice_buys_its_value_at_the_new_price(shop: Shop) -> None:
    vm = await _paid_tiny(shop)
    shop.clock.advance(timedelta(days=1))
    # IE 23 % is inside the amount: 123 000 000 msat is 100 000 000 net
    lnurl = await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=123_000_000,
    )
    assert lnurl.amount == 100_000_000
    await _upgrade_and_pay(shop, vm)
    assert (await shop.payment(lnurl.id)).expires == shop.clock.now()
    assert lnurl.id in shop.node.cancelled
    shop.queue.sent.clear()
    await shop.complete(lnurl)
    # 100 000 000 / 288 000 000 of the month from 28 Feb (not 75 Tiny months' worth)
    expires = (await shop.subscription(vm)).expires
    assert expires == FEB_28 + timedelta(seconds=FEB_28_TO_MAR_31 * 100 // 288)
    assert len(_admin_notices(shop)) == 1


async def test_a_fresh_lnurl_invoice_buys_its_value_from_the_expiry_at_completion(
    shop: Shop,
) -> None:
    vm = await _paid_tiny(shop)
    lnurl = await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=8_118_000,  # 5 × EUR 1.32 + 23 %: five months
    )
    assert lnurl.amount == 5 * TINY_MONTHLY_MSAT
    await shop.complete(await shop.renew(vm))  # a monthly renewal completes first
    await shop.complete(lnurl)
    assert (await shop.subscription(vm)).expires == datetime(2026, 8, 28, 12, tzinfo=UTC)
    assert _admin_notices(shop) == []


async def _ip_subscription(shop: Shop, amount: int = 1000) -> Subscription:
    """A subscription of one IP range at EUR 10.00 a month, paid for its first month."""
    async with shop.factory() as uow:
        sub, _ = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=ALICE,
                company_id=1,
                name="IPs",
                created=START,
                currency="EUR",
                interval_type=IntervalType.MONTH,
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="/29",
                    amount=amount,
                )
            ],
        )
        await uow.commit()
    first = await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=ALICE,
        subscription_id=sub.id,
    )
    await shop.complete(first)
    return await _sub(shop, sub.id)


async def _sub(shop: Shop, sub_id: int) -> Subscription:
    async with shop.factory() as uow:
        found = await uow.subscriptions.get(sub_id)
    assert found is not None
    return found


async def test_an_admin_price_change_ends_pending_quotes_and_a_late_one_buys_its_value(
    shop: Shop,
) -> None:
    sub = await _ip_subscription(shop)
    assert sub.expires == FEB_28
    quote = await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=ALICE,
        subscription_id=sub.id,
        intervals=3,
    )
    assert quote.amount == 30_000_000
    async with shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(sub.id)
    # a rename changes no price: the quote stays payable
    await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(name="/29 block"),
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,
    )
    assert (await shop.payment(quote.id)).expires > shop.clock.now()
    await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(amount=2000),
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,
    )
    assert (await shop.payment(quote.id)).expires == shop.clock.now()
    assert shop.node.cancelled[-1] == quote.id
    await shop.complete(quote)
    # EUR 30.00 at EUR 20.00 a month: on the grid of months from 31 Jan, the month 28 Feb →
    # 31 Mar, then half of 31 Mar → 30 Apr (30 days)
    after = await _sub(shop, sub.id)
    assert after.expires == datetime(2026, 3, 31, 12, tzinfo=UTC) + timedelta(days=15)


async def test_a_tax_country_change_ends_pending_quotes(shop: Shop) -> None:
    vm = await _paid_tiny(shop)
    quote = await shop.renew(vm)
    card = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    await update_account(
        shop.factory,
        shop.clock,
        shop.queue,
        ALICE,
        AccountPatch(contact_nip17=False, contact_email=False, country_code="DE"),
        public_url="https://x",
        rails=shop.rails,
    )
    now = shop.clock.now()
    assert (await shop.payment(quote.id)).expires == now
    assert (await shop.payment(card.id)).expires == now
    assert quote.id in shop.node.cancelled
    assert shop.revolut.cancelled == [card.external_id]
    shop.queue.sent.clear()
    await shop.complete(quote)  # paid anyway: same price, so one calendar month; told
    assert (await shop.subscription(vm)).expires == datetime(2026, 3, 28, 12, tzinfo=UTC)
    [notice] = _admin_notices(shop)
    assert "tax country IRL → DEU" in notice.message


async def test_an_admin_setting_the_same_country_again_ends_nothing(shop: Shop) -> None:
    vm = await _paid_tiny(shop)
    quote = await shop.renew(vm)
    await update_user(
        shop.factory,
        ALICE,
        {"country_code": "irl"},
        clock=shop.clock,
        rails=shop.rails,
        queue=shop.queue,
    )
    assert (await shop.payment(quote.id)).expires > shop.clock.now()
    await update_user(
        shop.factory,
        ALICE,
        {"country_code": "FR"},
        clock=shop.clock,
        rails=shop.rails,
        queue=shop.queue,
    )
    assert (await shop.payment(quote.id)).expires == shop.clock.now()


async def test_an_address_added_to_a_custom_vm_between_quote_and_payment_is_priced(
    shop: Shop,
) -> None:
    """No hook ends quotes when an address is assigned (the worker does it), but completion
    still compares prices: the extra IPv4 is paid for out of the amount."""
    async with shop.factory() as uow:
        pricing = await uow.custom_pricing.get(1)
        assert pricing is not None
        await uow.custom_pricing.update(attrs.evolve(pricing, ip4_cost=400))
        await uow.commit()
    vm = await shop.order_custom()  # 2 × 200 + 4 × 100 + 80 × 50 + 1 × 400 = EUR 52.00
    await shop.complete(await shop.renew(vm))
    quote = await shop.renew(vm)
    async with shop.factory() as uow:
        for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
            await uow.ip_assignments.add(IpAssignment(id=0, vm_id=vm.id, ip_range_id=1, ip=ip))
        await uow.commit()
    await shop.complete(quote)
    # EUR 52.00 paid, EUR 60.00 a month now (3 IPv4): 52/60 of 28 Feb → 31 Mar
    expires = (await shop.subscription(vm)).expires
    assert expires == FEB_28 + timedelta(seconds=FEB_28_TO_MAR_31 * 52 // 60)
    assert MONTHLY.add_to(FEB_28) > expires


async def test_a_price_change_while_the_invoice_is_made_refuses_the_quote(shop: Shop) -> None:
    """The sweep cannot expire a quote not stored yet: storing it checks the price again."""
    sub = await _ip_subscription(shop)
    async with shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(sub.id)
    make_invoice = shop.node.create_invoice

    async def racing(amount_msat: int, memo: str, expiry_seconds: int) -> Any:
        invoice = await make_invoice(amount_msat, memo, expiry_seconds)
        # another request (an admin) changes the price while our invoice is being made
        await update_line_item(
            shop.factory,
            item.id,
            LineItemPatch(amount=2000),
            clock=shop.clock,
            rails=shop.rails,
            admin_id=BOB,
        )
        return invoice

    shop.node.create_invoice = racing  # type: ignore[method-assign]
    with pytest.raises(PriceChanged) as err:
        await renew(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            user_id=ALICE,
            subscription_id=sub.id,
        )
    assert err.value.kind == "conflict"
    [invoice_hash] = [
        h for h in shop.node.invoices if h not in {p.id for p in await _payments(shop, sub)}
    ]
    assert shop.node.cancelled == [invoice_hash]  # the unstored invoice is cancelled
    assert all(p.is_paid for p in await _payments(shop, sub))  # nothing new stored


async def _payments(shop: Shop, sub: Subscription) -> list[SubscriptionPayment]:
    async with shop.factory() as uow:
        return (await uow.payments.list_by_subscription(sub.id, 100)).items


async def test_a_stale_card_order_in_the_old_currency_is_valued_at_its_quotes_rates(
    shop: Shop,
) -> None:
    """Upgraded into a USD pricing: a EUR card order quoted before is converted with the BTC
    rates stored with its quote (its own rates), not today's and not refused."""
    async with shop.factory() as uow:
        pricing = await uow.custom_pricing.get(1)
        assert pricing is not None
        await uow.custom_pricing.update(attrs.evolve(pricing, currency="USD"))
        await uow.commit()
    vm = await shop.order()
    await shop.complete(await shop.renew(vm, method=PaymentMethod.REVOLUT))
    stale = await shop.renew(vm, method=PaymentMethod.REVOLUT, intervals=3)
    assert (stale.currency, stale.amount) == ("EUR", 396)
    upgrade = await upgrade_payment(shop, vm, method=PaymentMethod.REVOLUT)
    await shop.complete(upgrade)  # now USD 42.00 a month
    assert stale.external_id in shop.revolut.cancelled
    await shop.complete(stale)
    # EUR 3.96 = USD 3.96 at the quote's rates (both 100 000 per BTC): 396/4200 of a month
    expires = (await shop.subscription(vm)).expires
    assert expires == FEB_28 + timedelta(seconds=FEB_28_TO_MAR_31 * 396 // 4200)
