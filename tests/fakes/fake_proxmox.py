"""An in-memory Proxmox VE node speaking the /api2/json wire format, served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.memory.clock import FakeClock

TOKEN = "root@pam!lnvps=5f1e2d3c-0000-4000-8000-000000000000"
NODE = "pve1"
GIB = 1024**3
MIB = 1024**2
#: size of a disk freshly imported from an OS image
IMPORTED_DISK = 2 * GIB
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SIZE = re.compile(r"^(\+?)(\d+)([KMGT]?)$")
#: the kinds of task this node starts
TASK_KINDS = (
    "qmcreate",
    "qmstart",
    "qmstop",
    "qmreset",
    "qmdestroy",
    "qmconfig",
    "resize",
    "download",
)


@attrs.define
class FakeGuest:
    vmid: int
    config: dict[str, str]
    disk_size: int = IMPORTED_DISK
    status: str = "stopped"
    running_since: int | None = None


@attrs.define
class FakeTask:
    upid: str
    vmid: int
    kind: str
    exit_status: str
    polls_left: int
    #: reported stopped once: it stays stopped
    done: bool = False


def _dumps(value: Any) -> str:
    """JSON with Decimals as plain numbers (Proxmox sends `"cpu":0.0231`)."""
    text = json.dumps(value, default=lambda d: f"__dec__{d}__")
    return re.sub(r'"__dec__([-0-9.Ee+]+)__"', r"\1", text)


def _size(size: int) -> str:
    """A disk size as Proxmox writes it in a config (`40G`, `2252M`)."""
    for unit, scale in (("T", 1024 * GIB), ("G", GIB), ("M", MIB), ("K", 1024)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _ok(data: Any) -> web.Response:
    return web.Response(text=_dumps({"data": data}), content_type="application/json")


def _error(status: int, reason: str, errors: dict[str, str] | None = None) -> web.Response:
    """Proxmox puts the message in the status line; field errors go to `errors`."""
    body: dict[str, Any] = {"data": None}
    if errors:
        body["errors"] = errors
    return web.Response(
        status=status, reason=reason, text=_dumps(body), content_type="application/json"
    )


class FakeProxmox:
    """One node's guests and tasks; time comes from the tests' fake clock.

    `fail_next(503, ...)` answers the next requests with those statuses (fault injection);
    `task_polls` is how many status polls a task reports `running` before it stops;
    `task_exit` forces the exit status of the tasks of a kind that would end `OK`
    (`warn_tasks` makes them end `WARNINGS: 1`: done, with a logged warning).
    """

    def __init__(self, clock: FakeClock, *, node: str = NODE, token: str = TOKEN) -> None:
        self.clock = clock
        self.node = node
        self.token = token
        self.guests: dict[int, FakeGuest] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.failures: list[int] = []
        self.task_polls = 1
        self.tasks_never_finish = False
        self.task_exit: dict[str, str] = {}
        #: files per storage: volid → bytes (`local:import/debian.qcow2`)
        self.volumes: dict[str, bytes] = {}
        self._pid = 0x1000
        self.app = web.Application(middlewares=[self._record, self._auth, self._faults])
        base = "/api2/json/nodes/{node}"
        qemu = base + r"/qemu/{vmid:\d+}"
        self.app.router.add_post(base + "/qemu", self._create)
        self.app.router.add_get(base + "/qemu", self._list)
        self.app.router.add_get(qemu + "/status/current", self._current)
        self.app.router.add_post(qemu + "/status/{action:start|stop|reset}", self._power)
        self.app.router.add_delete(qemu, self._destroy)
        self.app.router.add_post(qemu + "/config", self._configure)
        self.app.router.add_put(qemu + "/config", self._configure_now)
        self.app.router.add_get(qemu + "/config", self._config)
        self.app.router.add_get(base + "/tasks", self._task_list)
        self.app.router.add_put(qemu + "/resize", self._resize)
        self.app.router.add_put(qemu + "/unlink", self._unlink)
        self.app.router.add_get(base + "/tasks/{upid}/status", self._task_status)
        self.app.router.add_get("/api2/json/version", self._version)
        self.app.router.add_get(base + "/status", self._node_status)
        self.app.router.add_get(qemu + "/rrddata", self._rrddata)
        self.app.router.add_get(base + "/storage/{storage}/content", self._content)
        self.app.router.add_post(base + "/storage/{storage}/download-url", self._download)

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def warn_tasks(self, *kinds: str) -> None:
        """Successful tasks of these kinds (all kinds when none given) end `WARNINGS: 1`."""
        self.task_exit.update(dict.fromkeys(kinds or TASK_KINDS, "WARNINGS: 1"))

    def reboot(self) -> None:
        """The node restarts: every guest goes down, then those with `onboot=1` boot."""
        for guest in self.guests.values():
            on = guest.config.get("onboot") == "1"
            guest.status = "running" if on else "stopped"
            guest.running_since = self._now() if on else None

    def calls(self, method: str, path_suffix: str) -> list[dict[str, str]]:
        """Parameters of the recorded requests whose path ends with `path_suffix`."""
        return [p for m, path, p in self.requests if m == method and path.endswith(path_suffix)]

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on a free port of 127.0.0.1; yields the base URL (`http://127.0.0.1:PORT`)."""
        server = TestServer(self.app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()

    # --- middlewares --------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        params = dict(request.query)
        if request.method in ("POST", "PUT"):
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append((request.method, request.path, params))
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"PVEAPIToken={self.token}":
            return _error(401, "authentication failure")
        return await handler(request)

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.failures:
            return _error(self.failures.pop(0), "injected fault")
        return await handler(request)

    # --- guests -------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        missing = [k for k in ("vmid", "cores", "memory", "net0", "scsi0") if k not in params]
        if missing:
            return _error(400, "Parameter verification failed.", dict.fromkeys(missing, "missing"))
        if " " in params.get("sshkeys", ""):
            return _error(400, "Parameter verification failed.", {"sshkeys": "invalid format"})
        vmid = int(params.pop("vmid"))
        if vmid in self.guests:
            return _error(500, f"unable to create VM {vmid} - VM {vmid} already exists on node")
        self.guests[vmid] = FakeGuest(vmid, params)
        return _ok(self._task(vmid, "qmcreate"))

    async def _list(self, request: web.Request) -> web.Response:
        return _ok([self._info(guest) for guest in self.guests.values()])

    async def _current(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        return _ok(self._info(guest)) if guest else self._no_such_vm(request)

    async def _power(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if self._locked(guest.vmid):
            return _error(500, f"VM {guest.vmid} is locked (create)")
        action, now = request.match_info["action"], self._now()
        error = "OK"
        if action == "start":
            if guest.status == "running":
                error = f"VM {guest.vmid} already running"
            else:
                guest.status, guest.running_since = "running", now
        elif action == "stop":
            guest.status, guest.running_since = "stopped", None
        elif guest.status != "running":
            error = f"VM {guest.vmid} not running"
        else:
            guest.running_since = now
        return _ok(self._task(guest.vmid, f"qm{action}", error))

    async def _destroy(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if self._locked(guest.vmid):
            return _error(500, f"VM {guest.vmid} is locked (create)")
        if guest.status == "running":
            return _ok(self._task(guest.vmid, "qmdestroy", f"VM {guest.vmid} is running"))
        del self.guests[guest.vmid]
        return _ok(self._task(guest.vmid, "qmdestroy"))

    async def _config(self, request: web.Request) -> web.Response:
        """The guest's config, its primary disk as an allocated volume with its `size=`."""
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        config = dict(guest.config)
        if "scsi0" in config:
            storage = config["scsi0"].split(":", 1)[0]
            config["scsi0"] = f"{storage}:vm-{guest.vmid}-disk-0,size={_size(guest.disk_size)}"
        return _ok(config)

    async def _configure(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if self._locked(guest.vmid):
            return _error(500, f"VM {guest.vmid} is locked (create)")
        params = {k: str(v) for k, v in (await request.post()).items()}
        if "import-from=" in params.get("scsi0", ""):
            guest.disk_size = IMPORTED_DISK
        guest.config.update(params)
        return _ok(self._task(guest.vmid, "qmconfig"))

    async def _configure_now(self, request: web.Request) -> web.Response:
        """`PUT /config`: the synchronous form (no task), for small settings."""
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if self._locked(guest.vmid):
            return _error(500, f"VM {guest.vmid} is locked (create)")
        guest.config.update({k: str(v) for k, v in (await request.post()).items()})
        return _ok(None)

    async def _resize(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if self._locked(guest.vmid):
            return _error(500, f"VM {guest.vmid} is locked (create)")
        params = await request.post()
        found = _SIZE.match(str(params.get("size", "")))
        if found is None or params.get("disk") != "scsi0":
            return _error(400, "Parameter verification failed.", {"size": "invalid format"})
        unit = {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}[found.group(3)]
        size = int(found.group(2)) * unit + (guest.disk_size if found.group(1) else 0)
        if size < guest.disk_size:
            return _error(500, "shrinking disks is not supported")
        guest.disk_size = size
        return _ok(self._task(guest.vmid, "resize"))

    async def _unlink(self, request: web.Request) -> web.Response:
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        for disk in request.query.get("idlist", "").split(","):
            guest.config.pop(disk, None)
        return _ok(None)

    # --- cluster ------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return _ok({"version": "8.2.2", "release": "8.2", "repoid": "9355359c"})

    async def _node_status(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        if node != self.node:
            return _error(500, f"hostname lookup '{node}' failed - failed to get address info")
        return _ok({"uptime": 3600, "cpuinfo": {"cpus": 8}, "memory": {"total": 64 * GIB}})

    async def _rrddata(self, request: web.Request) -> web.Response:
        """Minute averages of the last hour (`timeframe=hour`); absent figures while off."""
        guest = self._guest(request)
        if guest is None:
            return self._no_such_vm(request)
        if request.query.get("timeframe") != "hour":
            return _error(400, "Parameter verification failed.", {"timeframe": "unsupported"})
        now = self._now() // 60 * 60
        max_mem = int(guest.config.get("memory", "1024")) * MIB
        rows: list[dict[str, Any]] = []
        for i in range(70):
            at = now - (70 - i) * 60
            row: dict[str, Any] = {"time": at, "maxmem": max_mem, "maxcpu": 1}
            if guest.running_since is not None and at >= guest.running_since:
                row.update(
                    cpu=Decimal("0.0231"),
                    mem=max_mem // 4,
                    netin=Decimal("1000.5"),
                    netout=500,
                    diskread=4096,
                    diskwrite=Decimal("2048.25"),
                )
            rows.append(row)
        return _ok(rows)

    async def _content(self, request: web.Request) -> web.Response:
        storage = request.match_info["storage"]
        content = request.query.get("content")
        prefix = f"{storage}:{content}/" if content else f"{storage}:"
        return _ok(
            [
                {"volid": v, "size": len(data), "content": v.split(":", 1)[1].split("/")[0]}
                for v, data in self.volumes.items()
                if v.startswith(prefix)
            ]
        )

    async def _download(self, request: web.Request) -> web.Response:
        """Fetch `url` now and finish the task OK, or with an error on a checksum mismatch."""
        params = {k: str(v) for k, v in (await request.post()).items()}
        missing = [k for k in ("url", "content", "filename") if k not in params]
        if missing:
            return _error(400, "Parameter verification failed.", dict.fromkeys(missing, "missing"))
        if ("checksum" in params) != ("checksum-algorithm" in params):
            return _error(
                400,
                "Parameter verification failed.",
                {"checksum": "checksum and checksum-algorithm go together"},
            )
        volid = f"{request.match_info['storage']}:{params['content']}/{params['filename']}"
        if volid in self.volumes:
            return _error(500, f"refusing to override existing file '{params['filename']}'")
        async with aiohttp.ClientSession() as session, session.get(params["url"]) as resp:
            data = await resp.read()
            status = resp.status
        error = "OK"
        if status != 200:
            error = f"download failed: {status}"
        elif "checksum" in params:
            actual = hashlib.new(params["checksum-algorithm"], data).hexdigest()
            if actual != params["checksum"]:
                error = f"checksum mismatch: got '{actual}' != expect '{params['checksum']}'"
        if error == "OK":
            self.volumes[volid] = data
        return _ok(self._task(0, "download", error))

    # --- tasks --------------------------------------------------------------------------

    async def _task_list(self, request: web.Request) -> web.Response:
        """Running tasks (`source=active`), by `vmid` and `typefilter` when given."""
        if request.query.get("source") != "active":
            return _error(400, "Parameter verification failed.", {"source": "only active"})
        vmid, kind = request.query.get("vmid"), request.query.get("typefilter")
        return _ok(
            [
                {"upid": t.upid, "type": t.kind, "id": str(t.vmid), "node": self.node}
                for t in self.tasks.values()
                if self._running(t)
                and (vmid is None or str(t.vmid) == vmid)
                and (kind is None or t.kind == kind)
            ]
        )

    def _running(self, task: FakeTask) -> bool:
        return not task.done and (task.polls_left > 0 or self.tasks_never_finish)

    def _locked(self, vmid: int) -> bool:
        """A guest is locked while its create task runs."""
        return any(
            t.vmid == vmid and t.kind == "qmcreate" and self._running(t)
            for t in self.tasks.values()
        )

    async def _task_status(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["upid"])
        if task is None:
            return _error(500, "unable to parse worker upid")
        data: dict[str, Any] = {
            "upid": task.upid,
            "node": self.node,
            "pid": 0,
            "pstart": 0,
            "starttime": self._now(),
            "type": task.kind,
            "id": str(task.vmid),
            "user": self.token.split("=", 1)[0],
            "status": "running",
        }
        if self._running(task):
            task.polls_left -= 1
        else:
            task.done = True
            data.update(status="stopped", exitstatus=task.exit_status)
        return _ok(data)

    def _task(self, vmid: int, kind: str, exit_status: str = "OK") -> str:
        if exit_status == "OK":
            exit_status = self.task_exit.get(kind, exit_status)
        self._pid += 1
        user = self.token.split("=", 1)[0]
        upid = f"UPID:{self.node}:{self._pid:08X}:0000ABCD:{self._now():08X}:{kind}:{vmid}:{user}:"
        self.tasks[upid] = FakeTask(upid, vmid, kind, exit_status, self.task_polls)
        return upid

    # --- helpers ------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _guest(self, request: web.Request) -> FakeGuest | None:
        return self.guests.get(int(request.match_info["vmid"]))

    def _no_such_vm(self, request: web.Request) -> web.Response:
        vmid = request.match_info["vmid"]
        conf = f"nodes/{self.node}/qemu-server/{vmid}.conf"
        return _error(500, f"Configuration file '{conf}' does not exist")

    def _info(self, guest: FakeGuest) -> dict[str, Any]:
        running = guest.status == "running" and guest.running_since is not None
        uptime = self._now() - guest.running_since if running and guest.running_since else 0
        max_mem = int(guest.config.get("memory", "1024")) * MIB
        info: dict[str, Any] = {
            "vmid": guest.vmid,
            "name": guest.config.get("name", ""),
            "status": guest.status,
            "cpus": int(guest.config.get("cores", "1")),
            "maxmem": max_mem,
            "mem": max_mem // 4 if running else 0,
            "maxdisk": guest.disk_size,
            "cpu": Decimal("0.0231") if running else 0,
            "uptime": uptime,
            "netin": uptime * 1000,
            "netout": uptime * 500,
            "diskread": uptime * 4096,
            "diskwrite": uptime * 2048,
        }
        if self._locked(guest.vmid):
            info["lock"] = "create"
        return info
