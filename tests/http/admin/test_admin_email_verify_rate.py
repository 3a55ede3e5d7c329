"""An admin's change of a user's address draws on the address's `email-verify-rate` bucket,
not on the user's: past it the change is saved, unverified, and no mail is queued."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from ports.jobs import SendEmailVerification
from ports.queue import Job
from tests.http.admin.adminapp import AdminWorld, seed_roles
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.test_email_verify_rate_limit import BURST, PER_HOUR, Tick, patch
from tests.http.vm_helpers import build

VICTIM = "victim@example.org"


@pytest.fixture
async def limited() -> AsyncIterator[tuple[AdminWorld, Tick]]:
    """The admin world with the default `email-verify-rate` on a hand-moved clock."""
    api = build()
    tick = Tick()
    limiter = MemoryRateLimiter(PER_HOUR / 60, BURST, now=tick)
    api.services = attrs.evolve(api.services, email_verify_limiter=limiter)
    api.app[SERVICES] = api.services
    role_ids = await seed_roles(api)
    async with api_client(api) as user_client:
        app = build_admin_app(api.services)
        async with TestClient(TestServer(app)) as client:
            yield AdminWorld(api, user_client, ApiClient(client, api), role_ids), tick


async def _jobs(world: AdminWorld) -> list[Job]:
    return [d.job for d in await world.api.queue.receive(100, 0)]


async def test_an_admin_is_held_to_the_address_limit_not_the_users(
    limited: tuple[AdminWorld, Tick],
) -> None:
    world, tick = limited
    await patch(world.user, "alice@example.com")
    user_id = await world.user.user_id(ALICE)
    for _ in range(BURST + 2):  # the user's own bucket: empty after these
        await patch(world.user, "alice@example.com")
    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)] * BURST

    # not the user's bucket: the admin's fix is mailed
    await world.ok("PATCH", f"/users/{user_id}", json={"email": "alice@example.org"})
    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)]

    for i in range(BURST + 2):  # the address's bucket is, whoever asks
        await world.ok("PATCH", f"/users/{user_id}", json={"email": VICTIM, "billing_name": f"{i}"})
    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)] * BURST
    info = (await world.ok("GET", f"/users/{user_id}"))["data"]
    assert (info["email"], info["email_verified"], info["billing_name"]) == (VICTIM, False, "4")

    tick.value += 60 * 60 / PER_HOUR  # one token back in the address's bucket
    await world.ok("PATCH", f"/users/{user_id}", json={"email": VICTIM})
    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)]
