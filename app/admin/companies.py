"""Admin companies (api.md §9.8): create, update, delete while nothing references them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from app.admin.catalogue_common import Fields, InUse, blank_to_none, evolve, not_found
from domain.errors import InvalidInput
from domain.model import Company
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory

#: the reference's base currencies, in its message's order.
BASE_CURRENCIES = ("EUR", "USD", "GBP", "CAD", "CHF", "AUD", "JPY", "BTC")
#: the optional (nullable) text fields of a company: its address and contacts
ADDRESS_FIELDS = (
    "address_1",
    "address_2",
    "city",
    "state",
    "country_code",
    "tax_id",
    "postcode",
    "phone",
    "email",
)


@attrs.frozen
class CompanyInfo:
    company: Company
    region_count: int


def _base_currency(value: Any) -> str:
    code = str(value).strip().upper()
    if not code:
        raise InvalidInput("Base currency cannot be empty")
    if code not in BASE_CURRENCIES:
        raise InvalidInput(
            f"Invalid currency code. Supported currencies: {', '.join(BASE_CURRENCIES)}"
        )
    return code


def _clean(fields: Fields) -> dict[str, Any]:
    """Optional strings trimmed (blank → null; `email` is stored '' for none)."""
    out: dict[str, Any] = {}
    for name in ADDRESS_FIELDS:
        if name in fields:
            value = blank_to_none(fields[name])
            out[name] = (value or "") if name == "email" else value
    if "country_code" in out and out["country_code"] is not None:
        out["country_code"] = out["country_code"].upper()
    return out


async def region_counts(uow: UnitOfWork) -> Counter[int]:
    return Counter(r.company_id for r in await uow.regions.list_all())


async def list_companies(uow_factory: UnitOfWorkFactory) -> list[CompanyInfo]:
    async with uow_factory() as uow:
        counts = await region_counts(uow)
        return [CompanyInfo(c, counts[c.id]) for c in await uow.companies.list_all()]


async def get_company(uow_factory: UnitOfWorkFactory, company_id: int) -> CompanyInfo:
    async with uow_factory() as uow:
        company = await uow.companies.get(company_id)
        if company is None:
            raise not_found("Company")
        return CompanyInfo(company, (await region_counts(uow))[company_id])


async def create_company(
    uow_factory: UnitOfWorkFactory, clock: Clock, fields: Fields
) -> CompanyInfo:
    name = str(fields.get("name") or "").strip()
    if not name:
        raise InvalidInput("Company name is required")
    currency = _base_currency(fields["base_currency"]) if fields.get("base_currency") else "EUR"
    company = Company(id=0, created=clock.now(), name=name, base_currency=currency)
    company = evolve(company, _clean(fields))
    async with uow_factory() as uow:
        stored = await uow.companies.add(company)
        await uow.commit()
    return CompanyInfo(stored, 0)


async def update_company(
    uow_factory: UnitOfWorkFactory, company_id: int, fields: Fields
) -> CompanyInfo:
    changes = _clean(fields)
    if "name" in fields:
        changes["name"] = str(fields["name"] or "").strip()
        if not changes["name"]:
            raise InvalidInput("Company name cannot be empty")
    if "base_currency" in fields:
        changes["base_currency"] = _base_currency(fields["base_currency"] or "")
    async with uow_factory() as uow:
        company = await uow.companies.get(company_id)
        if company is None:
            raise not_found("Company")
        updated = evolve(company, changes)
        await uow.companies.update(updated)
        count = (await region_counts(uow))[company_id]
        await uow.commit()
    return CompanyInfo(updated, count)


async def delete_company(uow_factory: UnitOfWorkFactory, company_id: int) -> None:
    """Refused while regions, IP space or payment-method configs belong to the company (their
    rows would point at nothing)."""
    async with uow_factory() as uow:
        if await uow.companies.get(company_id) is None:
            raise not_found("Company")
        regions = (await region_counts(uow))[company_id]
        if regions:
            raise InUse(f"Cannot delete company with {regions} assigned regions")
        if any(s.company_id == company_id for s in await uow.ip_spaces.list_all()):
            raise InUse("Cannot delete company: IP space belongs to it")
        if any(c.company_id == company_id for c in await uow.payment_methods.list_all()):
            raise InUse("Cannot delete company: payment method configs belong to it")
        if await uow.subscriptions.any_for_company(company_id):
            raise InUse("Cannot delete company: it has sold subscriptions")
        await uow.companies.remove(company_id)
        await uow.commit()
