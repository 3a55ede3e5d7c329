"""Where a rail's provider settings come from, settings file first (docs/payment-rails.md)."""

from __future__ import annotations

import json

from domain.enums import PaymentMethod
from domain.model import PaymentMethodConfig
from ports.storage import UnitOfWorkFactory


def _config_of(raw: object) -> dict[str, object]:
    """A payment-method config as a dict (stored as a JSON object or as its text)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def webhook_secret_of(config: PaymentMethodConfig) -> str | None:
    """The config row's `webhook_secret`, None when it has none."""
    value = _config_of(config.config).get("webhook_secret")
    return value if isinstance(value, str) and value else None


async def webhook_signing_secrets(
    uow_factory: UnitOfWorkFactory, method: PaymentMethod, from_settings: str | None
) -> list[str]:
    """The secrets a webhook of `method` may be signed with: the settings file's when set;
    else the `webhook_secret` of every config row of that method (where the reference keeps
    Revolut's; any of them may sign, as while a secret is rotated); else none (the webhook is
    then refused).

    A disabled row's secret still verifies: disabling a method stops new payments of it
    (and expires those pending), but one already made may still be paid and its webhook,
    which the provider retries for days, must still be credited."""
    if from_settings:
        return [from_settings]
    found: list[str] = []
    async with uow_factory() as uow:
        for row in await uow.payment_methods.list_all():
            value = webhook_secret_of(row)
            if row.payment_method is method and value is not None:
                found.append(value)
    return found
