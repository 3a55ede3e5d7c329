"""One shared way for tests to quote an Upgrade payment through `create_upgrade_payment`."""

from __future__ import annotations

from app.billing.credit_quote import Settle
from app.billing.upgrades import create_upgrade_payment
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment, Vm
from domain.tax import TaxRates
from domain.upgrade import UpgradeConfig
from tests.unit.billing.world import ALICE, Shop

FOUR_CPUS = UpgradeConfig(new_cpu=4)


async def upgrade_payment(
    shop: Shop,
    vm: Vm,
    cfg: UpgradeConfig = FOUR_CPUS,
    *,
    user_id: int | None = ALICE,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
    settle: Settle | None = None,
    tax_rates: TaxRates | None = None,
) -> SubscriptionPayment:
    """`create_upgrade_payment` on the shop's ports for `vm`; the defaults are the use
    case's own (Lightning, no settle, no tax rates), so leaving one out changes nothing."""
    return await create_upgrade_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        user_id=user_id,
        vm_id=vm.id,
        cfg=cfg,
        method=method,
        settle=settle,
        tax_rates=tax_rates,
    )
