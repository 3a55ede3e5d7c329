"""An admin's change of a user's e-mail address resets its verification, as the user's own does;
the same address sent again keeps it, and mails it again while it is unverified."""

from __future__ import annotations

import attrs

from domain.model import User
from ports.jobs import SendEmailVerification
from ports.queue import Job
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import order
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
OLD = "alice@example.com"


async def _jobs(world: AdminWorld) -> list[Job]:
    return [d.job for d in await world.api.queue.receive(100, 0)]


async def _stored(world: AdminWorld, user_id: int) -> User:
    async with world.api.store() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


async def _verified_user(world: AdminWorld) -> int:
    """ALICE, with `OLD` verified (her link followed, the token spent), no job left queued."""
    await order(world.user, ALICE)
    user_id = await world.user.user_id(ALICE)
    async with world.api.store() as uow:
        user = await uow.users.get(user_id)
        assert user is not None
        await uow.users.update(
            attrs.evolve(user, email=OLD, email_verified=True, email_verify_token="")
        )
        await uow.commit()
    await _jobs(world)
    return user_id


async def test_an_admin_changing_the_address_resets_its_verification(world: AdminWorld) -> None:
    """Unverified, with a fresh token whose link is mailed (SendEmailVerification), so notices
    do not go to an address nobody has shown they read; following the link verifies it."""
    user_id = await _verified_user(world)
    body = {"email": " bob@example.org ", "billing_name": "A"}
    assert await world.ok("PATCH", f"/users/{user_id}", json=body) == {"data": None}

    info = (await world.ok("GET", f"/users/{user_id}"))["data"]
    assert (info["email"], info["email_verified"]) == ("bob@example.org", False)
    user = await _stored(world, user_id)
    assert user.email_verify_token and user.email_verify_token.startswith(f"{user_id:016x}")
    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)]

    path = f"/api/v1/account/verify-email?token={user.email_verify_token}"
    page = await world.user.call("GET", path, signed=False)
    assert "Email Verified" in await page.text()
    assert (await _stored(world, user_id)).email_verified


async def test_an_admin_sending_the_same_address_keeps_it_verified(world: AdminWorld) -> None:
    """An admin client echoing the address with other changes (trimmed, it is the same one)."""
    user_id = await _verified_user(world)
    body = {"email": f" {OLD} ", "billing_name": "A"}
    assert await world.ok("PATCH", f"/users/{user_id}", json=body) == {"data": None}

    user = await _stored(world, user_id)
    assert (user.email, user.email_verified, user.email_verify_token) == (OLD, True, "")
    assert user.billing_name == "A"
    assert await _jobs(world) == []


async def test_an_admin_sending_the_same_unverified_address_mails_it_again(
    world: AdminWorld,
) -> None:
    """The mail queued after the first change may have been lost (the queue down after the
    commit): sending the address again queues it anew, for the token already pending."""
    user_id = await _verified_user(world)
    await world.ok("PATCH", f"/users/{user_id}", json={"email": "bob@example.org"})
    await _jobs(world)
    pending = (await _stored(world, user_id)).email_verify_token

    await world.ok("PATCH", f"/users/{user_id}", json={"email": "bob@example.org"})

    assert await _jobs(world) == [SendEmailVerification(user_id=user_id)]
    user = await _stored(world, user_id)
    assert (user.email, user.email_verified, user.email_verify_token) == (
        "bob@example.org",
        False,
        pending,
    )
