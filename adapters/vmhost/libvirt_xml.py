"""libvirt XML documents for LNVPS VMs: the domain definition, disk volumes, uptime metadata."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import attrs

from domain.enums import DiskInterface, DiskType

#: Namespace of the element LNVPS keeps in a running domain's live metadata.
METADATA_NS = "https://lnvps.net/xmlns/libvirt/1"
METADATA_KEY = "lnvps"

_VM_NAME = re.compile(r"^vm([1-9][0-9]*)$")

#: bus, target device, needs a virtio-scsi controller
_BUSES: dict[DiskInterface, tuple[str, str, bool]] = {
    DiskInterface.PCIE: ("virtio", "vda", False),
    DiskInterface.SCSI: ("scsi", "sda", True),
    DiskInterface.SATA: ("sata", "sda", False),
}


def domain_name(vm_id: int) -> str:
    """The libvirt domain name of database VM `vm_id`."""
    return f"vm{vm_id}"


def vm_id_of(name: str) -> int | None:
    """The database VM id of a domain named `vm<id>`, None for any other domain."""
    match = _VM_NAME.match(name)
    return int(match.group(1)) if match else None


def disk_volume_name(vm_id: int) -> str:
    """The storage volume holding VM `vm_id`'s primary disk."""
    return f"vm{vm_id}-disk0"


def seed_volume_name(vm_id: int) -> str:
    """The storage volume holding VM `vm_id`'s cloud-init NoCloud seed ISO."""
    return f"vm{vm_id}-cidata.iso"


def image_volume_name(url: str) -> str:
    """The volume an OS image is stored as in the pool: the last segment of its URL."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"Cannot derive an image volume name from {url!r}")
    return name


@attrs.frozen(kw_only=True)
class DomainSpec:
    """What a domain is built from; memory in bytes."""

    vm_id: int
    vcpus: int
    memory: int
    mac: str
    pool: str
    volume: str
    network: str
    disk_interface: DiskInterface = DiskInterface.PCIE
    disk_kind: DiskType = DiskType.SSD
    domain_type: str = "kvm"
    machine: str = "q35"
    #: volume of the cloud-init seed ISO, attached as a read-only SATA CD-ROM (None: none)
    seed_volume: str | None = None


def disk_target(interface: DiskInterface) -> str:
    """The guest device name of the primary disk on this bus (`vda` or `sda`)."""
    return _BUSES[interface][1]


def domain_xml(spec: DomainSpec) -> str:
    """A persistent domain: the volume as its disk (and the seed ISO as a CD-ROM when given),
    one NIC on `network`, serial console.

    Memory is given in KiB (libvirt rounds bytes to KiB anyway); the VM boots from the disk.
    """
    bus, target, scsi = _BUSES[spec.disk_interface]
    dom = ET.Element("domain", type=spec.domain_type)
    _text(dom, "name", domain_name(spec.vm_id))
    _text(dom, "title", f"LNVPS VM {spec.vm_id}")
    kib = str(spec.memory // 1024)
    _text(dom, "memory", kib, unit="KiB")
    _text(dom, "currentMemory", kib, unit="KiB")
    _text(dom, "vcpu", str(spec.vcpus), placement="static")
    os_el = ET.SubElement(dom, "os")
    _text(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    ET.SubElement(os_el, "boot", dev="hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    ET.SubElement(dom, "cpu", mode="host-passthrough")
    ET.SubElement(dom, "clock", offset="utc")
    _text(dom, "on_poweroff", "destroy")
    _text(dom, "on_reboot", "restart")
    _text(dom, "on_crash", "destroy")
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="volume", device="disk")
    driver = {"name": "qemu", "type": "qcow2"}
    if spec.disk_kind is DiskType.SSD:
        driver["discard"] = "unmap"
    ET.SubElement(disk, "driver", driver)
    ET.SubElement(disk, "source", pool=spec.pool, volume=spec.volume)
    ET.SubElement(disk, "target", dev=target, bus=bus)
    if spec.seed_volume is not None:
        cdrom = ET.SubElement(devices, "disk", type="volume", device="cdrom")
        ET.SubElement(cdrom, "driver", name="qemu", type="raw")
        ET.SubElement(cdrom, "source", pool=spec.pool, volume=spec.seed_volume)
        ET.SubElement(cdrom, "target", dev="sdb" if target == "sda" else "sda", bus="sata")
        ET.SubElement(cdrom, "readonly")
    if scsi:
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "mac", address=spec.mac)
    ET.SubElement(nic, "source", network=spec.network)
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(devices, "console", type="pty")
    return ET.tostring(dom, encoding="unicode")


def built_from(xml: str, spec: DomainSpec) -> bool:
    """Whether a domain's (inactive) XML is what `domain_xml(spec)` defines, in what a build
    sets: name, memory, vcpus, the disk and seed volumes, one NIC with the MAC on the network."""
    try:
        dom = ET.fromstring(xml)
    except ET.ParseError:
        return False
    memory = dom.find("memory")
    seed = None if spec.seed_volume is None else (spec.pool, spec.seed_volume)
    return (
        dom.findtext("name") == domain_name(spec.vm_id)
        and memory is not None
        and memory.get("unit", "KiB") == "KiB"
        and (memory.text or "").strip() == str(spec.memory // 1024)
        and (dom.findtext("vcpu") or "").strip() == str(spec.vcpus)
        and _volume_sources(dom, "disk") == [(spec.pool, spec.volume)]
        and _volume_sources(dom, "cdrom") == ([] if seed is None else [seed])
        and _nics(dom) == [(spec.mac.lower(), spec.network)]
    )


def _volume_sources(dom: ET.Element, device: str) -> list[tuple[str | None, str | None]]:
    """(pool, volume) of each disk of kind `device` (`disk`, `cdrom`)."""
    return [
        (source.get("pool"), source.get("volume"))
        for disk in dom.findall("devices/disk")
        if disk.get("device", "disk") == device
        for source in disk.findall("source")
    ]


def _nics(dom: ET.Element) -> list[tuple[str, str | None]]:
    """(MAC in lower case, network) of each network interface."""
    found = []
    for nic in dom.findall("devices/interface"):
        mac, source = nic.find("mac"), nic.find("source")
        address = "" if mac is None else mac.get("address", "").lower()
        found.append((address, None if source is None else source.get("network")))
    return found


def volume_xml(name: str, capacity: int) -> str:
    """A thin (allocation 0) qcow2 volume of `capacity` bytes."""
    vol = ET.Element("volume")
    _text(vol, "name", name)
    _text(vol, "capacity", str(capacity), unit="bytes")
    _text(vol, "allocation", "0", unit="bytes")
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type="qcow2")
    return ET.tostring(vol, encoding="unicode")


def started_metadata(unix_s: int) -> str:
    """The live-metadata element recording when LNVPS last (re)started the domain."""
    return ET.tostring(ET.Element("started", at=str(unix_s)), encoding="unicode")


def parse_started(xml: str) -> int | None:
    """The start time recorded by `started_metadata`, None when missing or malformed."""
    try:
        at = ET.fromstring(xml).get("at")
        return int(at) if at is not None else None
    except (ET.ParseError, ValueError):
        return None


def device_targets(xml: str) -> tuple[list[str], list[str]]:
    """Target device names of a (live) domain's network interfaces and disks."""
    try:
        devices = ET.fromstring(xml).find("devices")
    except ET.ParseError:
        return [], []
    if devices is None:
        return [], []
    nics = [t.get("dev", "") for t in devices.findall("interface/target")]
    disks = [
        t.get("dev", "")
        for d in devices.findall("disk")
        if d.get("device", "disk") == "disk"
        for t in d.findall("target")
    ]
    return [n for n in nics if n], [d for d in disks if d]


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    el.text = text
    return el
