"""A refund right after an upgrade pays back no more than was paid, on memory, SQLite and
MariaDB (found by r3): D7 charges the growth at one rate per second of the month ending at the
expiry, so 120 months ending after a 31-day month are charged ~117.8 months of it, while the
price in force counted the whole 120 and a refund gave EUR 619.60 more than it took in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from domain.enums import PaymentMethod
from domain.model import GIB, SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    REFUND_PATHS,
    RefundPath,
    credited,
    figure,
)
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop

#: the shop's biggest custom spec: EUR 288.00 a month, against the Tiny plan's EUR 1.32
BIG = UpgradeConfig(new_cpu=8, new_memory=16 * GIB, new_disk=512 * GIB)
BIG_CENTS = 28_800
#: 100 000 EUR per BTC: msat per cent
MSAT_PER_CENT = 10_000


async def _upgraded(
    shop: Shop, at: datetime, months: int, method: PaymentMethod
) -> tuple[Vm, list[SubscriptionPayment]]:
    """ALICE's Tiny VM bought at `at` for `months` months in one invoice, then upgraded to
    BIG at once, both paid by `method`; the two payments."""
    shop.clock.set(at)
    vm = await shop.order()
    renewal = await shop.renew(vm, intervals=months, method=method)
    await shop.complete(renewal)
    upgrade = await upgrade_payment(shop, vm, BIG, method=method)
    assert (await shop.complete(upgrade)).completed
    shop.queue.sent.clear()
    return vm, [renewal, upgrade]


def _paid_cents(payments: list[SubscriptionPayment]) -> Fraction:
    """What the payments carried before tax and fee, in EUR cents (msat at 100 000 EUR/BTC)."""
    return sum(
        (Fraction(p.amount, MSAT_PER_CENT if p.currency == "BTC" else 1) for p in payments),
        Fraction(0),
    )


@REFUND_PATHS
async def test_a_refund_right_after_an_upgrade_pays_back_what_was_paid(
    shop: Shop, path: RefundPath
) -> None:
    """31 Mar 2026 + 120 months = 31 Mar 2036, after a 31-day month: the upgrade charged
    EUR 33 782.01 for the growth (33 782.00…, up to the cent), ~117.8 of its 120 months at
    today's price. The price in force values the time at 120 × EUR 288.00 = EUR 34 560.00;
    what was paid for it is the renewal's EUR 158.40 and the upgrade's: EUR 33 940.41, paid
    back to the cent."""
    vm, [renewal, upgrade] = await _upgraded(
        shop, datetime(2026, 3, 31, 12, tzinfo=UTC), 120, PaymentMethod.REVOLUT
    )
    assert (await shop.subscription(vm)).expires == datetime(2036, 3, 31, 12, tzinfo=UTC)
    assert (renewal.amount, upgrade.amount) == (120 * PLAN_EUR_CENTS, 3_378_201)

    assert await path(shop, vm) == renewal.amount + upgrade.amount < 120 * BIG_CENTS


async def test_a_lightning_upgrade_refunded_pays_back_its_msat_worth(shop: Shop) -> None:
    """Paid by Lightning, each payment is worth its msat at the rates it was quoted at: the
    refund is their sum in cents, floored."""
    vm, paid = await _upgraded(
        shop, datetime(2026, 3, 31, 12, tzinfo=UTC), 120, PaymentMethod.LIGHTNING
    )

    refunded = await figure(shop, vm)

    worth = _paid_cents(paid)
    assert refunded == worth.numerator // worth.denominator < 120 * BIG_CENTS


async def test_later_the_refund_is_the_unused_share_of_what_was_paid(shop: Shop) -> None:
    """Ten days on, 10 of the renewal's 3 653 days and 10 of the upgrade's are used: the
    refund is the rest of both payments, floored."""
    vm, [renewal, upgrade] = await _upgraded(
        shop, datetime(2026, 3, 31, 12, tzinfo=UTC), 120, PaymentMethod.REVOLUT
    )
    shop.clock.advance(timedelta(days=10))
    days = (datetime(2036, 3, 31, tzinfo=UTC) - datetime(2026, 3, 31, tzinfo=UTC)).days
    share = Fraction(days - 10, days)

    assert await credited(shop, vm) == int((renewal.amount + upgrade.amount) * share)


async def test_after_a_short_last_month_the_refund_is_todays_price(shop: Shop) -> None:
    """15 May 2026 + 10 months = 15 Mar 2027, after a 28-day month: D7 charged the growth
    304/28 months, more than the 10 the price in force counts; the refund is the lesser, the
    10 months at today's EUR 288.00 (nothing is paid back beyond what the time is worth)."""
    vm, paid = await _upgraded(
        shop, datetime(2026, 5, 15, 12, tzinfo=UTC), 10, PaymentMethod.REVOLUT
    )
    assert _paid_cents(paid) > 10 * BIG_CENTS

    assert await figure(shop, vm) == 10 * BIG_CENTS
