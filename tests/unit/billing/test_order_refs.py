"""A provider outage while resolving a reference to its order: a generic 503, its words logged."""

from __future__ import annotations

import logging

import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing import order_refs
from app.billing.errors import PaymentProviderUnavailable
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from ports.fiat import FiatUnavailable


class _Down:
    async def order_of(self, reference: str) -> str | None:
        raise FiatUnavailable("HTTP 500 from api.stripe.example: key sk_live_xyz rejected")


async def test_the_providers_text_is_logged_not_returned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(order_refs, "_lookup", lambda rails, method: _Down())
    caplog.set_level(logging.WARNING, logger=order_refs.__name__)
    with pytest.raises(PaymentProviderUnavailable) as raised:
        await order_refs.order_payment(
            MemoryUnitOfWorkFactory(), PaymentRails(None, {}), PaymentMethod.STRIPE, "pi_1"
        )
    assert str(raised.value) == "Stripe is unavailable; please try again later"
    assert "sk_live_xyz" in caplog.text
