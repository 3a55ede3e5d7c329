"""Per-user caps on what costs nothing to ask for: SSH keys (listed unpaged) and never-paid
IP-range subscriptions; every backend."""

from __future__ import annotations

from app.account.ssh_keys import MAX_SSH_KEYS
from domain.model import SshKey
from tests.http.apiapp import ALICE, BOB, ApiClient
from tests.http.backend_apps import backend, c, database
from tests.http.vm_helpers import ssh_public_key

__all__ = ["backend", "c", "database"]


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
