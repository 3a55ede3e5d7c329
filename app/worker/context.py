"""What the worker needs from the world, bundled once by the composition root."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol, TypeVar

import attrs

from app.billing.rails import PaymentRails
from app.worker.lease_keeper import LeaseKeeper, Sleep
from domain.model import Host, Subscription, SubscriptionPayment
from ports.clock import Clock
from ports.notify import Notifier
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory
from ports.vm_state import VmStateCache
from ports.vmhost import VmHost, VmHostError, VmHostResolver

log = logging.getLogger("lnvps.worker")

T = TypeVar("T")

#: How far back (by `created`) the never-paid IP-range cleanup looks. Such an order gets no
#: invoice after its first hour (`refuse_lapsed_order`), so it is decided (cancelled, or
#: paid and kept) once the invoices of that hour have expired: a Lightning invoice lasts
#: 10 minutes, a card order an hour (a Stripe session at most a day), a bank transfer its
#: `days-to-pay` (7 by default; the composition root widens the window by as much as that is
#: longer, `never_paid_lookback`). Two weeks leaves about a week in which the worker may be
#: down. An order still pending when it leaves the window (a longer rail added without
#: widening it), or one the worker, down for longer, did not reach in time, is left as it
#: is: never cancelled, any IP range an operator assigned it kept; nothing is charged, and
#: the `max-unpaid-subscriptions` cap counts only recent orders.
NEVER_PAID_LOOKBACK = timedelta(days=14)


def never_paid_lookback(days_to_pay: int | None) -> timedelta:
    """`NEVER_PAID_LOOKBACK`, longer by as much as a bank transfer's `days-to-pay` (None: no
    such rail) exceeds the default 7 days: the same week is left for a worker outage."""
    extra = timedelta(days=max((days_to_pay or 0) - 7, 0))
    return NEVER_PAID_LOOKBACK + extra


class RenewalOutcome(Enum):
    """How an automatic renewal attempt ended, short of a failure (which raises)."""

    #: paid (by the wallet, or by account credit alone): N2 "Auto-Renewed"
    PAID = "paid"
    #: the wallet was asked to pay but never answered and the node has no settlement of the
    #: invoice (yet): nothing is confirmed, so the user is warned (not told it renewed)
    UNCONFIRMED = "unconfirmed"
    #: the subscription's expiry is no longer the period the attempt was for (a renewal paid
    #: since the claim moved it), or its VM was deleted meanwhile: nothing was charged (credit
    #: taken for it given back) and nothing is said
    NOT_DUE = "not_due"
    #: the wallet paid (whatever it answered), but its payment bought no time: a renewal
    #: paid otherwise had bought the period first (`domain.wallet_claim`), or its VM was
    #: deleted meanwhile and cannot be restored; its value is account credit, of which the
    #: completion tells the user ("Payment added to your account credit"); nothing more is
    #: said (not "Auto-Renewed", not "renewal failed")
    CREDITED = "credited"


@attrs.frozen
class AutoRenewal:
    """The outcome of `AutoRenewer.attempt`."""

    outcome: RenewalOutcome
    #: UNCONFIRMED: until when the invoice the wallet was asked to pay can still be paid
    pay_by: datetime | None = None


class AutoRenewalNotStarted(Exception):
    """An auto-renewal failed before any payment request reached the wallet, for a passing
    cause (no fresh exchange rate, the Lightning node or the database unavailable): nothing
    can have been paid, so the lifecycle may try the period again at a later run
    (`domain.lifecycle.auto_renew_retry_at`). Its `message` is for the user (N3)."""

    message: str


class AutoRenewer(Protocol):
    """Pays a renewal from the user's wallet when the subscription opted in (§5.7, D15).

    `can_attempt` says whether a renewal could be tried at all (NWC configured and the user
    has a wallet string); `attempt` renews the period ending `period` (the subscription's
    expiry when the attempt was claimed) and says how it went, or raises with a message for
    the user (N3): `AutoRenewalNotStarted` when no payment request reached the wallet for a
    passing cause, which may be tried again.
    """

    async def can_attempt(self, subscription: Subscription) -> bool: ...

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal: ...


class NoAutoRenewal:
    """The default: no wallet integration, so the expiring-soon notice (N1) is sent instead."""

    async def can_attempt(self, subscription: Subscription) -> bool:
        return False

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        raise RuntimeError("automatic renewal is not configured")


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@attrs.frozen(kw_only=True)
class HostRetry:
    """Retry of transient host failures with exponential backoff (§8.4: 1 s ×2 up to 30 s).

    Fatal failures (and `VmNotFoundOnHost`) are raised at once. Tests pass a `sleep` that
    returns immediately.
    """

    attempts: int = 3
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = _sleep

    async def call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            try:
                return await op()
            except VmHostError as err:
                if not err.transient or attempt >= self.attempts:
                    raise
                log.warning("%s failed (attempt %d): %s; retrying", what, attempt, err.message)
            await self.sleep(delay)
            delay = min(delay * 2, self.max_delay_s)
        raise AssertionError("unreachable")  # pragma: no cover


#: How long a lease on a host call (`WorkerDeps.host_lease`) holds after it was taken or last
#: renewed before another worker, or an API request, may take it over from a holder that
#: died. A live holder renews it every third of that while its host call runs
#: (`WorkerDeps.keep_leases`), so no host call is too long for it; a worker killed mid-call
#: (a deploy, a crash) blocks the VM's expiry stop, a start after a renewal or the owner's
#: start (409) for at most this long.
HOST_LEASE = timedelta(minutes=15)


class PaymentCanceller(Protocol):
    """Cancels a payment at its own rail (`PaymentRails`), for D24's deleted services."""

    async def cancel(self, payment: SubscriptionPayment) -> None: ...


@attrs.define
class BacklogCursor:
    """The (expires, id) after which the next lifecycle run resumes its expired walk."""

    after: tuple[datetime, int] | None = None


@attrs.frozen(kw_only=True)
class WorkerDeps:
    """Ports and settings for the jobs, the lifecycle and the spawn/delete pipelines.

    `notifier` is what the lifecycle tells users and admins through: pass a
    `QueuedNotifier` (jobs.py) so a mail outage is retried by the queue, or a real notifier
    to deliver at once. `states` is the VM state cache the API reads (None: not kept).
    """

    uow_factory: UnitOfWorkFactory
    clock: Clock
    hosts: VmHostResolver
    queue: WorkQueue
    notifier: Notifier
    delete_after_days: int = 3
    public_url: str = "http://127.0.0.1:8000"
    read_only: bool = False
    auto_renewer: AutoRenewer = attrs.field(factory=NoAutoRenewal)
    states: VmStateCache | None = None
    retry: HostRetry = HostRetry()
    #: subscriptions per page of a lifecycle walk (a keyset page on the expiry index).
    due_page: int = 1_000
    #: most expired subscriptions one lifecycle run visits; the next run resumes after them.
    expired_budget: int = 10_000
    #: where the expired walk resumes (per process; mutable, shared by copies of these deps).
    backlog: BacklogCursor = attrs.field(factory=lambda: BacklogCursor())
    #: how long a lease on a host call holds after it was taken or last renewed (`HOST_LEASE`).
    host_lease: timedelta = HOST_LEASE
    #: how a lease keeper waits between renewals (`keep_leases`); tests pass a short one
    lease_sleep: Sleep = _sleep
    #: cancels a deleted service's expired invoices at their rail (D24; None: only expired)
    payment_canceller: PaymentCanceller | None = None
    #: the rails whose lapsed card orders the worker cancels, or completes when their
    #: provider says they are paid (a lost webhook); None: none are swept
    order_rails: PaymentRails | None = None
    #: how far back the never-paid IP-range cleanup looks (`NEVER_PAID_LOOKBACK`).
    never_paid_lookback: timedelta = NEVER_PAID_LOOKBACK
    #: notices may point a VM's owner at its Lightning address (`{vm_id}@host`); False on
    #: a server with Lightning off, whose LNURL endpoints refuse every payment
    lightning_address: bool = True

    def keep_leases(self, leases: Mapping[str, str]) -> AbstractAsyncContextManager[None]:
        """Renew the held leases (name: token) while the block (a host call) runs."""
        keeper = LeaseKeeper(
            uow_factory=self.uow_factory,
            clock=self.clock,
            lease=self.host_lease,
            sleep=self.lease_sleep,
        )
        return keeper.kept(leases)

    async def host_of(self, uow: UnitOfWork, host_id: int) -> tuple[Host, VmHost]:
        """The host row and its client; a missing row is a fatal host error."""
        host = await uow.hosts.get(host_id)
        if host is None:
            raise VmHostError(f"host {host_id} not found")
        return host, self.hosts.for_host(host)

    async def tell_user(self, user_id: int, title: str, message: str) -> None:
        """Notify, logging (never raising) a delivery failure: the action already happened."""
        try:
            await self.notifier.notify_user(user_id, title, message)
        except Exception:
            log.exception("notification %r to user %s failed", title, user_id)

    async def tell_admins(self, title: str, message: str) -> None:
        try:
            await self.notifier.notify_admins(title, message)
        except Exception:
            log.exception("admin notification %r failed", title)
