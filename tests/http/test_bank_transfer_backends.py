"""A bank transfer marked received by racing admins is paid once, on every storage backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.http.app import USER_API_ROUTES
from domain.enums import VmHistoryActionType
from tests.contract.storage_backends import Backend
from tests.http.apiapp import ApiClient, api_client, build_api_app
from tests.http.backend_apps import ROOT, admin, backend, database
from tests.http.vm_helpers import order, renew, subscription_of
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "database"]

ALICE = NostrKey.from_seed(21)
ACCOUNT = {"account_name": "LNVPS Ltd", "iban": "IE29AIBK93115212345678"}


@pytest.fixture
async def c(backend: Backend) -> AsyncIterator[ApiClient]:
    api = build_api_app(*USER_API_ROUTES, store=backend.factory, rails=[BankTransferRail(ACCOUNT)])
    async with api_client(api) as client:
        yield client


async def test_racing_admins_complete_a_transfer_once(c: ApiClient, admin: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=bank_transfer")
    reference = payment["data"]["bank_transfer"]["reference"]
    path = f"/api/admin/v1/bank_transfers/{reference}/received"
    answers = await asyncio.gather(*(admin.call("POST", path, key=ROOT) for _ in range(3)))
    assert sorted(r.status for r in answers) == [200, 409, 409]
    async with c.api.store() as uow:
        stored = await uow.payments.get(bytes.fromhex(payment["id"]))
        history = (await uow.vm_history.list_by_vm(vm["id"], 100)).items
    assert stored is not None and stored.is_paid
    assert sum(e.action_type is VmHistoryActionType.RENEWED for e in history) == 1
    sub = await subscription_of(c.api, vm["id"])
    assert sub.expires is not None and stored.time_value is not None
    assert (sub.expires - c.api.clock.now()).total_seconds() == stored.time_value
