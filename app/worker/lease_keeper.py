"""Keeps worker leases live while the host call made under them runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

import attrs

from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

log = logging.getLogger("lnvps.worker")

Sleep = Callable[[float], Awaitable[None]]


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@attrs.frozen(kw_only=True)
class LeaseKeeper:
    """Renews leases (`WorkerLeases.renew`) every third of `lease` while a call runs.

    A lease counts as stale `lease` after its last stamp, so a holder that lives renews it
    in time however long its host call takes, with two renewals to spare (one may fail: a
    database blip); a holder that died stops renewing, and its lease is free `lease` after
    the last renewal. Each renewal of a lease is one short transaction stamped with `clock`
    (a failed one is logged and tried again at the next renewal). A lease found lost (taken
    over by another worker) is logged and no longer renewed: the call under it is not
    interrupted. Tests pass a `sleep` that returns soon.
    """

    uow_factory: UnitOfWorkFactory
    clock: Clock
    lease: timedelta
    sleep: Sleep = _sleep

    @asynccontextmanager
    async def kept(self, leases: Mapping[str, str]) -> AsyncIterator[None]:
        """Renew the leases (name: token) until the block ends."""
        renewals = _Renewals(self, dict(leases))
        task = asyncio.create_task(renewals.run())
        try:
            yield
        finally:
            await renewals.stop(task)


class _Renewals:
    """The renewal loop of one `LeaseKeeper.kept` block."""

    def __init__(self, keeper: LeaseKeeper, leases: dict[str, str]) -> None:
        self.keeper = keeper
        self.leases = leases
        self.stopping = False
        self.sleeping = False

    async def run(self) -> None:
        period = self.keeper.lease.total_seconds() / 3
        while self.leases and not self.stopping:
            self.sleeping = True
            try:
                await self.keeper.sleep(period)
            finally:
                self.sleeping = False
            if not self.stopping:
                await self._renew_all()

    async def _renew_all(self) -> None:
        for name, token in list(self.leases.items()):
            if self.stopping:
                return
            if not await self._renew(name, token):
                log.warning(
                    "lease %s was lost while its host call ran (another worker took it)", name
                )
                del self.leases[name]

    async def _renew(self, name: str, token: str) -> bool:
        """One lease, in a transaction of its own (one row locked: never a deadlock with a
        taker locking several in another order); False only when it was lost."""
        try:
            async with self.keeper.uow_factory() as uow:
                held = await uow.worker_leases.renew(name, token, self.keeper.clock.now())
                await uow.commit()
        except Exception:
            log.warning("could not renew lease %s; tried again later", name, exc_info=True)
            return True
        return held

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End the loop: a sleep is cut short, a renewal under way is let finish (a
        transaction is never cancelled halfway)."""
        self.stopping = True
        if self.sleeping:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
