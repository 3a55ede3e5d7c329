"""The Notifier port: tell a user or the operators what happened (lifecycle.md §12.1)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ports.failures import RetryableError


class NotificationError(RetryableError):
    """Delivery failed; `transient` failures are worth retrying (SMTP 4xx, connection lost)."""


class Notifier(Protocol):
    """Delivers notifications. A user without a usable contact is skipped, not an error."""

    async def notify_user(self, user_id: int, title: str, message: str) -> None:
        """Send `message` under `title` to the user (e-mail when they opted in)."""
        ...

    async def notify_admins(self, title: str, message: str) -> None:
        """Send `message` under `title` to every configured operator address."""
        ...


@runtime_checkable
class AddressNotifier(Notifier, Protocol):
    """A delivering Notifier that can also mail one given address, whatever the user's contact
    settings: the e-mail verification mail goes to an address not verified yet (D22)."""

    async def notify_address(self, address: str, title: str, message: str) -> None:
        """Send `message` under `title` to `address` only."""
        ...
