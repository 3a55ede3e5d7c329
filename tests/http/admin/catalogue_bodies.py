"""Valid create bodies of the admin catalogue resources over the demo catalogue (tests)."""

from __future__ import annotations

from typing import Any

from tests.http.demo_catalogue import Demo

GIB = 1024**3


def company() -> dict[str, Any]:
    return {"name": "  Acme Hosting  ", "city": " Dublin ", "tax_id": "", "base_currency": "usd"}


def region(demo: Demo) -> dict[str, Any]:
    return {"name": "Paris", "enabled": True, "company_id": demo.company}


def host(demo: Demo) -> dict[str, Any]:
    return {
        "name": "par1",
        "ip": "https://10.0.9.1:8006",
        "api_token": "PVEAPIToken=root@pam!x=s3cr3t",
        "region_id": demo.region,
        "kind": "proxmox",
        "cpu": 32,
        "memory": 128 * GIB,
        "load_cpu": 2.5,
        "cpu_mfg": "amd",
        "cpu_features": ["AVX2", "AES"],
        "ssh_user": "root",
        "ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
    }


def disk() -> dict[str, Any]:
    return {"name": "nvme2", "size": 1000 * GIB, "kind": "ssd", "interface": "pcie"}


def cost_plan() -> dict[str, Any]:
    return {
        "name": " Small ",
        "amount": 500,
        "currency": "eur",
        "interval_amount": 1,
        "interval_type": "month",
    }


def template(demo: Demo, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Medium",
        "cpu": 2,
        "memory": 4 * GIB,
        "disk_size": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "region_id": demo.region,
        "cost_plan_id": demo.tiny_plan,
        **extra,
    }


def pricing(demo: Demo) -> dict[str, Any]:
    return {
        "name": "Paris custom",
        "region_id": demo.region,
        "currency": "EUR",
        "cpu_cost": 150,
        "memory_cost": 60,
        "ip4_cost": 250,
        "ip6_cost": 5,
        "min_cpu": 1,
        "max_cpu": 16,
        "min_memory": GIB,
        "max_memory": 64 * GIB,
        "disk_pricing": [
            {
                "kind": "ssd",
                "interface": "pcie",
                "cost": 4,
                "min_disk_size": 10 * GIB,
                "max_disk_size": 500 * GIB,
            }
        ],
        "network_mbps": 1000,
        "cpu_limit": 0.5,
    }


def image() -> dict[str, Any]:
    return {
        "distribution": "fedora",
        "flavour": "Cloud",
        "version": "40",
        "enabled": True,
        "release_date": "2024-04-23T00:00:00Z",
        "url": "https://img/fedora40.qcow2",
    }


def space() -> dict[str, Any]:
    return {
        "cidr": "203.0.113.0/24",
        "min_prefix_size": 24,
        "max_prefix_size": 24,
        "registry": 1,
        "external_id": " ripe-1 ",
        "metadata": {"asn": 64500},
    }


def space_price() -> dict[str, Any]:
    return {"prefix_size": 24, "price_per_month": 5000, "currency": "eur"}
