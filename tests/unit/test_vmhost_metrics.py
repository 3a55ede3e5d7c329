"""Host metrics arithmetic: libvirt samples to rates, Proxmox rrddata rows, SHA-2 checks."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest

from adapters.vmhost.image_checksum import DigestCheck, digest_algorithm, digest_from_sums
from adapters.vmhost.libvirt_metrics import MAX_SAMPLES, WINDOW_S, Sample, SampleHistory
from adapters.vmhost.proxmox_metrics import rrd_points
from ports.vmhost import VmHostError


def sample(at: int, cpu_s: int = 0, net: int = 0, disk: int = 0) -> Sample:
    return Sample(
        at=at,
        cpu_ns=cpu_s * 1_000_000_000,
        vcpus=2,
        memory=Decimal("0.5"),
        memory_size=2048,
        net_in=net,
        net_out=net // 2,
        disk_read=disk,
        disk_write=disk // 4,
    )


def test_rates_between_consecutive_samples() -> None:
    history = SampleHistory()
    history.record(1, sample(1000))
    history.record(1, sample(1060, cpu_s=30, net=6000, disk=1200))
    history.record(1, sample(1120, cpu_s=150, net=6000, disk=1200))
    first, second = history.series(1)
    assert first.timestamp == 1060
    assert first.cpu == Decimal("0.25")  # 30 cpu-seconds over 60 s on 2 vcpus
    assert (first.net_in, first.net_out) == (Decimal(100), Decimal(50))
    assert (first.disk_read, first.disk_write) == (Decimal(20), Decimal(5))
    assert (first.memory, first.memory_size) == (Decimal("0.5"), 2048)
    assert second.cpu == Decimal(1) and second.net_in == Decimal(0)
    assert history.series(2) == []


def test_a_counter_going_back_is_a_restart_not_a_negative_rate() -> None:
    history = SampleHistory()
    for s in (sample(0, 10, 500), sample(60, 1, 20), sample(120, 4, 80)):
        history.record(7, s)
    [point] = history.series(7)
    assert point.timestamp == 120 and point.net_in == Decimal(1)


def test_samples_older_than_the_window_or_same_second_are_dropped() -> None:
    history = SampleHistory()
    history.record(1, sample(0))
    history.record(1, sample(30, cpu_s=3))
    history.record(1, sample(30, cpu_s=6))  # same second: replaces the previous
    assert [p.cpu for p in history.series(1)] == [Decimal("0.1")]
    history.record(1, sample(WINDOW_S + 30, cpu_s=10))
    assert [p.timestamp for p in history.series(1)] == [WINDOW_S + 30]
    for i in range(MAX_SAMPLES + 10):
        history.record(2, sample(i))
    assert len(history.series(2)) == MAX_SAMPLES - 1
    history.forget(2)
    assert history.series(2) == []


def test_rrd_rows_sorted_with_missing_figures_as_zero() -> None:
    rows: list[dict[str, Any]] = [
        {"time": 120, "cpu": Decimal("0.5"), "mem": 512, "maxmem": 1024, "netin": Decimal("1.5")},
        {"time": 60, "maxmem": 1024},
        {"cpu": 1},  # no time: not a point
        {"time": 180, "cpu": Decimal("1.2"), "mem": 4096, "maxmem": 1024},
    ]
    points = rrd_points(rows)
    assert [p.timestamp for p in points] == [60, 120, 180]
    assert (points[0].cpu, points[0].memory, points[0].net_in) == (Decimal(0),) * 3
    assert (points[1].cpu, points[1].memory, points[1].net_in) == (
        Decimal("0.5"),
        Decimal("0.5"),
        Decimal("1.5"),
    )
    assert (points[2].cpu, points[2].memory) == (Decimal(1), Decimal(1))  # clamped


def test_digest_algorithm_by_length() -> None:
    assert digest_algorithm("a" * 64) == "sha256"
    assert digest_algorithm("A" * 128) == "sha512"
    for bad in ("a" * 63, "g" * 64, ""):
        with pytest.raises(VmHostError):
            digest_algorithm(bad)


def test_digest_check_passes_the_right_bytes_only() -> None:
    good = DigestCheck(("sha256", hashlib.sha256(b"abcdef").hexdigest()))
    for chunk in (b"abc", b"def"):
        good.update(chunk)
    good.verify("image")
    bad = DigestCheck(("sha256", hashlib.sha256(b"abcdef").hexdigest()))
    bad.update(b"abcdeF")
    with pytest.raises(VmHostError, match="sha256 mismatch") as caught:
        bad.verify("image")
    assert caught.value.transient is False
    DigestCheck(None).verify("unchecked")  # no digest: nothing to compare


def test_the_sums_file_line_of_the_image() -> None:
    d256, d512 = "ab" * 32, "CD" * 64
    text = (
        "-----BEGIN PGP SIGNED MESSAGE-----\n"
        f"{'00' * 32}  debian-12-generic-arm64.qcow2\n"
        f"{d256} *noble-server-cloudimg-amd64.img\n"
        f"SHA512 (Fedora-Cloud-Base-41.qcow2) = {d512}\n"
        f"{'11' * 32}  ./sub/debian-12-generic-amd64.qcow2\n"
    )
    assert digest_from_sums(text, "noble-server-cloudimg-amd64.img") == d256
    assert digest_from_sums(text, "Fedora-Cloud-Base-41.qcow2") == d512.lower()
    assert digest_from_sums(text, "debian-12-generic-amd64.qcow2") == "11" * 32
    assert digest_from_sums(text, "debian-13.qcow2") is None
