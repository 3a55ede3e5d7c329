"""cloud-init NoCloud seed of a VM: user-data, meta-data and network-config on a `cidata` ISO."""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Sequence
from typing import Any

import pycdlib
import yaml

from adapters.vmhost.assigned_ips import assigned_ips
from adapters.vmhost.libvirt_xml import domain_name
from ports.vmhost import FullVmInfo

#: the volume label cloud-init's NoCloud data source looks for
VOLUME_LABEL = "cidata"
#: guest interface name the network config gives the VM's NIC (matched by MAC)
INTERFACE = "eth0"
#: ISO 9660 level-1 names, then the Rock Ridge / Joliet names Linux mounts show
_FILES = (
    ("USERDATA.;1", "user-data"),
    ("METADATA.;1", "meta-data"),
    ("NETCFG.;1", "network-config"),
)


def user_data(info: FullVmInfo) -> str:
    """`#cloud-config`: host name and the VM's SSH key for the image's default user."""
    config: dict[str, Any] = {
        "hostname": domain_name(info.vm.id),
        "preserve_hostname": False,
        "ssh_authorized_keys": [info.authorized_key.strip()],
        "ssh_pwauth": False,
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def meta_data(info: FullVmInfo, instance_tag: str = "") -> str:
    """Instance id (a new one makes cloud-init run again) and the local host name."""
    instance = f"lnvps-{domain_name(info.vm.id)}" + (f"-{instance_tag}" if instance_tag else "")
    return yaml.safe_dump(
        {"instance-id": instance, "local-hostname": domain_name(info.vm.id)}, sort_keys=False
    )


def network_config(info: FullVmInfo, nameservers: Sequence[str] = ()) -> dict[str, Any]:
    """Network config version 2 for the NIC with the VM's MAC: its assigned addresses, a
    default route per family through the range's gateway, router advertisements for SLAAC.

    IPv4 takes the wider of the range's and the gateway's prefixes (as Proxmox's `ipconfig0`);
    a gateway outside the address's network is marked `on-link`.
    """
    addresses: list[str] = []
    routes: list[dict[str, Any]] = []
    slaac = False
    for ip in assigned_ips(info):
        if ip.slaac:
            slaac = True
            continue
        addresses.append(f"{ip.address}/{ip.prefix}")
        default = "0.0.0.0/0" if ip.address.version == 4 else "::/0"
        if not any(r["to"] == default for r in routes):
            route: dict[str, Any] = {"to": default, "via": str(ip.gateway.ip)}
            if ip.gateway.ip not in ipaddress.ip_interface(f"{ip.address}/{ip.prefix}").network:
                route["on-link"] = True  # e.g. a /32 address or a link-local gateway
            routes.append(route)
    nic: dict[str, Any] = {
        "match": {"macaddress": info.vm.mac_address.lower()},
        "set-name": INTERFACE,
        "dhcp4": False,
        "dhcp6": False,
    }
    if slaac:
        nic["accept-ra"] = True
    if addresses:
        nic["addresses"] = addresses
    if routes:
        nic["routes"] = routes
    if nameservers:
        nic["nameservers"] = {"addresses": list(nameservers)}
    return {"version": 2, "ethernets": {INTERFACE: nic}}


def seed_files(
    info: FullVmInfo, nameservers: Sequence[str] = (), instance_tag: str = ""
) -> dict[str, str]:
    """The three NoCloud files by name."""
    return {
        "user-data": user_data(info),
        "meta-data": meta_data(info, instance_tag),
        "network-config": yaml.safe_dump(network_config(info, nameservers), sort_keys=False),
    }


def seed_iso(files: dict[str, str]) -> bytes:
    """An ISO 9660 image labelled `cidata` with Joliet and Rock Ridge names (`cloud-localds`)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for iso_name, name in _FILES:
            data = files[name].encode()
            iso.add_fp(
                io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name, joliet_path=f"/{name}"
            )
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read_seed_iso(data: bytes) -> tuple[str, dict[str, str]]:
    """The volume label and the files (by Rock Ridge name) of a seed ISO: for checks and tests."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for _, name in _FILES:
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
    finally:
        iso.close()
    return label, files
