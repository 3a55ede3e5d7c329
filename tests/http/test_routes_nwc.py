"""`GET /api/v1/vm/{id}/renew?method=nwc`: the server pays the invoice from the user's wallet."""

from __future__ import annotations

import attrs

from adapters.http.context import SERVICES
from app.billing.credit_balance import adjust_credit
from domain.unreadable import Unreadable
from ports.nwc import NwcAnswerLost, NwcError
from tests.http.apiapp import ALICE, ApiApp, api_client
from tests.http.vm_helpers import build, order, paid_vm, renew, subscription_of

NWC = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss://relay.example&secret=" + "cd" * 32


class FakeWallet:
    """Records what it was asked to pay; `refuse` makes it answer like a broke wallet."""

    def __init__(self, refuse: bool = False) -> None:
        self.paid: list[tuple[str, str]] = []
        self.refuse = refuse

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        if self.refuse:
            raise NwcError("Wallet refused the payment (INSUFFICIENT_BALANCE): not enough sats")
        self.paid.append((connection_string, bolt11))
        return "00" * 32


def _with_wallet(api: ApiApp, wallet: FakeWallet) -> None:
    api.services = attrs.evolve(api.services, nwc_wallet=wallet)
    api.app[SERVICES] = api.services


async def _connect_wallet(api: ApiApp, user_id: int) -> None:
    async with api.store() as uow:
        user = await uow.users.get(user_id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, nwc_connection_string=NWC))
        await uow.commit()


async def test_nwc_pays_the_lightning_invoice_from_the_users_wallet() -> None:
    api, wallet = build(), FakeWallet()
    _with_wallet(api, wallet)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await _connect_wallet(api, await c.user_id(ALICE))
        payment = await renew(c, ALICE, vm["id"], "?method=nwc")
        assert wallet.paid == [(NWC, payment["data"]["lightning"])]
        assert payment["is_paid"] is False  # completed only when the node reports settlement


async def test_a_replayed_wallet_renewal_is_401_and_pays_nothing_more() -> None:
    """A GET event is reusable within its window (D26), but one that pays from the user's
    wallet is good once: a captured header must not renew again and again on their money.
    A plain Lightning renewal's GET without credit stays reusable (it only shows or makes
    an invoice)."""
    api, wallet = build(), FakeWallet()
    _with_wallet(api, wallet)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await _connect_wallet(api, await c.user_id(ALICE))
        path = f"/api/v1/vm/{vm['id']}/renew?method=nwc&intervals=12"
        headers = c.auth(path)
        first = await c.client.get(path, headers=headers)
        assert first.status == 200, await first.text()
        again = await c.client.get(path, headers=headers)
        assert again.status == 401
        assert await again.json() == {"error": "Auth check failed: Event already used"}
        assert len(wallet.paid) == 1
        plain = f"/api/v1/vm/{vm['id']}/renew?method=lightning"
        headers = c.auth(plain)
        for _ in range(2):
            assert (await c.client.get(plain, headers=headers)).status == 200


async def test_a_replayed_renewal_paid_from_account_credit_is_401_and_spends_nothing_more() -> None:
    """The same for a GET renewal the account balance pays: a covered quote is settled at
    once, so each replay of a captured header would buy (and spend) another 12 months; on
    both the VM's and the subscription's renewal routes."""
    async with api_client(build()) as c:
        vm = await paid_vm(c, ALICE)
        sub = await subscription_of(c.api, vm["id"])
        await adjust_credit(
            c.api.store,
            c.api.clock,
            admin_id=await c.user_id(ALICE),
            user_id=await c.user_id(ALICE),
            currency="EUR",
            amount=1_000_000,
            note="test",
        )
        for path in (
            f"/api/v1/vm/{vm['id']}/renew?method=lightning&intervals=12",
            f"/api/v1/subscriptions/{sub.id}/renew?method=lightning&intervals=12",
        ):
            headers = c.auth(path)
            first = await c.client.get(path, headers=headers)
            assert first.status == 200, await first.text()
            assert (await first.json())["data"]["is_paid"] is True  # covered: settled at once
            expires = (await subscription_of(c.api, vm["id"])).expires
            again = await c.client.get(path, headers=headers)
            assert again.status == 401
            assert await again.json() == {"error": "Auth check failed: Event already used"}
            assert (await subscription_of(c.api, vm["id"])).expires == expires


async def test_without_a_wallet_string_nwc_is_a_plain_lightning_invoice() -> None:
    api, wallet = build(), FakeWallet()
    _with_wallet(api, wallet)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        payment = await renew(c, ALICE, vm["id"], "?method=nwc")
        assert payment["data"]["lightning"].startswith("lnbcrt") and wallet.paid == []


async def test_a_refusing_wallet_is_a_422_with_the_wallets_reason() -> None:
    api = build()
    _with_wallet(api, FakeWallet(refuse=True))
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await _connect_wallet(api, await c.user_id(ALICE))
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=nwc")
        assert resp.status == 422
        body = await resp.json()
        assert "not enough sats" in body["error"] and "secret" not in body["error"]


async def test_a_lost_wallet_answer_returns_the_pending_payment_not_an_error() -> None:
    api = build()

    class LostAnswer(FakeWallet):
        async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
            self.paid.append((connection_string, bolt11))
            raise NwcAnswerLost("Wallet did not answer within 60 s")

    wallet = LostAnswer()
    _with_wallet(api, wallet)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        await _connect_wallet(api, await c.user_id(ALICE))
        payment = await renew(c, ALICE, vm["id"], "?method=nwc")
        assert wallet.paid == [(NWC, payment["data"]["lightning"])]
        assert payment["is_paid"] is False


async def test_a_wallet_string_that_cannot_be_decrypted_is_a_422_saying_so() -> None:
    """The user asked for their wallet: they are told it cannot be read (sealed with a lost
    key), not handed an invoice as if they had none; the wallet is not asked."""
    api, wallet = build(), FakeWallet()
    _with_wallet(api, wallet)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        user_id = await c.user_id(ALICE)
        async with api.store() as uow:
            user = await uow.users.get(user_id)
            assert user is not None
            unreadable = Unreadable("ENC:sealed-with-a-lost-key")
            await uow.users.update(attrs.evolve(user, nwc_connection_string=unreadable))
            await uow.commit()
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=nwc")
        assert resp.status == 422
        assert "wallet connection cannot be read" in (await resp.json())["error"]
        assert wallet.paid == []
