"""Verification mails are rate-limited per user and per target address (`email-verify-rate`):
past a bucket the account change is saved, unverified and unmailed, still answered 200."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from domain.model import User
from ports.jobs import SendEmailVerification
from tests.http.apiapp import ALICE, BOB, ApiApp, ApiClient, api_client, build_api_app
from tests.nostr_signing import NostrKey

ACCOUNT = "/api/v1/account"
VICTIM = "victim@example.org"
FRESH: dict[str, Any] = {"contact_nip17": True, "contact_email": False}
BURST = 3
PER_HOUR = 3  # one token every 20 minutes


class Tick:
    """The limiter's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def limited() -> tuple[ApiApp, Tick]:
    """The user app with the default `email-verify-rate` (3 at once, 3 an hour) on `Tick`."""
    api = build_api_app()
    tick = Tick()
    limiter = MemoryRateLimiter(PER_HOUR / 60, BURST, now=tick)
    api.services = attrs.evolve(api.services, email_verify_limiter=limiter)
    api.app[SERVICES] = api.services
    return api, tick


async def mails(c: ApiClient) -> list[SendEmailVerification]:
    return [
        d.job
        for d in await c.api.queue.receive(max_jobs=1000, block_ms=0)
        if isinstance(d.job, SendEmailVerification)
    ]


async def patch(c: ApiClient, email: str, key: NostrKey = ALICE, **fields: Any) -> None:
    resp = await c.call("PATCH", ACCOUNT, key=key, json={**FRESH, **fields, "email": email})
    assert resp.status == 200  # past the limit too: LNVPS clients send the account on every save
    assert await resp.json() == {"data": None}


async def stored(c: ApiClient, key: NostrKey = ALICE) -> User:
    user_id = await c.user_id(key)
    async with c.api.store() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


async def test_one_key_looping_the_patch_queues_only_the_users_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reviewer's first case: 40 PATCHes of one key naming an address it does not own."""
    api, _ = limited()
    async with api_client(api) as c:
        with caplog.at_level(logging.WARNING, logger="lnvps.account"):
            for i in range(40):
                await patch(c, VICTIM, name=f"A{i}")
        assert len(await mails(c)) == BURST
        user = await stored(c)
        assert (user.email, user.email_verified, user.billing_name) == (VICTIM, False, "A39")
        assert "user or address past email-verify-rate" in caplog.text


async def test_many_keys_naming_one_address_queue_only_the_addresss_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reviewer's second case: 40 fresh keys, each within its own bucket, at one victim
    (spelt in different cases: it is the same mailbox)."""
    api, _ = limited()
    async with api_client(api) as c:
        with caplog.at_level(logging.WARNING, logger="lnvps.account"):
            for i in range(40):
                key = NostrKey.from_seed(1000 + i)
                await patch(c, VICTIM.upper() if i % 2 else VICTIM, key=key)
        assert len(await mails(c)) == BURST
        assert "user or address past email-verify-rate" in caplog.text
        # every change was saved, unverified
        assert (await stored(c, NostrKey.from_seed(1039))).email == VICTIM.upper()


async def test_after_the_window_the_same_request_sends_the_mail() -> None:
    """The address stays unverified with its pending token; the refill sends it again."""
    api, tick = limited()
    async with api_client(api) as c:
        for _ in range(BURST + 2):
            await patch(c, VICTIM)
        assert len(await mails(c)) == BURST
        token = (await stored(c)).email_verify_token
        tick.value += 60 * 60 / PER_HOUR - 1  # not quite one token yet
        await patch(c, VICTIM)
        assert await mails(c) == []
        tick.value += 1
        await patch(c, VICTIM)
        assert await mails(c) == [SendEmailVerification(user_id=await c.user_id())]
        assert (await stored(c)).email_verify_token == token  # the link of every mail is good
        await patch(c, VICTIM)
        assert await mails(c) == []


async def test_a_normal_address_change_still_sends_at_once() -> None:
    """A user's first address, then a typo fixed, each mailed at once; another user's change
    is not held back by someone else's flood at a different address."""
    api, _ = limited()
    async with api_client(api) as c:
        await patch(c, "alice@exmaple.com")
        await patch(c, "alice@example.com")
        alice = await c.user_id()
        assert await mails(c) == [SendEmailVerification(user_id=alice)] * 2
        for i in range(10):
            await patch(c, VICTIM, key=NostrKey.from_seed(2000 + i))
        await mails(c)
        await patch(c, "bob@example.com", key=BOB)
        assert await mails(c) == [SendEmailVerification(user_id=await c.user_id(BOB))]


async def test_without_a_limiter_every_request_mails() -> None:
    """`email-verify-rate: {per-hour: 0}`: the operator turned the limit off."""
    async with api_client(build_api_app()) as c:
        for _ in range(BURST + 2):
            await patch(c, VICTIM)
        assert len(await mails(c)) == BURST + 2
