"""A Proxmox row's API token never travels in clear, and never shows in a config's repr."""

from __future__ import annotations

import attrs
import pytest

from adapters.vmhost.proxmox import config_for_host
from adapters.vmhost.proxmox_api import ProxmoxConfig
from domain.enums import VmHostKind
from domain.unreadable import Unreadable
from ports.vmhost import VmHostError
from tests.contract.test_vmhost import info

SECRET = "root@pam!lnvps=5f1e2d3c-dead-beef"


def test_the_client_refuses_a_stored_row_over_plain_http() -> None:
    row = attrs.evolve(
        info(1).host, kind=VmHostKind.PROXMOX, ip="http://10.0.0.1:8006", api_token=SECRET
    )
    with pytest.raises(VmHostError, match="over http://") as caught:
        config_for_host(row)
    assert caught.value.transient is False and SECRET not in caught.value.message


def test_the_token_is_not_in_the_repr() -> None:
    config = ProxmoxConfig(base_url="https://pve1:8006", node="pve1", token=SECRET)
    assert SECRET not in repr(config) and "pve1" in repr(config)


def test_a_token_that_cannot_be_decrypted_is_a_fatal_error_naming_the_host() -> None:
    row = attrs.evolve(info(1).host, kind=VmHostKind.PROXMOX, api_token=Unreadable("ENC:x"))
    with pytest.raises(VmHostError, match="API token cannot be decrypted") as caught:
        config_for_host(row)
    assert caught.value.transient is False and f"host {row.id}" in caught.value.message
