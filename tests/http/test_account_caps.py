"""Per-user caps on what costs nothing to ask for: SSH keys (listed unpaged) and never-paid
IP-range subscriptions; every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from app.account.ssh_keys import MAX_SSH_KEYS
from app.billing.ip_purchase import DEFAULT_MAX_UNPAID_SUBSCRIPTIONS, UNPAID_SUBSCRIPTION_WINDOW
from domain.model import SshKey
from tests.http.apiapp import ALICE, BOB, ApiClient
from tests.http.backend_apps import backend, c, database
from tests.http.vm_helpers import order, ssh_public_key

__all__ = ["backend", "c", "database"]

SUBS = "/api/v1/subscriptions"


async def _keys(c: ApiClient, user_id: int) -> list[SshKey]:
    async with c.api.store() as uow:
        return await uow.ssh_keys.list_by_user(user_id)


async def test_an_account_holds_at_most_the_capped_number_of_ssh_keys(c: ApiClient) -> None:
    user_id = await c.user_id(ALICE)
    async with c.api.store() as uow:
        for n in range(MAX_SSH_KEYS - 1):
            await uow.ssh_keys.add(
                SshKey(
                    id=0,
                    name=f"k{n}",
                    user_id=user_id,
                    created=c.api.clock.now(),
                    key_data=ssh_public_key(n + 10),
                )
            )
        await uow.commit()
    body = {"name": "last", "key_data": ssh_public_key(1)}
    resp = await c.call("POST", "/api/v1/ssh-key", key=ALICE, json=body)
    assert resp.status == 200, await resp.text()
    body = {"name": "one too many", "key_data": ssh_public_key(2)}
    resp = await c.call("POST", "/api/v1/ssh-key", key=ALICE, json=body)
    assert resp.status == 422
    assert await resp.json() == {
        "error": f"An account holds at most {MAX_SSH_KEYS} SSH keys; this one was not added"
    }
    keys = await _keys(c, user_id)
    assert len(keys) == MAX_SSH_KEYS and "one too many" not in {k.name for k in keys}
    listed = await (await c.call("GET", "/api/v1/ssh-key", key=ALICE)).json()
    assert len(listed["data"]) == MAX_SSH_KEYS
    resp = await c.call("POST", "/api/v1/ssh-key", key=BOB, json=body)
    assert resp.status == 200  # another account's own cap


async def _buy(c: ApiClient) -> Any:
    """An IPv6 /48: the cap counts orders, and a few /48s stay within the user's unpaid
    address budget (`max-unpaid-ip-room`), where a second IPv4 /24 would not."""
    body = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip6_tier}]}
    return await c.call("POST", SUBS, key=ALICE, json=body)


async def _subscription_count(c: ApiClient, user_id: int) -> int:
    async with c.api.store() as uow:
        return (await uow.subscriptions.list_by_user(user_id, 100)).total


async def test_never_paid_ip_subscriptions_are_capped_per_user(c: ApiClient) -> None:
    user_id = await c.user_id(ALICE)
    await order(c, ALICE)  # a never-paid VM's subscription is not counted here
    made = []
    for _ in range(DEFAULT_MAX_UNPAID_SUBSCRIPTIONS):
        resp = await _buy(c)
        assert resp.status == 200, await resp.text()
        made.append((await resp.json())["data"]["id"])
    before = await _subscription_count(c, user_id)
    resp = await _buy(c)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error.startswith(
        f"You already have {DEFAULT_MAX_UNPAID_SUBSCRIPTIONS} unpaid subscriptions"
    )
    assert await _subscription_count(c, user_id) == before  # nothing stored
    async with c.api.store() as uow:  # one is paid for: room for one more
        sub = await uow.subscriptions.get(made[0])
        assert sub is not None
        await uow.subscriptions.update(attrs.evolve(sub, is_setup=True, is_active=True))
        await uow.commit()
    assert (await _buy(c)).status == 200
    assert (await _buy(c)).status == 422


async def test_never_paid_ip_subscriptions_stop_counting_after_a_day(c: ApiClient) -> None:
    """Nothing cleans abandoned ones up and a user cannot remove one: counted for ever, a
    few abandoned purchases would block the account for good (they hold no addresses)."""
    for _ in range(DEFAULT_MAX_UNPAID_SUBSCRIPTIONS):
        assert (await _buy(c)).status == 200
    assert (await _buy(c)).status == 422
    c.api.clock.advance(UNPAID_SUBSCRIPTION_WINDOW + timedelta(seconds=1))
    assert (await _buy(c)).status == 200
