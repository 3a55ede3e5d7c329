"""Storage ports for IP space sales and payment-method configuration."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from domain.enums import PaymentMethod
from domain.model import (
    AvailableIpSpace,
    IpRangeSubscription,
    IpSpacePricing,
    LineItem,
    PaymentMethodConfig,
    Subscription,
)
from ports.storage.common import Catalogue, Removable


class IpSpaces(Catalogue[AvailableIpSpace], Removable, Protocol):
    async def lock(self, space_id: int) -> None:
        """Hold the space's row lock to the end of the unit of work: ranges are given from it,
        and sales of it judged, one transaction after another. Taken before the unit of
        work's first plain read (MariaDB's snapshot), after the subscription's and user's."""
        ...


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

    async def list_live_in_spaces(self, space_ids: Collection[int]) -> list[IpRangeSubscription]:
        """The ranges of these spaces whose addresses are held, ascending id, one statement:
        active ones, and those ended in the current lapse of a subscription still active
        (`ended_at >= expires`: stopped at expiry, within the grace period), which a renewal
        turns back on. A range ended before its subscription's expiry, or of a cancelled
        subscription, holds nothing."""
        ...

    async def never_paid_orders(self, since: datetime) -> list[tuple[Subscription, list[LineItem]]]:
        """Subscriptions made at or after `since`, never paid (`is_setup = 0`, no expiry), not
        cleaned up (no `NEVER_PAID_CLEANUP` mark), that sell IP ranges, oldest first, each
        with its IP-range line items: what unpaid orders may be holding (two statements, on
        the (expires, created) index, so the cost follows the orders of the window)."""
        ...

    async def items_of_active_subscriptions(self) -> list[LineItem]:
        """Every IP-range line item of an active subscription (`is_active = 1`), ascending id."""
        ...


class PaymentMethods(Catalogue[PaymentMethodConfig], Protocol):
    async def get_for_company(
        self, company_id: int, method: PaymentMethod
    ) -> PaymentMethodConfig | None:
        """The company's lowest-id enabled config for that method, else its lowest-id
        disabled one (the method withdrawn); None when it has none."""
        ...

    async def list_enabled_for_company(self, company_id: int) -> list[PaymentMethodConfig]:
        """Enabled configs ordered by payment method, then name."""
        ...

    async def delete(self, config_id: int) -> bool:
        """Hard delete; True when a row was removed."""
        ...
