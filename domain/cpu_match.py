"""Which hosts an offer may be built on: the CPU maker, architecture and features it asks for."""

from __future__ import annotations

from typing import Protocol

import attrs

from domain.enums import CpuArch, CpuMfg


class CpuKind(Protocol):
    """A CPU as a host has it or as an offer (template, custom pricing or template) asks it."""

    @property
    def cpu_mfg(self) -> CpuMfg: ...
    @property
    def cpu_arch(self) -> CpuArch: ...
    @property
    def cpu_features(self) -> tuple[str, ...]: ...


@attrs.frozen
class CpuNeed:
    """A CPU need on its own; the defaults ask for nothing."""

    cpu_mfg: CpuMfg = CpuMfg.UNKNOWN
    cpu_arch: CpuArch = CpuArch.UNKNOWN
    cpu_features: tuple[str, ...] = ()


#: an offer that names no CPU maker, architecture or feature: every host serves it
ANY_CPU = CpuNeed()


def serves_cpu(host: CpuKind, need: CpuKind) -> bool:
    """The host's CPU is what the offer asks for: its maker and architecture when the offer
    names them (unknown on the offer: any), and every feature the offer lists. The one rule
    the catalogue lists an offer's room by and placement builds its VMs by, so an offer is
    never shown on a host an order of it could not land on (review r16)."""
    if need.cpu_mfg is not CpuMfg.UNKNOWN and host.cpu_mfg is not need.cpu_mfg:
        return False
    if need.cpu_arch is not CpuArch.UNKNOWN and host.cpu_arch is not need.cpu_arch:
        return False
    return set(need.cpu_features) <= set(host.cpu_features)
