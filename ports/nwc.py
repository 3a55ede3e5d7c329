"""The user's Lightning wallet reached over Nostr Wallet Connect (NIP-47, lifecycle §5.7)."""

from __future__ import annotations

from typing import Protocol


class NwcError(Exception):
    """The wallet refused, did not answer in time or its relay is unreachable.

    `message` is safe to show the user: it never contains the connection secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NwcAnswerLost(NwcError):
    """The request reached the wallet's relay but no answer came back (timeout, connection
    lost). The wallet may have paid: the Lightning settlement then completes the payment, so
    this is not a failure to report to the user."""


class InvalidNwcUri(NwcError):
    """The stored connection string is not a usable `nostr+walletconnect://` URI."""


class NwcWallet(Protocol):
    """Pays invoices from the wallet named by a user's NWC connection string."""

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        """Pay `bolt11`; return the preimage (hex). NwcError / InvalidNwcUri on failure."""
        ...
