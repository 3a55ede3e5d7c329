"""An offer's CPU maker, architecture and features pick the hosts it may be built on (r16 #2)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from app.billing.placement import DiskRoom, Room, best_placement
from domain.cpu_match import ANY_CPU, CpuNeed, serves_cpu
from domain.enums import CpuArch, CpuMfg, DiskInterface, DiskType, VmHostKind
from domain.model import GIB, CustomTemplate, Host, HostDisk

AMD, INTEL, X86, ARM = CpuMfg.AMD, CpuMfg.INTEL, CpuArch.X86_64, CpuArch.ARM64


def _host(host_id: int, **cpu: Any) -> Host:
    return Host(
        id=host_id,
        kind=VmHostKind.DUMMY,
        region_id=1,
        name=f"h{host_id}",
        ip=f"10.0.0.{host_id}",
        cpu=16,
        memory=64 * GIB,
        enabled=True,
        api_token="",
        **cpu,
    )


@pytest.mark.parametrize(
    ("need", "host", "serves"),
    [
        (ANY_CPU, {}, True),
        (ANY_CPU, {"cpu_mfg": INTEL, "cpu_arch": ARM, "cpu_features": ("AES",)}, True),
        (CpuNeed(cpu_mfg=AMD), {"cpu_mfg": AMD}, True),
        (CpuNeed(cpu_mfg=AMD), {"cpu_mfg": INTEL}, False),
        (CpuNeed(cpu_mfg=AMD), {}, False),  # a host of unknown make is no AMD host
        (CpuNeed(cpu_arch=X86), {"cpu_mfg": INTEL, "cpu_arch": X86}, True),
        (CpuNeed(cpu_arch=X86), {"cpu_arch": ARM}, False),
        (CpuNeed(cpu_features=("AVX2",)), {"cpu_features": ("AES", "AVX2")}, True),
        (CpuNeed(cpu_features=("AVX2", "AES")), {"cpu_features": ("AVX2",)}, False),
        (CpuNeed(cpu_features=("AVX2",)), {}, False),
        (CpuNeed(AMD, X86, ("AVX2",)), {"cpu_mfg": AMD, "cpu_arch": X86}, False),
    ],
)
def test_a_host_serves_what_an_offer_names_and_an_unnamed_need_is_any(
    need: CpuNeed, host: dict[str, Any], serves: bool
) -> None:
    assert serves_cpu(_host(1, **host), need) is serves


def _room(host: Host, used_cpu: int) -> Room:
    disk = HostDisk(
        id=host.id,
        host_id=host.id,
        name="nvme",
        size=2048 * GIB,
        kind=DiskType.SSD,
        interface=DiskInterface.PCIE,
        enabled=True,
    )
    return Room(
        host=host,
        cpu_capacity=Fraction(host.cpu),
        memory_capacity=Fraction(host.memory),
        used_cpu=used_cpu,
        used_memory=0,
        disks=(DiskRoom(disk, Fraction(disk.size), 0),),
    )


#: a roomy Intel host and an AMD host with AES, half full, of one region
ROOMS = [
    _room(_host(1, cpu_mfg=INTEL, cpu_arch=X86), used_cpu=0),
    _room(_host(2, cpu_mfg=AMD, cpu_arch=X86, cpu_features=("AES",)), used_cpu=8),
]


def _spec(**cpu: Any) -> CustomTemplate:
    return CustomTemplate(
        id=0,
        cpu=2,
        memory=2 * GIB,
        disk_size=40 * GIB,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        pricing_id=1,
        **cpu,
    )


@pytest.mark.parametrize(
    ("cpu", "host_id"),
    [
        ({}, 1),  # no CPU named: the least loaded, as before
        ({"cpu_mfg": AMD}, 2),
        ({"cpu_features": ("AES",)}, 2),
        ({"cpu_mfg": INTEL, "cpu_arch": X86}, 1),
        ({"cpu_arch": ARM}, None),
        ({"cpu_mfg": AMD, "cpu_features": ("AVX512",)}, None),
    ],
)
def test_placement_takes_the_least_loaded_host_of_the_offers_cpu(
    cpu: dict[str, Any], host_id: int | None
) -> None:
    spec = _spec(**cpu)
    placed = best_placement(ROOMS, spec, DiskInterface.PCIE, cpu=spec)
    assert (None if placed is None else placed.host.id) == host_id


def test_an_offers_cpu_host_full_is_no_placement_though_others_have_room() -> None:
    spec = _spec(cpu_mfg=AMD)
    full = [ROOMS[0], _room(ROOMS[1].host, used_cpu=15)]
    assert best_placement(full, spec, DiskInterface.PCIE, cpu=spec) is None
    assert best_placement(full, spec, DiskInterface.PCIE, cpu=ANY_CPU) is not None
