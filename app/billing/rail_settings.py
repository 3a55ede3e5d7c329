"""Where a rail's provider settings come from, settings file first (docs/payment-rails.md)."""

from __future__ import annotations

import json

from domain.enums import PaymentMethod
from ports.storage import UnitOfWorkFactory


def _config_of(raw: object) -> dict[str, object]:
    """A payment-method config as a dict (stored as a JSON object or as its text)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


async def webhook_signing_secrets(
    uow_factory: UnitOfWorkFactory, method: PaymentMethod, from_settings: str | None
) -> list[str]:
    """The secrets a webhook of `method` may be signed with: the settings file's when set;
    else the `webhook_secret` of every enabled config row of that method (where the
    reference keeps Revolut's; any of them may sign, as while a secret is rotated); else none
    (the webhook is then refused)."""
    if from_settings:
        return [from_settings]
    found: list[str] = []
    async with uow_factory() as uow:
        for row in await uow.payment_methods.list_all():
            value = _config_of(row.config).get("webhook_secret")
            if row.enabled and row.payment_method is method and isinstance(value, str) and value:
                found.append(value)
    return found
