"""D23 at the wire: the renewal invoices a price change made stale are cancelled at LND
(invoicesrpc CancelInvoice, `POST /v2/invoices/cancel`), so a wallet can no longer pay them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from adapters.lightning.lnd import LndRestNode
from app.admin.subscriptions import LineItemPatch, update_line_item
from app.billing.rails import PaymentRails
from app.billing.upgrades import create_upgrade_payment
from domain.model import GIB
from domain.upgrade import UpgradeConfig
from tests.fakes.fake_lnd import FakeLnd, running_fake_lnd
from tests.unit.billing.world import ALICE, BOB, Shop, new_shop

CANCEL = "POST /v2/invoices/cancel"


@pytest.fixture
async def lnd_shop(tmp_path: Path) -> AsyncIterator[tuple[Shop, FakeLnd]]:
    async with running_fake_lnd(tmp_path) as fake:
        node = LndRestNode(
            fake.url,
            macaroon_hex=fake.macaroon_hex,
            tls_cert_path=fake.cert_path,
            request_timeout=5.0,
        )
        shop = await new_shop()
        try:
            yield attrs.evolve(shop, rails=PaymentRails(node)), fake
        finally:
            await node.aclose()


def _state(fake: FakeLnd, payment_hash: bytes) -> str:
    return str(fake.invoices[payment_hash]["state"])


async def test_a_paid_upgrade_cancels_pending_renewal_invoices_at_lnd(
    lnd_shop: tuple[Shop, FakeLnd],
) -> None:
    shop, fake = lnd_shop
    vm = await shop.order()
    first = await shop.renew(vm)
    fake.settle(first.id)
    await shop.complete(first)
    shop.clock.advance(timedelta(days=1))
    monthly = await shop.renew(vm)
    yearly = await shop.renew(vm, intervals=12)
    assert _state(fake, monthly.id) == _state(fake, yearly.id) == "OPEN"
    upgrade = await create_upgrade_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        user_id=ALICE,
        vm_id=vm.id,
        cfg=UpgradeConfig(new_cpu=4, new_memory=4 * GIB),
    )
    fake.settle(upgrade.id)
    report = await shop.complete(upgrade)

    assert set(report.cancelled) == {monthly.id, yearly.id} and report.problems == ()
    assert _state(fake, monthly.id) == _state(fake, yearly.id) == "CANCELED"
    assert _state(fake, upgrade.id) == "SETTLED"
    assert fake.requests.count(CANCEL) == 2
    with pytest.raises(ValueError, match="CANCELED"):
        fake.settle(monthly.id)  # LND refuses to settle a cancelled invoice


async def test_an_admin_price_change_cancels_the_invoice_at_lnd_and_a_rename_does_not(
    lnd_shop: tuple[Shop, FakeLnd],
) -> None:
    shop, fake = lnd_shop
    vm = await shop.order()
    quote = await shop.renew(vm)
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(sub.id)
    await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(name="renamed"),
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,
    )
    assert _state(fake, quote.id) == "OPEN" and CANCEL not in fake.requests
    await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(setup_amount=500),
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,
    )
    assert _state(fake, quote.id) == "CANCELED"
