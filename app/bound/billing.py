"""The payment use cases a driving adapter calls: renewals, upgrades, LNURL, card webhooks."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from app.billing import completion, lnurl, money_back, rail_settings, upgrades
from app.billing.credit_settle import completion_settle
from app.billing.renewal import renew, renew_idempotent
from app.bound.inject import bind

if TYPE_CHECKING:
    from app.services import Services


class BillingUseCases:
    """Built once per process; quotes paid from credit complete through the normal path."""

    def __init__(self, svc: Services) -> None:
        uow_factory, clock, rails, rates = svc.uow_factory, svc.clock, svc.rails, svc.rates
        tax_rates, queue = svc.tax_rates, svc.queue
        self.settle = completion_settle(uow_factory, clock, rails, queue)
        renewing = (uow_factory, clock, rails, rates, tax_rates)
        # a quote the user's credit covers is completed at once, through the normal path
        cap = svc.max_live_quotes
        self.renew = partial(renew, *renewing, settle=self.settle, max_live_quotes=cap)
        self.renew_idempotent = partial(
            renew_idempotent, *renewing, settle=self.settle, max_live_quotes=cap
        )
        self.create_upgrade_payment = partial(
            upgrades.create_upgrade_payment,
            uow_factory,
            clock,
            rails,
            rates,
            settle=self.settle,
            tax_rates=tax_rates,
            max_live_quotes=cap,
        )
        self.quote_upgrade = bind(upgrades.quote_upgrade, uow_factory, clock, rates)
        self.renew_by_amount = bind(
            lnurl.renew_by_amount, uow_factory, clock, rails, rates, tax_rates
        )
        self.lnurl_offer = bind(lnurl.lnurl_offer, uow_factory, clock, rates, tax_rates)
        self.webhook_signing_secrets = bind(rail_settings.webhook_signing_secrets, uow_factory)
        self.complete_card_payment = bind(
            completion.complete_card_payment, uow_factory, clock, rails, queue
        )
        self.report_money_back = bind(
            money_back.report_money_back, uow_factory, clock, rails, queue
        )
