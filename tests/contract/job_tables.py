"""A job table for worker tests: SpawnVm runs a callback, admin notices are recorded."""

from __future__ import annotations

from collections.abc import Callable

from app.worker.dispatch import JobHandlers
from ports.jobs import SendAdminNotification, SpawnVm


def spawn_and_notify(
    spawn: Callable[[SpawnVm], None], notices: list[SendAdminNotification]
) -> JobHandlers:
    """Handlers for SpawnVm (`spawn(job)`, which may raise as the test wants) and
    SendAdminNotification (appended to `notices`)."""

    async def spawn_vm(job: SpawnVm) -> None:
        spawn(job)

    async def notify(job: SendAdminNotification) -> None:
        notices.append(job)

    table = JobHandlers()
    table.on(SpawnVm, spawn_vm)
    table.on(SendAdminNotification, notify)
    return table
