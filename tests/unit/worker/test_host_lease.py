"""The worker's lease on a VM's host work outlives the longest hold: every try of a create,
each within `LONGEST_CALL`, which each host adapter's time limits fit in. A lease that
lapsed mid-build let a second worker build the same VM at the same time."""

from __future__ import annotations

import attrs
import pytest

from adapters.vmhost.proxmox_api import ProxmoxConfig
from app.worker.context import HOST_LEASE, HostRetry, WorkerDeps
from ports.vmhost import LONGEST_CALL


def test_the_lease_outlives_every_try_of_the_longest_host_call() -> None:
    assert HostRetry().attempts * LONGEST_CALL < HOST_LEASE
    assert attrs.fields(WorkerDeps).host_lease.default == HOST_LEASE


def test_a_proxmox_create_fits_in_the_longest_host_call() -> None:
    config = ProxmoxConfig(base_url="", node="", token="")
    assert config.longest_call_s() <= LONGEST_CALL.total_seconds()
    assert config.longest_call_s() >= 5 * config.task_timeout_s  # its task waits at least


def test_proxmox_limits_beyond_it_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="a worker's lease counts on"):
        ProxmoxConfig(base_url="", node="", token="", task_timeout_s=600)
