"""Payment-method configs (api.md §9.11): provider configs, D4 fee checks, secrets masked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from app.admin.method_withdrawal import expire_pending_of
from app.billing.errors import NotFound
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from domain.errors import DomainError, InvalidInput
from domain.fees import validate_fee_config
from domain.model import PaymentMethodConfig, SubscriptionPayment
from domain.patch import UNSET, Maybe, given
from domain.text_rules import check_line
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory


@attrs.frozen
class Provider:
    method: PaymentMethod
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()


#: ProviderConfig variants (tag `type`); secret fields are only ever shown as `has_<field>`.
PROVIDERS: Mapping[str, Provider] = {
    "lnd": Provider(PaymentMethod.LIGHTNING, ("url", "cert_path", "macaroon_path")),
    "bitvora": Provider(
        PaymentMethod.LIGHTNING, ("token", "webhook_secret"), secrets=("token", "webhook_secret")
    ),
    "revolut": Provider(
        PaymentMethod.REVOLUT,
        ("url", "token", "api_version", "public_key"),
        ("webhook_secret",),
        secrets=("token", "webhook_secret"),
    ),
    "stripe": Provider(
        PaymentMethod.STRIPE,
        ("secret_key", "publishable_key", "webhook_secret"),
        secrets=("secret_key", "webhook_secret"),
    ),
    "paypal": Provider(
        PaymentMethod.PAYPAL, ("client_id", "client_secret", "mode"), secrets=("client_secret",)
    ),
    # the account itself is in the settings file (`bank-transfer:`); a row only lists the
    # method for a company and sets its fees (docs/payment-rails.md)
    "bank_transfer": Provider(PaymentMethod.BANK_TRANSFER, ()),
}


#: a provider field (a URL, a token, a PEM public key) is far shorter; six of them stay well
#: inside the TEXT column that stores the whole config.
CONFIG_FIELD_LIMIT = 4096


class ConfigNotFound(NotFound):
    pass


class ConfigExists(DomainError):
    """One config per (company, method) (409)."""

    kind = "conflict"


def sanitized(config: PaymentMethodConfig) -> dict[str, Any] | None:
    """SanitizedProviderConfig: plain fields as stored, each secret as `has_<field>: bool`."""
    provider = PROVIDERS.get(config.provider_type)
    raw = config.config if isinstance(config.config, dict) else {}
    if provider is None:
        return None
    out: dict[str, Any] = {"type": config.provider_type}
    for name in provider.required + provider.optional:
        if name in provider.secrets:
            out[f"has_{name}"] = bool(raw.get(name))
        else:
            out[name] = raw.get(name)
    return out


def provider_config(value: Any, *, partial_of: str | None = None) -> tuple[str, dict[str, Any]]:
    """A ProviderConfig object → (type, fields); `partial_of`: an update of that type."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise InvalidInput("config must be an object with a provider `type`")
    kind = value["type"].lower()
    provider = PROVIDERS.get(kind)
    if provider is None:
        raise InvalidInput(f"Unknown provider type: {value['type']}")
    if partial_of is not None and kind != partial_of:
        raise InvalidInput(
            "Cannot change provider type during update. Create a new config instead."
        )
    fields: dict[str, Any] = {}
    for name in provider.required + provider.optional:
        field = value.get(name)
        if field is None:
            if partial_of is None and name in provider.required:
                raise InvalidInput(f"config.{name} is required for {kind}")
            continue
        if not isinstance(field, str):
            raise InvalidInput(f"config.{name} must be a string")
        fields[name] = check_line(field, f"config.{name}", CONFIG_FIELD_LIMIT, multiline=True)
    return kind, fields


def _fees(rate: Decimal | None, base: int | None, currency: str | None) -> str | None:
    currency = currency.strip().upper() if currency is not None else None
    if base is not None and not currency:
        raise InvalidInput("Processing fee currency is required when processing fee base is set")
    validate_fee_config(rate, base, currency)
    return currency or None


@attrs.frozen(kw_only=True)
class ConfigDraft:
    company_id: int
    name: str
    config: Any
    enabled: bool = True
    processing_fee_rate: Decimal | None = None
    processing_fee_base: int | None = None
    processing_fee_currency: str | None = None
    supported_currencies: tuple[str, ...] = ()


async def create_config(
    uow_factory: UnitOfWorkFactory, clock: Clock, draft: ConfigDraft
) -> PaymentMethodConfig:
    name = draft.name.strip()
    if not name:
        raise InvalidInput("Payment method config name cannot be empty")
    kind, fields = provider_config(draft.config)
    method = PROVIDERS[kind].method
    currency = _fees(
        draft.processing_fee_rate, draft.processing_fee_base, draft.processing_fee_currency
    )
    now = clock.now()
    async with uow_factory() as uow:
        if await uow.companies.get(draft.company_id) is None:
            raise NotFound("Company not found")
        if await uow.payment_methods.get_for_company(draft.company_id, method) is not None:
            raise ConfigExists(f"Company already has a {method.api_name} payment method config")
        stored = await uow.payment_methods.add(
            PaymentMethodConfig(
                id=0,
                company_id=draft.company_id,
                payment_method=method,
                name=name,
                enabled=draft.enabled,
                provider_type=kind,
                config={"type": kind, **fields},
                created=now,
                modified=now,
                processing_fee_rate=draft.processing_fee_rate,
                processing_fee_base=draft.processing_fee_base,
                processing_fee_currency=currency,
                supported_currencies=tuple(c.strip().upper() for c in draft.supported_currencies),
            )
        )
        await uow.commit()
    return stored


@attrs.frozen(kw_only=True)
class ConfigPatch:
    """Fields left UNSET are unchanged; the fee fields may be set to None (cleared)."""

    name: Maybe[str] = UNSET
    enabled: Maybe[bool] = UNSET
    config: Maybe[Any] = UNSET  # a ProviderConfig object, checked by `provider_config`
    processing_fee_rate: Maybe[Decimal | None] = UNSET
    processing_fee_base: Maybe[int | None] = UNSET
    processing_fee_currency: Maybe[str | None] = UNSET
    supported_currencies: Maybe[Sequence[str]] = UNSET


async def update_config(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails | None,
    config_id: int,
    patch: ConfigPatch,
) -> PaymentMethodConfig:
    """Apply the patch. Disabling the config (`enabled` true → false) expires its company's
    pending payments of the method in the same transaction and cancels them at their provider
    after it (`expire_pending_of`, D24); its webhook secret still verifies late webhooks."""
    now = clock.now()
    expired: list[SubscriptionPayment] = []
    async with uow_factory() as uow:
        row = await uow.payment_methods.get(config_id)
        if row is None:
            raise ConfigNotFound("Payment method config not found")
        changes = given(patch)
        if "name" in changes:
            changes["name"] = str(changes["name"]).strip()
            if not changes["name"]:
                raise InvalidInput("Payment method config name cannot be empty")
        if "config" in changes:
            kind, fields = provider_config(changes["config"], partial_of=row.provider_type)
            old = row.config if isinstance(row.config, dict) else {}
            changes["config"] = {**old, "type": kind, **fields}
        if "supported_currencies" in changes:
            changes["supported_currencies"] = tuple(
                c.strip().upper() for c in changes["supported_currencies"]
            )
        merged = attrs.evolve(row, **changes)
        currency = _fees(
            merged.processing_fee_rate,
            merged.processing_fee_base,
            merged.processing_fee_currency,
        )
        updated = attrs.evolve(merged, processing_fee_currency=currency, modified=now)
        if row.enabled and not updated.enabled:
            expired = await expire_pending_of(uow, row, now)
        await uow.payment_methods.update(updated)
        await uow.commit()
    await cancel_quietly(rails, expired)
    return updated


async def list_configs(uow_factory: UnitOfWorkFactory) -> list[PaymentMethodConfig]:
    """Every config ordered by company, method, name (api.md §9.11)."""
    async with uow_factory() as uow:
        rows = await uow.payment_methods.list_all()
    return sorted(rows, key=lambda r: (r.company_id, r.payment_method, r.name, r.id))
