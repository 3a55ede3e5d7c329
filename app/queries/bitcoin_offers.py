"""Offers priced in BTC, which a server with Lightning off can sell but never charge."""

from __future__ import annotations

from domain.money import Currency
from ports.storage import UnitOfWorkFactory


def _bitcoin(code: str) -> bool:
    return code.strip().upper() == Currency.BTC.value


async def bitcoin_priced_offers(uow_factory: UnitOfWorkFactory) -> list[str]:
    """The enabled templates, custom pricings and IP-space tiers priced in BTC, each named
    for the operator (`template 3 "Tiny"`): only Lightning charges bitcoin, so with Lightning
    off they cannot be paid (a VM order of them is refused, a renewal finds no rail)."""
    async with uow_factory() as uow:
        plans = {p.id: p for p in await uow.cost_plans.list_all()}
        templates = await uow.templates.list_all()
        pricings = await uow.custom_pricing.list_all()
        tiers = await uow.ip_space_pricing.list_all()
    found = [
        f'template {t.id} "{t.name}"'
        for t in templates
        if t.enabled and t.cost_plan_id in plans and _bitcoin(plans[t.cost_plan_id].currency)
    ]
    found += [
        f'custom pricing {p.id} "{p.name}"' for p in pricings if p.enabled and _bitcoin(p.currency)
    ]
    found += [f"IP-space tier {t.id}" for t in tiers if _bitcoin(t.currency)]
    return found
