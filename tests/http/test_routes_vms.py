"""VM routes over the real app: shapes clients read, ownership, NIP-98 refusals, actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest

from adapters.http.context import SERVICES
from adapters.http.openapi import documented_operations, served_operations
from adapters.memory.vm_state import MemoryVmStateCache
from app.worker.provisioning import full_info
from domain.model import GIB, Host, IpAssignment, IpRange, Vm
from ports.jobs import CheckVm, ConfigureVm
from ports.queue import Job
from ports.vmhost import FullVmInfo, VmHost, VmHostError, VmRunningState, VmRunState
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.vm_helpers import add_key, build, order, paid_vm, provision, renew, settle
from tests.nostr_signing import NostrKey, auth_header, nip98_event

STATUS_KEYS = [
    "id",
    "created",
    "expires",
    "mac_address",
    "image",
    "template",
    "ssh_key",
    "ip_assignments",
    "status",
    "auto_renewal_enabled",
]


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def jobs(c: ApiClient) -> list[Job]:
    return [d.job for d in await c.api.queue.receive(100, 0)]


async def test_order_returns_the_documented_unpaid_vm_status(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    assert list(vm) == STATUS_KEYS
    assert vm["expires"] is None and vm["mac_address"] == "ff:ff:ff:ff:ff:ff"
    assert vm["ip_assignments"] == [] and vm["auto_renewal_enabled"] is False
    assert vm["status"] == {
        "timestamp": 0,
        "state": "unknown",
        "cpu_usage": 0.0,
        "mem_usage": 0.0,
        "uptime": 0,
        "net_in": 0,
        "net_out": 0,
        "disk_write": 0,
        "disk_read": 0,
    }
    assert vm["image"] == {
        "id": c.demo.ubuntu,
        "distribution": "ubuntu",
        "flavour": "Server",
        "version": "24.04",
        "release_date": "2024-04-25T00:00:00Z",
        "default_username": "ubuntu",
    }
    template = vm["template"]
    assert template["id"] == c.demo.tiny and template["name"] == "Tiny"
    assert template["cost_plan"] == {
        "id": c.demo.tiny_plan,
        "name": "Tiny",
        "currency": "EUR",
        "amount": 270,
        "other_price": [],
        "interval_amount": 1,
        "interval_type": "month",
    }
    assert template["region"] == {"id": c.demo.region, "name": "Dublin"}
    assert isinstance(vm["ssh_key"]["id"], int) and vm["ssh_key"]["name"] == "laptop"
    assert vm["created"] == "2026-06-17T10:00:00Z"


async def test_list_and_get_show_only_the_callers_vms(c: ApiClient) -> None:
    mine, theirs = await order(c, ALICE), await order(c, BOB)
    listed = await (await c.call("GET", "/api/v1/vm")).json()
    assert [v["id"] for v in listed["data"]] == [mine["id"]]
    got = await c.call("GET", f"/api/v1/vm/{mine['id']}")
    assert (await got.json())["data"] == mine
    for path in (
        f"/api/v1/vm/{theirs['id']}",
        "/api/v1/vm/9999",
        f"/api/v1/vm/{theirs['id']}/history",
        f"/api/v1/vm/{theirs['id']}/payments",
        f"/api/v1/vm/{theirs['id']}/renew",
        f"/api/v1/vm/{theirs['id']}/time-series",
    ):
        resp = await c.call("GET", path)
        assert resp.status == 404, path
        assert await resp.json() == {"error": "VM not found"}
    resp = await c.call("PATCH", f"/api/v1/vm/{theirs['id']}/stop")
    assert resp.status == 404
    assert (await c.call("GET", "/api/v1/vm/abc")).status == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/vm/{id}", 404),
        ("/api/v1/vm/9999", 404),
        ("/api/v1/vm/0", 404),
        ("/api/v1/vm/{id}/renew", 404),
        ("/api/v1/vm/9999/renew", 404),
        ("/api/v1/vm/{id}/renew?intervals=0", 400),
    ],
)
async def test_a_new_key_gets_its_user_even_when_refused(
    c: ApiClient, path: str, status: int
) -> None:
    """VM status and renewal select by the owner's key; a key seen for the first time still
    gets its user, as on every authenticated route, and another's VM stays hidden."""
    theirs = await order(c, BOB)
    newcomer = NostrKey.from_seed(23)
    resp = await c.call("GET", path.format(id=theirs["id"]), key=newcomer)
    assert resp.status == status
    async with c.api.store() as uow:
        assert await uow.users.get_by_pubkey(newcomer.pubkey) is not None


@pytest.mark.parametrize("case", ["wrong_url", "wrong_method", "stale", "bad_signature"])
async def test_nip98_refusals_are_401_and_show_nothing(c: ApiClient, case: str) -> None:
    vm = await order(c, ALICE)
    path = f"/api/v1/vm/{vm['id']}"
    url, method, when = c.url(path), "GET", c.api.clock.now()
    if case == "wrong_url":
        url = c.url("/api/v1/vm/1234")
    elif case == "wrong_method":
        method = "PATCH"
    elif case == "stale":
        when -= timedelta(seconds=601)
    event = nip98_event(ALICE, url, method, when)
    if case == "bad_signature":
        event["sig"] = ("00" if event["sig"][:2] != "00" else "11") + event["sig"][2:]
    resp = await c.client.get(path, headers={"Authorization": auth_header(event)})
    assert resp.status == 401
    assert "data" not in await resp.json()
    assert (await c.call("GET", path, signed=False)).status == 401


async def test_custom_order_synthesizes_the_custom_template(c: ApiClient) -> None:
    key = await add_key(c.api, ALICE)
    body = {
        "pricing_id": c.demo.custom,
        "cpu": 2,
        "memory": 4 * GIB,
        "disk": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "image_id": c.demo.debian,
        "ssh_key_id": key.id,
    }
    resp = await c.call("POST", "/api/v1/vm/custom-template", json=body)
    assert resp.status == 200, await resp.text()
    vm = (await resp.json())["data"]
    template = vm["template"]
    assert (template["name"], template["cpu"], template["memory"], template["disk_size"]) == (
        "Custom",
        2,
        4 * GIB,
        80 * GIB,
    )
    plan = template["cost_plan"]
    assert plan["id"] == c.demo.custom and plan["interval_type"] == "month"
    assert plan["amount"] > 0 and plan["other_price"] == []
    assert vm["image"]["default_username"] is None
    too_big = await c.call("POST", "/api/v1/vm/custom-template", json={**body, "cpu": 999})
    assert too_big.status == 400


@pytest.mark.parametrize(
    ("field", "size"), [("memory", 4 * GIB - 1), ("disk", 80 * GIB + 1), ("disk", 80 * 10**9)]
)
async def test_a_custom_order_for_a_size_that_is_not_whole_gib_is_refused(
    c: ApiClient, field: str, size: int
) -> None:
    # it would be billed for the whole GiB above (or, before, below) what the host gets
    key = await add_key(c.api, ALICE)
    body = {
        "pricing_id": c.demo.custom,
        "cpu": 2,
        "memory": 4 * GIB,
        "disk": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "image_id": c.demo.debian,
        "ssh_key_id": key.id,
        field: size,
    }
    resp = await c.call("POST", "/api/v1/vm/custom-template", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field} must be a whole number of GiB")
    assert (await (await c.call("GET", "/api/v1/vm")).json())["data"] == []


async def test_a_fourth_unpaid_order_is_422_until_one_is_paid() -> None:
    """D25 through the API, with the `max-unpaid-vms` value the services carry."""
    api = build()
    api.services = attrs.evolve(api.services, max_unpaid_vms=2)
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        first = await order(c, ALICE)
        await order(c, ALICE)
        key = await add_key(c.api, ALICE)
        custom = {
            "pricing_id": c.demo.custom,
            "cpu": 2,
            "memory": 4 * GIB,
            "disk": 80 * GIB,
            "disk_type": "ssd",
            "disk_interface": "pcie",
            "image_id": c.demo.debian,
            "ssh_key_id": key.id,
        }
        standard = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": key.id}
        for path, body in (("/api/v1/vm", standard), ("/api/v1/vm/custom-template", custom)):
            resp = await c.call("POST", path, json=body)
            assert resp.status == 422
            error = (await resp.json())["error"]
            assert error.startswith("You already have 2 unpaid VMs (at most 2)")
        assert len((await (await c.call("GET", "/api/v1/vm")).json())["data"]) == 2
        assert (
            await c.call(
                "POST",
                "/api/v1/vm",
                key=BOB,
                json={**standard, "ssh_key_id": (await add_key(c.api, BOB)).id},
            )
        ).status == 200
        await settle(c.api, (await renew(c, ALICE, first["id"]))["id"])
        assert (await c.call("POST", "/api/v1/vm", json=standard)).status == 200


async def test_order_refusals(c: ApiClient) -> None:
    bob_key = await add_key(c.api, BOB)
    mine = await add_key(c.api, ALICE)
    base = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": mine.id}
    cases = [
        ({**base, "ssh_key_id": bob_key.id}, 404),
        ({**base, "image_id": c.demo.centos}, 404),
        ({**base, "template_id": 9999}, 404),
        ({**base, "template_id": c.demo.retired}, 422),
        ({"image_id": 1, "ssh_key_id": mine.id}, 400),
        ({**base, "template_id": "one"}, 400),
    ]
    for body, status in cases:
        resp = await c.call("POST", "/api/v1/vm", json=body)
        assert resp.status == status, (body, await resp.text())
        assert "error" in await resp.json()
    raw = await c.call("POST", "/api/v1/vm", data=b"{", headers={"Content-Type": "text/plain"})
    assert raw.status == 415
    assert (await (await c.call("GET", "/api/v1/vm")).json())["data"] == []


async def test_email_gate_blocks_orders_when_email_is_configured() -> None:
    async with api_client(build(require_verified_email=True)) as c:
        key = await add_key(c.api, ALICE)
        body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": key.id}
        resp = await c.call("POST", "/api/v1/vm", json=body)
        assert resp.status == 422
        assert "Email verification is required" in (await resp.json())["error"]


async def test_state_is_creating_after_payment_and_comes_from_the_cache_once_known() -> None:
    api = build()
    states = MemoryVmStateCache()
    api.app[SERVICES] = api.services = attrs.evolve(api.services, vm_states=states)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
        got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
        assert got["status"]["state"] == "creating" and got["expires"] is not None
        states.states[vm["id"]] = VmRunningState(state=VmRunState.UNKNOWN)
        got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
        assert got["status"]["state"] == "creating"
        await provision(c.api, vm["id"])
        got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
        assert got["status"]["state"] == "unknown"
        states.states[vm["id"]] = VmRunningState(
            timestamp=1781690700, state=VmRunState.RUNNING, uptime=245
        )
        got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
        assert got["status"]["state"] == "running" and got["status"]["uptime"] == 245


async def test_a_running_state_is_not_shown_before_the_build_is_committed() -> None:
    """Issue 8 §7: the host (and the cache fed from it) may say `running` while the spawn
    has not committed the VM's MAC and addresses; the client must see `creating`, never a
    running VM with `ip_assignments: []`."""
    api = build()
    states = MemoryVmStateCache()
    api.app[SERVICES] = api.services = attrs.evolve(api.services, vm_states=states)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
        states.states[vm["id"]] = VmRunningState(timestamp=1781690700, state=VmRunState.RUNNING)
        got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
        assert got["status"]["state"] == "creating" and got["ip_assignments"] == []
        [listed] = (await (await c.call("GET", "/api/v1/vm")).json())["data"]
        assert listed["status"]["state"] == "creating"


async def test_patch_changes_key_auto_renewal_and_reverse_dns(c: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    async with c.api.store() as uow:
        ip_range = await uow.ip_ranges.add(
            IpRange(
                id=0,
                cidr="185.18.221.0/25",
                enabled=True,
                region_id=c.demo.region,
                gateway="185.18.221.1",
            )
        )
        await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=vm["id"], ip_range_id=ip_range.id, ip="185.18.221.14")
        )
        await uow.commit()
    second = await add_key(c.api, ALICE, "desktop")
    path = f"/api/v1/vm/{vm['id']}"
    body = {"ssh_key_id": second.id, "auto_renewal_enabled": True, "reverse_dns": "vm.example"}
    resp = await c.call("PATCH", path, json=body)
    assert resp.status == 200 and await resp.json() == {"data": None}
    got = (await (await c.call("GET", path)).json())["data"]
    assert got["ssh_key"]["id"] == second.id and got["auto_renewal_enabled"] is True
    assert got["ip_assignments"] == [
        {
            "id": got["ip_assignments"][0]["id"],
            "ip": "185.18.221.14/25",
            "gateway": "185.18.221.1",
            "forward_dns": None,
            "reverse_dns": "vm.example",
        }
    ]
    # recorded only: the key reaches the VM with its next re-install (no host job for it)
    assert not [j for j in await jobs(c) if isinstance(j, ConfigureVm)]
    bobs = await add_key(c.api, BOB)
    refused = await c.call("PATCH", path, json={"ssh_key_id": bobs.id})
    assert refused.status == 404
    assert (await (await c.call("GET", path)).json())["data"]["ssh_key"]["id"] == second.id


async def history(c: ApiClient, vm_id: int, query: str = "") -> list[dict[str, object]]:
    resp = await c.call("GET", f"/api/v1/vm/{vm_id}/history{query}")
    assert resp.status == 200
    data: list[dict[str, object]] = (await resp.json())["data"]
    return data


async def test_actions_call_the_host_log_history_and_queue_a_check(c: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    await jobs(c)
    for action in ("stop", "start", "restart"):
        resp = await c.call("PATCH", f"/api/v1/vm/{vm['id']}/{action}")
        assert resp.status == 200 and await resp.json() == {"data": None}
    resp = await c.call(
        "PATCH", f"/api/v1/vm/{vm['id']}/re-install", json={"image_id": c.demo.debian}
    )
    assert resp.status == 200
    got = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
    assert got["image"]["id"] == c.demo.debian
    assert await jobs(c) == [CheckVm(vm_id=vm["id"])] * 4
    entries = await history(c, vm["id"])
    assert [e["action_type"] for e in entries[:4]] == [
        "reinstalled",
        "restarted",
        "started",
        "stopped",
    ]
    assert entries[0]["initiated_by"] == "owner"
    assert entries[0]["new_state"] == f'{{"image_id":{c.demo.debian}}}'
    assert list(entries[0]) == [
        "id",
        "vm_id",
        "action_type",
        "timestamp",
        "initiated_by",
        "previous_state",
        "new_state",
        "metadata",
        "description",
    ]
    page = await history(c, vm["id"], "?limit=2&offset=1")
    assert [e["id"] for e in page] == [e["id"] for e in entries[1:3]]
    assert len(await history(c, vm["id"], "?limit=2")) == len(entries)
    hidden = await c.call(
        "PATCH", f"/api/v1/vm/{vm['id']}/re-install", json={"image_id": c.demo.centos}
    )
    assert hidden.status == 404


async def test_unprovisioned_and_expired_vms_cannot_be_started(c: ApiClient) -> None:
    unpaid = await order(c, ALICE)
    resp = await c.call("PATCH", f"/api/v1/vm/{unpaid['id']}/start")
    assert resp.status == 409
    vm = await paid_vm(c, ALICE)
    c.api.clock.advance(timedelta(days=40))
    for action in ("start", "restart", "re-install"):
        resp = await c.call("PATCH", f"/api/v1/vm/{vm['id']}/{action}")
        assert resp.status == 422, action
        assert "expired" in (await resp.json())["error"]
    assert (await c.call("PATCH", f"/api/v1/vm/{vm['id']}/stop")).status == 200


class BrokenHost:
    async def start_vm(self, vm: Vm) -> None:
        raise VmHostError("connect to 10.0.0.1:8006 refused, token=secret", transient=True)


class BrokenHosts:
    def for_host(self, host: Host) -> VmHost:
        return BrokenHost()  # type: ignore[return-value]


class KeyRecordingHosts:
    """The dummy hosts, recording the SSH key each re-install builds the fresh disk with."""

    def __init__(self, inner: object) -> None:
        self.inner, self.keys = inner, list[int]()

    def for_host(self, host: Host) -> VmHost:
        real, keys = self.inner.for_host(host), self.keys  # type: ignore[attr-defined]

        class Recording:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            async def reinstall_vm(self, info: FullVmInfo) -> None:
                keys.append(info.ssh_key.id)
                await real.reinstall_vm(info)

        return Recording()  # type: ignore[return-value]


async def test_a_new_ssh_key_reaches_the_vm_with_its_next_reinstall() -> None:
    api = build()
    hosts = KeyRecordingHosts(api.services.hosts)
    api.services = attrs.evolve(api.services, hosts=hosts)
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        vm = await paid_vm(c, ALICE)
        second = await add_key(c.api, ALICE, "desktop")
        path = f"/api/v1/vm/{vm['id']}"
        assert (await c.call("PATCH", path, json={"ssh_key_id": second.id})).status == 200
        assert (await c.call("PATCH", f"{path}/re-install", json={})).status == 200
        assert hosts.keys == [second.id]


async def test_a_host_failure_is_503_without_details_and_without_history() -> None:
    api = build()
    api.app[SERVICES] = attrs.evolve(api.services, hosts=BrokenHosts())
    async with api_client(api) as c:
        vm = await paid_vm(c, ALICE)
        before = await history(c, vm["id"])
        resp = await c.call("PATCH", f"/api/v1/vm/{vm['id']}/start")
        assert resp.status == 503
        error = (await resp.json())["error"]
        assert "secret" not in error and "10.0.0.1" not in error
        assert await history(c, vm["id"]) == before


async def test_time_series_is_empty_until_the_vm_is_on_its_host(c: ApiClient) -> None:
    unpaid = await order(c, ALICE)
    resp = await c.call("GET", f"/api/v1/vm/{unpaid['id']}/time-series")
    assert await resp.json() == {"data": []}
    vm = await paid_vm(c, ALICE)  # provisioned in the records, not created on the host
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/time-series")
    assert await resp.json() == {"data": []}


async def test_time_series_of_a_vm_on_the_dummy_host_is_the_last_hour(c: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    svc = c.api.services
    async with svc.uow_factory() as uow:
        row = await uow.vms.get(vm["id"])
        assert row is not None
        info = await full_info(uow, row, ())
    await svc.hosts.for_host(info.host).create_vm(info)
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/time-series")
    points = (await resp.json())["data"]
    now = int(c.api.clock.now().timestamp())
    assert len(points) == 60
    assert [p["timestamp"] for p in points] == [now - (60 - i) * 60 for i in range(60)]
    assert set(points[0]) == {
        "timestamp",
        "cpu",
        "memory",
        "memory_size",
        "net_in",
        "net_out",
        "disk_write",
        "disk_read",
    }
    assert all(0 < p["cpu"] <= 1 and 0 < p["memory"] <= 1 for p in points)
    assert points[15]["cpu"] == pytest.approx(0.35) and points[0]["memory"] == 0.2
    assert points[15]["net_in"] == pytest.approx(64_000 * 0.35)
    assert {p["memory_size"] for p in points} == {GIB}


class SilentHost:
    async def get_time_series(self, vm: Vm) -> list[object]:
        raise VmHostError("connect to 10.0.0.1:8006 refused, token=secret", transient=True)


class SilentHosts:
    def for_host(self, host: Host) -> VmHost:
        return SilentHost()  # type: ignore[return-value]


async def test_time_series_of_an_unreachable_host_is_empty() -> None:
    api = build()
    api.app[SERVICES] = attrs.evolve(api.services, hosts=SilentHosts())
    async with api_client(api) as c:
        vm = await paid_vm(c, ALICE)
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/time-series")
        assert resp.status == 200 and await resp.json() == {"data": []}


async def test_openapi_documents_exactly_the_served_routes(c: ApiClient) -> None:
    document = await (await c.call("GET", "/openapi.json", signed=False)).json()
    assert documented_operations(document) == served_operations(c.api.app)
    ops = document["paths"]["/api/v1/vm/{id}/renew"]
    assert set(ops) == {"get", "post"}
    assert ops["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"][
        "data"
    ]["required"][:3] == ["id", "vm_id", "created"]


async def test_router_edges_wrong_method_head_and_bodies(c: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    path = f"/api/v1/vm/{vm['id']}"
    wrong = await c.call("DELETE", path)
    assert wrong.status == 405 and await wrong.json() == {"error": "Method Not Allowed"}
    head = await c.client.head(path, headers=c.auth(path, "HEAD"))
    assert head.status == 200
    assert (await c.call("PATCH", path, json=[1, 2])).status == 400
    assert (await c.call("PATCH", path, json={"auto_renewal_enabled": "yes"})).status == 400
    bare = await c.call("PATCH", f"{path}/re-install")
    assert bare.status == 200 and await bare.json() == {"data": None}
    ignored = await c.call("PATCH", f"{path}/start", data=b"not json")
    assert ignored.status == 200


class CountingMetricsHost:
    def __init__(self) -> None:
        self.calls = 0

    async def get_time_series(self, vm: Vm) -> list[object]:
        self.calls += 1
        return []

    def for_host(self, host: Host) -> VmHost:
        return self  # type: ignore[return-value]


async def test_time_series_asks_the_host_once_per_vm_within_its_cache_window() -> None:
    """A replayed GET (one signed event, ±600 s) must not make a host call per request."""
    api = build()
    host = CountingMetricsHost()
    api.app[SERVICES] = attrs.evolve(api.services, hosts=host)
    async with api_client(api) as c:
        vm = await paid_vm(c, ALICE)
        for _ in range(5):
            resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/time-series")
            assert resp.status == 200 and await resp.json() == {"data": []}
        assert host.calls == 1
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/time-series", key=BOB)
        assert resp.status == 404  # ownership is still checked on every call
        other = await paid_vm(c, ALICE)
        await c.call("GET", f"/api/v1/vm/{other['id']}/time-series")
        assert host.calls == 2  # per VM
