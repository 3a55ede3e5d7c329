"""Known open problem, not fixed yet: an upgrade paid but not applied is credited net of the
buyer's VAT rate though upgrades bear none (an IE buyer pays EUR 36.74 by card and gets
29.86 of credit); on memory, SQLite and MariaDB. A strict xfail until the credit ledger
knows which credit bore no VAT: credited whole, that credit must count whole on an upgrade
and as VAT-inclusive on a taxed renewal (crediting it whole as ordinary, net-value credit
would let it buy 23 % more renewal than was paid)."""

from __future__ import annotations

import pytest

from app.billing.credit_settle import completion_settle
from domain.enums import PaymentMethod
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop


@pytest.mark.xfail(strict=True, reason="r4 #1: unapplied upgrade credited net of VAT")
async def test_an_unapplied_upgrade_gives_back_all_it_was_paid_as_credit(shop: Shop) -> None:
    """ALICE (IE, 23 %) pays an upgrade by card; a renewal moved the expiry its price ran to,
    so it is not applied: all she paid for it is on her balance, and a quote of the same
    upgrade, with the price unchanged, is paid from that credit without VAT taken off."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm))).completed
    card = PaymentMethod.REVOLUT
    upgrade = await upgrade_payment(shop, vm, method=card, tax_rates=shop.tax_rates)
    assert upgrade.tax == 0 and upgrade.amount > 0
    assert (await shop.complete(await shop.renew(vm))).completed  # the quote is outdated now
    assert (await shop.complete(upgrade)).completed

    assert await shop.balances() == {"EUR": upgrade.amount}

    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    again = await upgrade_payment(shop, vm, method=card, tax_rates=shop.tax_rates, settle=settle)
    applied = again.metadata["credit_applied"]["charged"]
    assert applied == min(upgrade.amount, again.amount + applied)
