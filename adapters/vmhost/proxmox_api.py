"""Proxmox VE REST client: API-token auth, error classification, retries and task polling."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ports.vmhost import VmHostError, VmNotFoundOnHost

log = logging.getLogger(__name__)

#: Proxmox numbers its guests from 100; the reference maps database VM id N to vmid N + 100.
VMID_OFFSET = 100

_NOT_FOUND = re.compile(r"does not exist|no such VM", re.IGNORECASE)
_VMID_IN_PATH = re.compile(r"/qemu/(\d+)(?:/|$)")
#: 5xx answers that retrying cannot fix: Proxmox reports most refusals as HTTP 500.
_FATAL_5XX = re.compile(r"already exists|shrinking|not supported|not allowed|is locked", re.I)
#: ... but a VM locked by its create task is being built: that passes once the task ends
_BUILDING = re.compile(r"is locked \(create\)", re.I)
_TRANSIENT_4XX = frozenset({408, 425, 429})

_loads = partial(json.loads, parse_float=Decimal)


@attrs.frozen(kw_only=True)
class ProxmoxConfig:
    """Where a Proxmox node is and how its VMs are built (the reference's `QemuConfig`)."""

    base_url: str
    node: str
    token: str = attrs.field(repr=False)  # USER@REALM!TOKENID=SECRET
    bridge: str = "vmbr0"
    cpu: str = "kvm64"
    machine: str = "q35"
    os_type: str = "l26"
    kvm: bool = True
    mac_prefix: str = "bc:24:11"
    #: storage holding OS images as `import` content (`{storage}:import/{file}` volumes)
    image_storage: str = "local"
    start_after_create: bool = True
    verify_tls: bool = True
    request_timeout_s: int = 30
    task_timeout_s: int = 300
    #: how long an OS image download task (`download-url`) may run
    download_timeout_s: int = 3600
    poll_interval_ms: int = 1000
    retry_attempts: int = 3
    retry_min_ms: int = 1000
    retry_max_ms: int = 30_000


def vmid(vm_id: int) -> int:
    return vm_id + VMID_OFFSET


class TaskStillRunning(VmHostError):
    """A task outlived its wait; it goes on on the node, so trying later may find it done."""

    def __init__(self, upid: str, limit: int) -> None:
        super().__init__(f"Task {upid} still running after {limit} s", transient=True)
        self.upid = upid


class TaskFailed(VmHostError):
    """A task stopped with an error exit status (fatal): it did not do its work."""

    def __init__(self, upid: str, exit_status: str) -> None:
        super().__init__(f"Task finished with error: {exit_status or 'no error message'}")
        self.upid = upid
        self.exit_status = exit_status


def task_succeeded(exit_status: str) -> bool:
    """Proxmox ends a task that did its work with `OK`, or `WARNINGS: n` when it logged
    warnings on the way (LVM-thin over-commit, no EFI disk, ...); anything else is an error."""
    return exit_status == "OK" or exit_status.startswith("WARNINGS")


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, VmHostError) and exc.transient


class ProxmoxApi:
    """JSON calls to `/api2/json/...`; failures become `VmHostError` (transient or fatal)."""

    def __init__(self, config: ProxmoxConfig, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self._session = session
        self._own_session = session is None

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def node_path(self, suffix: str) -> str:
        return f"/nodes/{quote(self.config.node, safe='')}{suffix}"

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        retry: bool = True,
    ) -> Any:
        """`data` of the answer; transient failures are retried with backoff when `retry`."""
        if not retry:
            return await self._once(method, path, params)
        cfg = self.config
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(max(1, cfg.retry_attempts)),
            wait=wait_exponential(multiplier=cfg.retry_min_ms / 1000, max=cfg.retry_max_ms / 1000),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        ):
            with attempt:
                return await self._once(method, path, params)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def run_task(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> None:
        """Start an asynchronous call and wait for the task it returns."""
        await self.wait_for_task(await self.call(method, path, params))

    async def wait_for_task(self, upid: Any, timeout_s: int | None = None) -> None:
        """Poll a task until it stops; an exit status other than `OK` or `WARNINGS: n` is a
        fatal `TaskFailed` (a task that ended with warnings did its work: they are logged).

        A task still running after the limit raises `TaskStillRunning` (transient): Proxmox
        goes on with it, so the caller tries later (and may wait for that same task).
        """
        if upid is None:
            return  # synchronous call: nothing to wait for
        path = self.node_path(f"/tasks/{quote(str(upid), safe='')}/status")
        limit = self.config.task_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                while True:
                    status = await self.call("GET", path)
                    if status.get("status") == "stopped":
                        break
                    await asyncio.sleep(self.config.poll_interval_ms / 1000)
        except TimeoutError:
            raise TaskStillRunning(str(upid), limit) from None
        exit_status = str(status.get("exitstatus") or "")
        if not task_succeeded(exit_status):
            raise TaskFailed(str(upid), exit_status)
        if exit_status != "OK":
            log.warning("Proxmox task %s on %s: %s", upid, self.config.node, exit_status)

    async def running_task(self, vm_id: int, kind: str) -> str | None:
        """The UPID of a task of `kind` (`qmcreate`) still running for guest `vm_id`, if any."""
        params = {"vmid": str(vm_id), "source": "active", "typefilter": kind}
        tasks = await self.call("GET", self.node_path("/tasks"), params)
        for task in tasks or ():
            if isinstance(task, Mapping) and task.get("type") == kind and task.get("upid"):
                return str(task["upid"])
        return None

    async def _once(self, method: str, path: str, params: Mapping[str, str] | None) -> Any:
        session = self._get_session()
        url = self.config.base_url.rstrip("/") + "/api2/json" + path
        send: dict[str, Any] = {}
        if params:
            send = {"params": params} if method in ("GET", "DELETE") else {"data": dict(params)}
        try:
            auth = {"Authorization": f"PVEAPIToken={self.config.token}"}
            async with session.request(method, url, headers=auth, ssl=self._ssl(), **send) as resp:
                body = await resp.text()
                if resp.status >= 300:
                    raise _http_error(resp.status, resp.reason or "", body, path)
                try:
                    return _loads(body).get("data") if body else None
                except (ValueError, AttributeError) as exc:
                    raise VmHostError(f"Proxmox answered {path} with bad JSON: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise VmHostError(f"Proxmox unreachable: {exc!r}", transient=True) from exc
        except TimeoutError as exc:
            raise VmHostError(f"Proxmox timed out on {method} {path}", transient=True) from exc

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s)
            )
        return self._session

    def _ssl(self) -> bool:
        return self.config.verify_tls  # False accepts the self-signed certificate of a node


def _http_error(status: int, reason: str, body: str, path: str) -> VmHostError:
    """Proxmox puts its message in the reason phrase and field errors in `errors`."""
    message = reason
    try:
        errors = _loads(body).get("errors") if body else None
    except (ValueError, AttributeError):
        errors = None
    if errors:
        message += " " + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    found = _VMID_IN_PATH.search(path)
    if found is not None and _NOT_FOUND.search(message):
        return VmNotFoundOnHost(int(found.group(1)) - VMID_OFFSET)
    transient = status in _TRANSIENT_4XX or (
        status >= 500 and (_BUILDING.search(message) is not None or not _FATAL_5XX.search(message))
    )
    log.warning("Proxmox %s on %s: %s", status, path, message)
    return VmHostError(f"Proxmox {status}: {message}", transient=transient)
