"""The host-client registry: row → adapter, one client per row version, closed on shutdown,
and the test connection (probe) against the wire-level fake Proxmox and libvirt's test driver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from adapters.memory.clock import FakeClock
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.proxmox import ProxmoxVmHost
from adapters.vmhost.resolver import VmHostClients
from domain.enums import VmHostKind
from domain.model import Host
from ports.vmhost import HostProber, VmHostError
from tests.contract.test_vmhost import T0, info
from tests.fakes.fake_proxmox import NODE, TOKEN, FakeProxmox

FAST = {"poll_interval_ms": 0, "retry_min_ms": 0, "retry_max_ms": 0}


@attrs.frozen
class Pve:
    fake: FakeProxmox
    row: Host
    clients: VmHostClients


@pytest.fixture
async def pve() -> AsyncIterator[Pve]:
    clock = FakeClock(T0)
    fake = FakeProxmox(clock)
    async with fake.serve() as url:
        clients = VmHostClients(clock, DummyVmHost(None, clock), FAST)
        row = attrs.evolve(
            info(1).host, kind=VmHostKind.PROXMOX, ip=url, name=NODE, api_token=TOKEN
        )
        yield Pve(fake, row, clients)
        await clients.aclose()


def _session_of(client: object) -> object:
    assert isinstance(client, ProxmoxVmHost)
    return client._api._session


async def test_a_proxmox_row_resolves_to_one_client_until_it_is_edited(pve: Pve) -> None:
    first = pve.clients.for_host(pve.row)
    assert isinstance(first, ProxmoxVmHost) and first.config.base_url == pve.row.ip
    assert first.config.poll_interval_ms == 0  # the `vm-hosts.proxmox` settings apply
    assert pve.clients.for_host(attrs.evolve(pve.row, cpu=99)) is first  # not a connection field
    await first.create_vm(info(1))
    session = _session_of(first)
    assert session is not None
    edited = pve.clients.for_host(attrs.evolve(pve.row, api_token=TOKEN + "x"))
    assert edited is not first and isinstance(edited, ProxmoxVmHost)
    assert edited.config.token == TOKEN + "x"
    for _ in range(100):  # the old version is closed in the background
        if session.closed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0)
    assert session.closed  # type: ignore[attr-defined]


async def test_aclose_closes_every_client(pve: Pve) -> None:
    client = pve.clients.for_host(pve.row)
    await client.get_all_vm_states()
    session = _session_of(client)
    await pve.clients.aclose()
    assert session.closed  # type: ignore[attr-defined]
    assert pve.clients.for_host(pve.row) is not client  # a later use builds a new one


async def test_mock_rows_share_the_dummy_host(pve: Pve) -> None:
    dummy = pve.clients.for_host(attrs.evolve(pve.row, kind=VmHostKind.DUMMY))
    assert isinstance(dummy, DummyVmHost)
    assert pve.clients.for_host(attrs.evolve(pve.row, id=2, kind=VmHostKind.DUMMY)) is dummy


async def test_probe_accepts_a_proxmox_node_that_answers(pve: Pve) -> None:
    prober: HostProber = pve.clients
    await prober.probe(pve.row)
    assert pve.fake.calls("GET", "/api2/json/version") == [{}]
    assert pve.fake.calls("GET", f"/nodes/{NODE}/status") == [{}]
    assert pve.clients._clients == {}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"api_token": "root@pam!lnvps=wrong"}, "Proxmox 401: authentication failure"),
        ({"name": "pve9"}, "hostname lookup 'pve9' failed"),
    ],
)
async def test_probe_refuses_a_proxmox_row_with_the_reason(
    pve: Pve, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(VmHostError, match=reason):
        await pve.clients.probe(attrs.evolve(pve.row, **change))


async def test_probe_does_not_retry_a_server_error(pve: Pve) -> None:
    pve.fake.fail_next(503)
    with pytest.raises(VmHostError, match="Proxmox 503"):
        await pve.clients.probe(pve.row)
    assert len(pve.fake.calls("GET", "/version")) == 1


async def test_probe_refuses_a_proxmox_url_nobody_listens_on(pve: Pve) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(VmHostError, match="Proxmox unreachable"):
        await pve.clients.probe(attrs.evolve(pve.row, ip=f"http://127.0.0.1:{port}"))


async def test_probe_of_a_mock_row_asks_nothing(pve: Pve) -> None:
    await pve.clients.probe(attrs.evolve(pve.row, kind=VmHostKind.DUMMY, ip="nowhere"))
    assert pve.fake.requests == []


async def test_probe_opens_a_libvirt_uri() -> None:
    pytest.importorskip("libvirt")
    clock = FakeClock(T0)
    clients = VmHostClients(clock, DummyVmHost(None, clock))
    row = attrs.evolve(info(1).host, kind=VmHostKind.LIBVIRT, ip="test:///default")
    await clients.probe(row)
    with pytest.raises(VmHostError, match="Connection refused"):
        await clients.probe(attrs.evolve(row, ip="qemu+tcp://127.0.0.1:1/system"))
    client = clients.for_host(row)
    await client.get_all_vm_states()
    await clients.aclose()
    assert client._conn is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("qemu+ext:///system?command=/bin/sh", "libvirt URI scheme must be one of"),
        ("qemu+ssh://root@kvm1/system?command=/tmp/x", "parameter not allowed: command"),
        ("qemu+ssh://root@kvm1/system?netcat=/tmp/x&keyfile=/k", "parameter not allowed: netcat"),
        ("qemu+unix:///system?socket=/var/run/docker.sock", "parameter not allowed: socket"),
        ("test:///etc/passwd", "only allowed as test:///default"),
        ("vbox:///session", "scheme must be one of"),
    ],
)
async def test_a_libvirt_uri_that_runs_commands_or_reads_files_is_refused(
    uri: str, reason: str
) -> None:
    """A host row's URI is admin input: libvirt's `ext` transport and `command`/`netcat`
    parameters run programs here, and the test driver quotes any file it is pointed at."""
    clock = FakeClock(T0)
    clients = VmHostClients(clock, DummyVmHost(None, clock))
    row = attrs.evolve(info(1).host, kind=VmHostKind.LIBVIRT, ip=uri)
    with pytest.raises(VmHostError, match=reason) as caught:
        await clients.probe(row)
    assert "root:" not in caught.value.message
    with pytest.raises(VmHostError, match=reason):
        clients.for_host(row)  # the worker refuses it too (a row saved unchecked)


def test_allowed_libvirt_uris_pass_the_check() -> None:
    from adapters.vmhost.libvirt_uri import check_libvirt_uri

    for uri in (
        "qemu:///system",
        "qemu+ssh://root@kvm1/system?keyfile=/k&no_verify=1",
        "qemu+tls://kvm1/system",
        "test:///default",
    ):
        check_libvirt_uri(uri)
    check_libvirt_uri("test:///tmp/node.xml", allow_test_files=True)


def test_libvirt_settings_are_checked_when_the_registry_is_built() -> None:
    import inspect

    from adapters.vmhost.resolver import LIBVIRT_SETTINGS

    with pytest.raises(ValueError, match="unknown settings pool, x"):
        VmHostClients(
            FakeClock(T0),
            DummyVmHost(None, FakeClock(T0)),
            libvirt={"storage_pool": "p", "pool": "p", "x": 1},
        )
    pytest.importorskip("libvirt")
    from adapters.vmhost.libvirt_host import LibvirtVmHost

    accepted = set(inspect.signature(LibvirtVmHost).parameters) - {"uri", "clock", "rng"}
    assert accepted == LIBVIRT_SETTINGS
