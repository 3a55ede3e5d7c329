"""A payment whose provider data cannot be decrypted still shows in its list (empty data)."""

from __future__ import annotations

import json

import attrs
import pytest

from adapters.http.views_payment import vm_payment_json
from app.billing.persist import at_provider
from domain.enums import PaymentMethod
from domain.model import Subscription
from domain.unreadable import Unreadable
from tests.contract.storage_backends import new_payment, new_subscription

UNREADABLE = Unreadable("ENC:sealed-with-a-lost-key")


def _subscription() -> Subscription:
    return new_subscription(user_id=1, company_id=1, id=3)


@pytest.mark.parametrize(
    ("method", "data"),
    [
        (PaymentMethod.LIGHTNING, {"lightning": ""}),
        (PaymentMethod.REVOLUT, {"revolut": {"token": None}}),
        (PaymentMethod.STRIPE, {"stripe": {"session_id": None}}),
    ],
)
def test_unreadable_provider_data_shows_as_empty_data(
    method: PaymentMethod, data: dict[str, object]
) -> None:
    payment = new_payment(_subscription(), payment_method=method, external_data=UNREADABLE)
    shown = vm_payment_json(payment, vm_id=7)
    assert shown["data"] == data and shown["amount"] == payment.amount
    json.dumps(shown)  # nothing left that JSON cannot carry
    assert "sealed" not in json.dumps(shown)


def test_an_unreadable_invoice_was_still_made_at_a_provider() -> None:
    """So a quote expired with it is still cancelled there (its id is the payment hash)."""
    payment = new_payment(_subscription(), external_data=UNREADABLE)
    assert at_provider(payment)
    assert not at_provider(attrs.evolve(payment, external_data=""))
