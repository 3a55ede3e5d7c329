"""domain.clear_text: which host API URLs would carry a token in clear."""

from __future__ import annotations

import attrs
import pytest

from domain.clear_text import clear_text_proxmox, clear_text_url
from domain.enums import VmHostKind
from tests.contract.test_vmhost import info


@pytest.mark.parametrize(
    ("url", "clear"),
    [
        ("https://pve1:8006", False),
        ("HTTPS://10.0.0.1:8006", False),
        ("http://127.0.0.1:8006", False),
        ("http://127.8.0.1", False),
        ("http://[::1]:8006", False),
        ("http://[::1%25lo]:8006", False),
        ("http://localhost:8006", False),
        (" http://LOCALHOST:8006 ", False),
        ("http://[::1", False),  # not a URL: refused where it is used, not as clear text
        ("http://10.0.0.1:8006", True),
        ("http://", True),
        ("HTTP://pve1.example:8006", True),
        ("http://localhost.attacker.example", True),
        ("http://[2001:db8::1]:8006", True),
        ("http://[fe80::1%25eth0]:8006", True),
    ],
)
def test_clear_text_urls(url: str, clear: bool) -> None:
    assert clear_text_url(url) is clear


@pytest.mark.parametrize(
    ("kind", "url", "clear"),
    [
        (VmHostKind.PROXMOX, "http://10.0.0.1:8006", True),
        (VmHostKind.PROXMOX, "https://10.0.0.1:8006", False),
        (VmHostKind.PROXMOX, "http://127.0.0.1:8006", False),
        (VmHostKind.LIBVIRT, "http://10.0.0.1:8006", False),
    ],
)
def test_only_a_proxmox_row_is_judged_by_its_url(kind: VmHostKind, url: str, clear: bool) -> None:
    host = attrs.evolve(info(1).host, kind=kind, ip=url)
    assert clear_text_proxmox(host) is clear
