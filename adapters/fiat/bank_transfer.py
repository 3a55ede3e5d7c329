"""The manual bank transfer rail: account details and a reference to pay; an operator confirms."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from domain.enums import PaymentMethod
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency
from ports.payment_rail import Charge, ChargeRequest, WebhookVerifier

#: readable reference characters (no 0/O, 1/I): the payer types it into a transfer form
_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_REFERENCE_LENGTH: Final = 10


def new_reference() -> str:
    """A fresh transfer reference, `LNVPS-` and ten readable characters (~50 bits)."""
    return "LNVPS-" + "".join(secrets.choice(_ALPHABET) for _ in range(_REFERENCE_LENGTH))


class BankTransferRail:
    """A `PaymentRail` with no provider: the charge is the operator's account, the amount
    and a unique reference; the payer sends a transfer, and an operator who sees it arrive
    completes the payment through the admin API. There is no webhook and no provider to ask
    or to cancel at."""

    method = PaymentMethod.BANK_TRANSFER
    webhook: WebhookVerifier | None = None

    def __init__(self, account: Mapping[str, str], *, days_to_pay: int = 7) -> None:
        if not account.get("iban") and not account.get("account_number"):
            raise ValueError("bank transfer: an IBAN or account number is required")
        self._account = dict(account)
        self._expiry = timedelta(days=days_to_pay)

    def quote_currency(self, list_currency: Currency) -> Currency:
        if list_currency is Currency.BTC:
            raise PaymentMethodUnsupported("Cannot pay a BTC price by bank transfer")
        return list_currency

    async def create_charge(self, request: ChargeRequest) -> Charge:
        self.quote_currency(request.currency)
        reference = new_reference()
        details = {
            **self._account,
            "reference": reference,
            "amount": request.amount,
            "currency": request.currency.value,
        }
        return Charge(
            payment_id=None,
            external_id=reference,
            external_data=json.dumps(details, separators=(",", ":")),
            amount=request.amount,
            expiry=self._expiry,
        )

    async def is_paid(self, payment_id: bytes, external_id: str | None) -> bool | None:
        return None  # only the operator, looking at the account, can tell

    async def cancel(self, payment_id: bytes, external_id: str | None) -> None:
        return None  # nothing was opened anywhere
