"""The payment use cases a driving adapter calls: renewals, upgrades, LNURL, card webhooks."""

from __future__ import annotations

from app.billing import completion, lnurl, rail_settings, upgrades
from app.billing.credit_settle import completion_settle
from app.billing.rails import PaymentRails
from app.billing.renewal import renew, renew_idempotent
from app.bound.inject import bind
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from domain.tax import TaxRates
from domain.upgrade import UpgradeConfig
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory


class BillingUseCases:
    """Built once per process; quotes paid from credit complete through the normal path."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        rails: PaymentRails,
        rates: RateStore,
        tax_rates: TaxRates,
        queue: WorkQueue,
    ) -> None:
        self._renew = bind(renew, uow_factory, clock, rails, rates, tax_rates)
        self._renew_idempotent = bind(renew_idempotent, uow_factory, clock, rails, rates, tax_rates)
        self._create_upgrade_payment = bind(
            upgrades.create_upgrade_payment, uow_factory, clock, rails, rates
        )
        self.settle = completion_settle(uow_factory, clock, rails, queue)
        self.quote_upgrade = bind(upgrades.quote_upgrade, uow_factory, clock, rates)
        self.renew_by_amount = bind(
            lnurl.renew_by_amount, uow_factory, clock, rails, rates, tax_rates
        )
        self.lnurl_vm = bind(lnurl.lnurl_vm, uow_factory)
        self.webhook_signing_secrets = bind(rail_settings.webhook_signing_secrets, uow_factory)
        self.complete_card_payment = bind(
            completion.complete_card_payment, uow_factory, clock, rails, queue
        )

    async def renew(
        self,
        *,
        user_id: int | None,
        subscription_id: int | None = None,
        vm_id: int | None = None,
        method: PaymentMethod = PaymentMethod.LIGHTNING,
        intervals: int = 1,
    ) -> SubscriptionPayment:
        """`renewal.renew`; a quote the user's credit covers is completed at once."""
        return await self._renew(
            user_id=user_id,
            subscription_id=subscription_id,
            vm_id=vm_id,
            method=method,
            intervals=intervals,
            settle=self.settle,
        )

    async def renew_idempotent(
        self,
        *,
        user_id: int,
        idempotency_key: str,
        request_body_hash: bytes,
        subscription_id: int | None = None,
        vm_id: int | None = None,
        method: PaymentMethod = PaymentMethod.LIGHTNING,
        intervals: int = 1,
    ) -> SubscriptionPayment:
        """`renewal.renew_idempotent` (D11), settled from credit as `renew`."""
        return await self._renew_idempotent(
            user_id=user_id,
            idempotency_key=idempotency_key,
            request_body_hash=request_body_hash,
            subscription_id=subscription_id,
            vm_id=vm_id,
            method=method,
            intervals=intervals,
            settle=self.settle,
        )

    async def create_upgrade_payment(
        self,
        *,
        user_id: int | None,
        vm_id: int,
        cfg: UpgradeConfig,
        method: PaymentMethod = PaymentMethod.LIGHTNING,
    ) -> SubscriptionPayment:
        """`upgrades.create_upgrade_payment`, settled from credit as `renew`."""
        return await self._create_upgrade_payment(
            user_id=user_id, vm_id=vm_id, cfg=cfg, method=method, settle=self.settle
        )
