"""A VM's metrics for its owner (api.md §6.5 time-series), read from the VM's host."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from app.billing.catalogue import owned_vm
from app.metrics_cache import MetricsCache
from domain.model import Host, Vm
from ports.storage import UnitOfWorkFactory
from ports.vmhost import TimeSeriesPoint, VmHostError, VmHostResolver, VmNotFoundOnHost

log = logging.getLogger("lnvps.metrics")


async def vm_time_series(
    uow_factory: UnitOfWorkFactory,
    hosts: VmHostResolver,
    cache: MetricsCache,
    vm_id: int,
    user_id: int,
) -> Sequence[TimeSeriesPoint]:
    """The last hour of the owned VM's metrics from its host, oldest first.

    Not the caller's (or deleted): `VmNotFound`. A VM not built on its host yet, or one the
    host does not have, has no metrics (`[]`); so has one whose host fails to answer (the
    failure is logged: graphs are not worth an error page). The host is asked with no
    database transaction open, and at most once per VM in `cache`'s window (ownership is
    checked on every call; only the host's answer is reused).
    """
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, user_id)
        host = await uow.hosts.get(vm.host_id) if vm.is_provisioned else None
    if host is None:
        return []
    return await cache.get(vm.id, functools.partial(_ask, hosts, host, vm))


async def _ask(hosts: VmHostResolver, host: Host, vm: Vm) -> Sequence[TimeSeriesPoint]:
    """The host's answer; `[]` when it does not have the VM or fails (logged)."""
    try:
        return await hosts.for_host(host).get_time_series(vm)
    except VmNotFoundOnHost:
        return []
    except VmHostError as err:
        log.warning("metrics of VM %s from host %s failed: %s", vm.id, host.id, err.message)
        return []
