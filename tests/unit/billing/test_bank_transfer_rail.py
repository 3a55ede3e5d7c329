"""The bank transfer rail through the registry: what it charges, stores, and cannot do."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapters.fiat.bank_transfer import BankTransferRail, new_reference
from app.billing.errors import NothingToCharge, PaymentMethodNotConfigured
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency
from tests.unit.billing.test_rails import _priced
from tests.unit.billing.world import START

ACCOUNT = {"account_name": "LNVPS Ltd", "iban": "IE29AIBK93115212345678"}


def _rails() -> PaymentRails:
    return PaymentRails(rails=[BankTransferRail(ACCOUNT, days_to_pay=3)])


async def test_charge_is_the_account_the_total_and_a_fresh_reference() -> None:
    rails = _rails()
    first = await rails.create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR), START)
    second = await rails.create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR), START)
    assert isinstance(first.external_data, str)
    shown = json.loads(first.external_data)
    assert shown == {**ACCOUNT, "reference": first.external_id, "amount": 1_515, "currency": "EUR"}
    assert first.external_id != second.external_id and first.id != second.id
    assert first.expires == START + timedelta(days=3)
    assert first.payment_method is PaymentMethod.BANK_TRANSFER


async def test_it_cannot_charge_bitcoin_or_nothing() -> None:
    with pytest.raises(PaymentMethodUnsupported):
        await _rails().create(_priced(PaymentMethod.BANK_TRANSFER, Currency.BTC), START)
    with pytest.raises(NothingToCharge):
        await _rails().create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR, -15), START)


async def test_only_an_operator_can_tell_it_is_paid_and_cancel_is_quiet() -> None:
    rails = _rails()
    payment = await rails.create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR), START)
    assert payment.external_id is not None
    assert await rails.provider_says_paid(PaymentMethod.BANK_TRANSFER, payment.external_id) is None
    await rails.cancel(payment)
    assert rails.webhook(PaymentMethod.BANK_TRANSFER) is None
    assert rails.offered() == (PaymentMethod.BANK_TRANSFER,)


async def test_unconfigured_is_422_and_the_account_is_required() -> None:
    with pytest.raises(PaymentMethodNotConfigured):
        await PaymentRails().create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR), START)
    with pytest.raises(ValueError, match="IBAN"):
        BankTransferRail({"account_name": "x"})


def test_references_are_readable_and_distinct() -> None:
    refs = {new_reference() for _ in range(500)}
    assert len(refs) == 500
    assert all(r.startswith("LNVPS-") and not set(r[6:]) & set("01IO") for r in refs)
