"""Unit of work contract: nothing is kept unless committed, and failures leave no partial rows."""

from __future__ import annotations

import pytest

from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, new_subscription, seed_world

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


class Boom(Exception):
    pass


async def test_committed_rows_are_visible_to_the_next_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.vms.get(world.vm.id) == world.vm
        assert await uow.subscriptions.get(world.subscription.id) == world.subscription


async def test_leaving_without_commit_rolls_everything_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        world = await seed_world(uow)
    async with uow_factory() as uow:
        assert await uow.users.get_by_pubkey(world.user.pubkey) is None
        assert await uow.companies.list_all() == []


async def test_a_failure_after_adding_a_subscription_leaves_no_partial_rows(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            sub, _ = await uow.subscriptions.add_with_line_items(
                new_subscription(world.user.id, world.company.id), []
            )
            assert await uow.subscriptions.get(sub.id) == sub  # visible inside
            raise Boom
    async with uow_factory() as uow:
        page = await uow.subscriptions.list_by_user(world.user.id, limit=10)
        assert [s.id for s in page.items] == [world.subscription.id]


async def test_explicit_rollback_discards_and_the_unit_of_work_goes_on(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
        await uow.vms.delete(world.vm.id)
        await uow.rollback()
        vm = await uow.vms.get(world.vm.id)
        assert vm is not None and not vm.deleted
        await uow.vms.delete(world.vm.id)
        await uow.commit()
    async with uow_factory() as uow:
        vm = await uow.vms.get(world.vm.id)
        assert vm is not None and vm.deleted


async def test_writes_after_commit_are_rolled_back_unless_committed_again(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
        await uow.vms.delete(world.vm.id)
    async with uow_factory() as uow:
        vm = await uow.vms.get(world.vm.id)
        assert vm is not None and not vm.deleted


async def test_sql_backends_share_one_transaction_across_repositories(backend: Backend) -> None:
    if backend.engine is None:
        pytest.skip("SQL only")
    async with backend.factory() as uow:
        world = await seed_world(uow)
        # a second connection does not see uncommitted rows
        async with backend.factory() as other:
            assert await other.vms.get(world.vm.id) is None
