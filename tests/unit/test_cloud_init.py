"""cloud-init NoCloud seed: the files a guest reads, and the ISO they are put on."""

from __future__ import annotations

import attrs
import pytest
import yaml

from adapters.vmhost.cloud_init import network_config, read_seed_iso, seed_files, seed_iso
from domain.enums import IpRangeAllocationMode
from domain.model import IpAssignment, IpRange
from domain.unreadable import Unreadable
from ports.vmhost import VmHostError
from tests.contract.test_vmhost import info


def test_slaac_ranges_accept_router_advertisements_instead_of_an_address() -> None:
    base = info(3)
    spec = attrs.evolve(
        base,
        vm=attrs.evolve(base.vm, mac_address="52:54:00:AB:CD:EF"),
        ips=(
            IpAssignment(id=1, vm_id=3, ip_range_id=2, ip="2a13:2c0::5054:ff:feab:cdef"),
            IpAssignment(id=2, vm_id=3, ip_range_id=1, ip="10.1.2.3/32"),
        ),
        ranges=(
            IpRange(id=1, cidr="10.1.2.0/24", enabled=True, region_id=1, gateway="10.1.2.1"),
            IpRange(
                id=2,
                cidr="2a13:2c0::/64",
                enabled=True,
                region_id=1,
                gateway="fe80::1",
                allocation_mode=IpRangeAllocationMode.SLAAC_EUI64,
            ),
        ),
    )
    nic = network_config(spec)["ethernets"]["eth0"]
    assert nic["match"] == {"macaddress": "52:54:00:ab:cd:ef"}
    assert nic["accept-ra"] is True
    assert nic["addresses"] == ["10.1.2.3/24"]
    assert nic["routes"] == [{"to": "0.0.0.0/0", "via": "10.1.2.1"}]
    assert "nameservers" not in nic


def test_a_vm_without_addresses_gets_no_static_config() -> None:
    nic = network_config(info(1))["ethernets"]["eth0"]
    assert "addresses" not in nic and "routes" not in nic and nic["dhcp4"] is False


def test_the_iso_round_trips_every_file() -> None:
    files = seed_files(info(2), instance_tag="99")
    label, back = read_seed_iso(seed_iso(files))
    assert label == "cidata" and back == files
    assert yaml.safe_load(back["meta-data"])["instance-id"] == "lnvps-vm2-99"
    assert yaml.safe_load(back["user-data"])["ssh_authorized_keys"] == ["ssh-ed25519 AAAA k"]


def test_a_gateway_outside_the_network_is_on_link() -> None:
    base = info(4)
    spec = attrs.evolve(
        base,
        ips=(
            IpAssignment(id=1, vm_id=4, ip_range_id=1, ip="203.0.113.7"),
            IpAssignment(id=2, vm_id=4, ip_range_id=2, ip="2001:db8::7"),
        ),
        ranges=(
            IpRange(
                id=1, cidr="203.0.113.7/32", enabled=True, region_id=1, gateway="198.51.100.1/32"
            ),
            IpRange(id=2, cidr="2001:db8::/64", enabled=True, region_id=1, gateway="fe80::1"),
        ),
    )
    nic = network_config(spec)["ethernets"]["eth0"]
    assert nic["addresses"] == ["203.0.113.7/32", "2001:db8::7/64"]
    assert nic["routes"] == [
        {"to": "0.0.0.0/0", "via": "198.51.100.1", "on-link": True},
        {"to": "::/0", "via": "fe80::1", "on-link": True},
    ]


def test_a_key_that_cannot_be_decrypted_is_a_fatal_error_not_a_vm_without_a_key() -> None:
    base = info(4)
    spec = attrs.evolve(base, ssh_key=attrs.evolve(base.ssh_key, key_data=Unreadable("ENC:x")))
    with pytest.raises(VmHostError, match="cannot be decrypted") as caught:
        seed_files(spec)
    assert caught.value.transient is False
