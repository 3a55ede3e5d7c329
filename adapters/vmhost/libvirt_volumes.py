"""Writing bytes into libvirt storage volumes (seed ISOs, OS images) over a libvirt stream."""

from __future__ import annotations

import logging
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

import libvirt

from ports.vmhost import VmHostError

log = logging.getLogger(__name__)

#: bytes per `virStream.send`
CHUNK = 1024 * 1024


def is_test_driver(conn: Any) -> bool:
    """`test:///…`: a mock hypervisor that keeps no volume data (and cannot upload)."""
    return str(conn.getType()).upper() == "TEST"


def raw_volume_xml(name: str, capacity: int, fmt: str = "raw") -> str:
    """A volume of `capacity` bytes in `fmt` (`raw` for an ISO, or an image's own format)."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=fmt)
    return ET.tostring(vol, encoding="unicode")


def upload(conn: Any, volume: Any, chunks: Iterable[bytes], size: int) -> None:
    """Send `size` bytes into `volume` from the start; a failure aborts the stream.

    The test driver has no volume contents and no upload: there the volume stays as created
    (logged). Any other driver refusing the upload raises.
    """
    stream = conn.newStream(0)
    try:
        volume.upload(stream, 0, size, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT and is_test_driver(conn):
            log.info("test driver: contents of volume %s not uploaded", volume.name())
            return
        raise
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                sent = stream.send(bytes(view))
                if sent < 0:
                    raise VmHostError(f"libvirt stream refused data ({sent})", transient=True)
                view = view[sent:]
        stream.finish()
    except BaseException:
        try:
            stream.abort()
        except libvirt.libvirtError as exc:
            log.debug("aborting the upload stream: %s", exc)
        raise


def write_volume(
    conn: Any, pool: Any, name: str, chunks: Iterable[bytes], size: int, fmt: str = "raw"
) -> Any:
    """Create volume `name` of `size` bytes (replacing one of that name) and upload into it;
    a failed upload deletes the new volume again.

    An image file is written as it is into a `raw` volume of its size: after the upload
    libvirt probes the file and sees its real format (a qcow2 image becomes a qcow2 volume).
    """
    old = lookup_volume(pool, name)
    if old is not None:
        old.delete(0)
    volume = pool.createXML(raw_volume_xml(name, size, fmt), 0)
    try:
        upload(conn, volume, chunks, size)
    except BaseException:
        delete_volume(volume)
        raise
    return volume


def store_image(conn: Any, pool: Any, name: str, chunks: Iterable[bytes], size: int) -> bool:
    """Upload an OS image into the pool as volume `name`; False when another download stored
    it first.

    The bytes go into a volume of this upload's own (`<name>.part-<hex>`) that is copied to
    `name` only once the upload finished: an upload cut off midway (a dropped link, a killed
    worker) never leaves a truncated volume under the image's name, which every later
    create would clone, and two downloads of one image never delete each other's upload.
    The upload volume is deleted afterwards; one left behind by a dead link is only logged.
    """
    part = write_volume(conn, pool, f"{name}.part-{secrets.token_hex(4)}", chunks, size)
    try:
        return copy_volume(pool, part, name)
    finally:
        try:
            delete_volume(part)
        except libvirt.libvirtError as exc:
            log.warning("upload volume %s left in the pool: %s", part.name(), exc)


def copy_volume(pool: Any, source: Any, name: str) -> bool:
    """Copy `source` into a new volume `name` of its size and format, within libvirtd (which
    deletes a copy that fails); False when a volume `name` exists already."""
    capacity = int(source.info()[1])
    found = ET.fromstring(str(source.XMLDesc(0))).find("target/format")
    fmt = found.get("type", "raw") if found is not None else "raw"
    try:
        pool.createXMLFrom(raw_volume_xml(name, capacity, fmt), source, 0)
    except libvirt.libvirtError as exc:
        refused = exc.get_error_code() in _EXISTS_CODES
        if refused and lookup_volume(pool, name) is not None:
            log.info("volume %s was stored meanwhile by another call", name)
            return False
        raise
    return True


#: how a volume create refuses an existing name (the test driver says "operation failed")
_EXISTS_CODES = {libvirt.VIR_ERR_STORAGE_VOL_EXIST, libvirt.VIR_ERR_OPERATION_FAILED}


def lookup_volume(pool: Any, name: str) -> Any:
    """The volume of that name in the pool, None when there is none."""
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def delete_volume(volume: Any) -> None:
    """Delete a volume; None or one already gone is fine."""
    if volume is None:
        return
    try:
        volume.delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
