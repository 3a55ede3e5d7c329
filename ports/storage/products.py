"""Storage ports for IP space sales and payment-method configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.enums import PaymentMethod
from domain.model import AvailableIpSpace, IpRangeSubscription, IpSpacePricing, PaymentMethodConfig
from ports.storage.common import Catalogue, Removable


class IpSpaces(Catalogue[AvailableIpSpace], Removable, Protocol):
    pass


class IpSpacePrices(Catalogue[IpSpacePricing], Removable, Protocol):
    async def list_by_space(self, space_id: int) -> list[IpSpacePricing]:
        """Ascending prefix size."""
        ...


class IpRangeSubscriptions(Catalogue[IpRangeSubscription], Protocol):
    async def list_by_line_item(self, line_item_id: int) -> list[IpRangeSubscription]: ...

    async def list_by_space(self, space_id: int) -> list[IpRangeSubscription]:
        """Every range sold from the space, ended ones too, ascending id."""
        ...

    async def set_active(self, record_id: int, active: bool, now: datetime) -> None:
        """Deactivate (`is_active = 0, ended_at = now`) or reactivate (`ended_at = NULL`)."""
        ...

    async def deactivate_for_subscription(self, subscription_id: int, now: datetime) -> int:
        """End every still-open range sold by the subscription (lifecycle.md D12); the count."""
        ...


class PaymentMethods(Catalogue[PaymentMethodConfig], Protocol):
    async def get_for_company(
        self, company_id: int, method: PaymentMethod
    ) -> PaymentMethodConfig | None:
        """The company's lowest-id config for that method, enabled or not."""
        ...

    async def list_enabled_for_company(self, company_id: int) -> list[PaymentMethodConfig]:
        """Enabled configs ordered by payment method, then name."""
        ...

    async def delete(self, config_id: int) -> bool:
        """Hard delete; True when a row was removed."""
        ...
