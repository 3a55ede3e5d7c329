"""A user's e-mail address changed by an admin, by the user, and verified by its link at the same
time, on memory, SQLite and MariaDB: each change waits for the user's row lock, so none writes
the row back over another's; a verification mail lost after the commit is sent on a repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from adapters.memory.clock import FakeClock
from app.account.profile import (
    AccountPatch,
    VerifyOutcome,
    new_verify_token,
    update_account,
    verify_email,
)
from app.admin.users import update_user
from domain.model import User
from ports.jobs import SendEmailVerification
from ports.queue import Job
from ports.storage import UnitOfWorkFactory
from tests.contract.lock_waits import until
from tests.contract.storage_backends import Backend, at, backend, database
from tests.unit.billing.fakes import RecordingQueue

__all__ = ["backend", "database"]

OLD = "old@example.com"
NEW = "new@example.org"
PUBLIC_URL = "https://api.lnvps.test"
#: the longest a racer may take to reach the lock the other holds (it never waits this long)
REACH_S = 5.0


class _FailingQueue(RecordingQueue):
    """The queue down: every send fails, after the caller committed."""

    async def send(self, job: Job) -> str:
        raise ConnectionError("queue unreachable")


async def _user_with_old_address(backend: Backend) -> tuple[int, str]:
    """A user whose address `OLD` waits for verification: (user id, the pending token)."""
    async with backend.factory() as uow:
        user = await uow.users.get_or_create_by_pubkey(b"\x31" * 32, at(1))
        token = new_verify_token(user.id)
        await uow.users.update(
            User(
                id=user.id,
                pubkey=user.pubkey,
                created=user.created,
                email=OLD,
                email_verified=False,
                email_verify_token=token,
            )
        )
        await uow.commit()
    return user.id, token


async def _stored(backend: Backend, user_id: int) -> User:
    async with backend.factory() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


class _HeldUsers:
    """`uow.users` whose first call, once answered, holds the unit of work until `release`."""

    def __init__(self, inner: Any, holding: asyncio.Event, release: asyncio.Event) -> None:
        self._inner, self._holding, self._release = inner, holding, release

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def held(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            if not self._holding.is_set():
                self._holding.set()
                await self._release.wait()
            return result

        return held


def _held(
    factory: UnitOfWorkFactory, holding: asyncio.Event, release: asyncio.Event
) -> UnitOfWorkFactory:
    """`factory` whose unit of work stops after its first user read (or lock) until
    `release`: the moment a read-modify-write of the user's row is most exposed."""

    class Held:
        def __init__(self) -> None:
            self._uow = factory()

        async def __aenter__(self) -> Any:
            await self._uow.__aenter__()
            return self

        async def __aexit__(self, *exc: Any) -> Any:
            return await self._uow.__aexit__(*exc)

        @property
        def users(self) -> Any:
            return _HeldUsers(self._uow.users, holding, release)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._uow, name)

    return Held


async def _waits_or_ends(backend: Backend, racer: asyncio.Task[Any]) -> None:
    """Until `racer` waits for the lock the held side has, or has ended (no lock to wait
    for: the bug); neither within `lock_waits.DEADLINE_S` fails the test."""
    await until(
        "the racer waits for the held lock", lambda w: w > 0 or racer.done(), backend.factory
    )


async def _first_holds_second_runs(
    backend: Backend,
    first: Callable[[UnitOfWorkFactory], Coroutine[Any, Any, Any]],
    second: Callable[[UnitOfWorkFactory], Coroutine[Any, Any, Any]],
) -> tuple[Any, Any]:
    """`first` held after its first user read while `second` runs into it (waits for its
    lock, or, without one, goes through), then `first` goes on: both results."""
    holding, release = asyncio.Event(), asyncio.Event()
    one = asyncio.create_task(first(_held(backend.factory, holding, release)))
    await asyncio.wait_for(holding.wait(), REACH_S)
    two = asyncio.create_task(second(backend.factory))
    await _waits_or_ends(backend, two)
    release.set()
    return await asyncio.wait_for(one, REACH_S), await asyncio.wait_for(two, REACH_S)


def _admin_sets(user_id: int, changes: dict[str, Any], queue: RecordingQueue) -> Any:
    async def run(factory: UnitOfWorkFactory) -> User:
        return await update_user(
            factory, user_id, changes, clock=FakeClock(at(2)), rails=None, queue=queue
        )

    return run


def _user_sets(user_id: int, email: str, queue: RecordingQueue) -> Any:
    async def run(factory: UnitOfWorkFactory) -> Any:
        patch = AccountPatch(contact_nip17=True, contact_email=False, email=email)
        return await update_account(
            factory, FakeClock(at(2)), queue, user_id, patch, public_url=PUBLIC_URL
        )

    return run


def _change(changer: str, user_id: int, email: str, queue: RecordingQueue) -> Any:
    """The address set to `email` by an admin (`PATCH /users/{id}`) or the user (`PATCH
    /account`)."""
    if changer == "admin":
        return _admin_sets(user_id, {"email": email}, queue)
    return _user_sets(user_id, email, queue)


def _clicks(token: str) -> Any:
    async def run(factory: UnitOfWorkFactory) -> VerifyOutcome:
        return await verify_email(factory, token)

    return run


async def _pending_new_address(backend: Backend, user_id: int, old_token: str) -> User:
    """The stored user has `NEW`, unverified, with a token of its own (not the old link's)."""
    user = await _stored(backend, user_id)
    assert (user.email, user.email_verified) == (NEW, False)
    assert user.email_verify_token != old_token
    assert user.email_verify_token.startswith(f"{user_id:016x}")
    return user


@pytest.mark.parametrize("changer", ["admin", "user"])
async def test_a_change_waiting_for_a_verification_of_the_old_address_survives_it(
    backend: Backend, changer: str
) -> None:
    """The old address's link is followed and, between its read and its write, the address is
    changed. Before, the click wrote back the row it had read: the old address, verified,
    and the change was lost. Now the change waits for the click's lock, then reads the
    verified old address and replaces it."""
    user_id, old_token = await _user_with_old_address(backend)
    queue = RecordingQueue()
    change = _change(changer, user_id, NEW, queue)

    clicked, _ = await _first_holds_second_runs(backend, _clicks(old_token), change)

    assert clicked is VerifyOutcome.VERIFIED  # the old address, verified before the change
    await _pending_new_address(backend, user_id, old_token)
    assert queue.sent == [SendEmailVerification(user_id=user_id)]


@pytest.mark.parametrize("changer", ["admin", "user"])
async def test_a_verification_of_the_old_address_waiting_for_a_change_is_refused(
    backend: Backend, changer: str
) -> None:
    """The change holds the user's lock; the click waits, then finds the new token and answers
    the stale link as any unknown one (INVALID), changing nothing."""
    user_id, old_token = await _user_with_old_address(backend)
    queue = RecordingQueue()
    change = _change(changer, user_id, NEW, queue)

    _, clicked = await _first_holds_second_runs(backend, change, _clicks(old_token))

    assert clicked is VerifyOutcome.INVALID
    await _pending_new_address(backend, user_id, old_token)


async def test_two_admin_edits_at_once_both_stay(backend: Backend) -> None:
    """One admin changes the address while another sets the billing name: the second waits
    for the first's lock and keeps its new address (before, it wrote the old one back)."""
    user_id, old_token = await _user_with_old_address(backend)
    queue = RecordingQueue()

    await _first_holds_second_runs(
        backend,
        _admin_sets(user_id, {"email": NEW}, queue),
        _admin_sets(user_id, {"billing_name": "B"}, queue),
    )

    user = await _pending_new_address(backend, user_id, old_token)
    assert user.billing_name == "B"


async def test_the_user_changing_the_address_while_an_admin_edits_keeps_both(
    backend: Backend,
) -> None:
    user_id, old_token = await _user_with_old_address(backend)
    queue = RecordingQueue()

    await _first_holds_second_runs(
        backend, _user_sets(user_id, NEW, queue), _admin_sets(user_id, {"billing_name": "B"}, queue)
    )

    user = await _pending_new_address(backend, user_id, old_token)
    assert user.billing_name == "B"


@pytest.mark.parametrize("changer", ["admin", "user"])
async def test_a_verification_mail_lost_after_the_commit_is_sent_on_a_repeat(
    backend: Backend, changer: str
) -> None:
    """The queue is down after the change committed: the address is stored, its mail never
    queued. Sending the same address again queues the mail, for the token already stored
    (the link of any earlier mail stays good). A verified address sent again mails nothing."""
    user_id, old_token = await _user_with_old_address(backend)

    with pytest.raises(ConnectionError):
        await _change(changer, user_id, NEW, _FailingQueue())(backend.factory)
    stored = await _pending_new_address(backend, user_id, old_token)

    queue = RecordingQueue()
    await _change(changer, user_id, f" {NEW} ", queue)(backend.factory)
    assert queue.sent == [SendEmailVerification(user_id=user_id)]
    assert await _pending_new_address(backend, user_id, old_token) == stored

    assert await verify_email(backend.factory, stored.email_verify_token) is VerifyOutcome.VERIFIED
    queue.sent.clear()
    await _change(changer, user_id, NEW, queue)(backend.factory)
    assert queue.sent == []
    assert (await _stored(backend, user_id)).email_verified
