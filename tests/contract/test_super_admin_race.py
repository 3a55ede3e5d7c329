"""Super admins taking super_admin from each other at once keep one, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory.clock import FakeClock
from adapters.queue.memory import InProcessQueue
from app.admin.role_changes import update_user_and_role
from app.admin.role_guard import SUPER_ADMIN_ROLE_ID, LastSuperAdminRefused
from app.admin.users import revoke_role
from domain.enums import AdminAction, AdminResource
from domain.model import AdminRole, RoleAssignment, RolePermission, User
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables
from tests.contract.storage_backends import Backend, at

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend

RACERS = 4
EVERYTHING = frozenset((r, a) for r in AdminResource for a in AdminAction)


async def _super_admins(backend: Backend) -> list[int]:
    """RACERS users holding super_admin (role id 1, as in production) without an end date."""
    if backend.engine is not None:
        await empty_tables(backend.engine, backend.kind)  # ids restart at 1
    async with backend.factory() as uow:
        roles = [
            await uow.roles.add_role(
                AdminRole(id=0, name=name, is_system_role=True, created_at=at(1), updated_at=at(1))
            )
            for name in ("super_admin", "read_only")
        ]
        assert roles[0].id == SUPER_ADMIN_ROLE_ID
        for resource, action in sorted(EVERYTHING):
            await uow.roles.add_permission(
                RolePermission(
                    id=0, role_id=roles[0].id, resource=resource, action=action, created_at=at(1)
                )
            )
        ids = []
        for n in range(RACERS):
            user = await uow.users.add(User(id=0, pubkey=bytes([0x60 + n]) * 32, created=at(1)))
            await uow.roles.assign(
                RoleAssignment(id=0, user_id=user.id, role_id=roles[0].id, assigned_at=at(1))
            )
            ids.append(user.id)
        await uow.commit()
    return ids


async def _live_super_admins(factory: UnitOfWorkFactory) -> frozenset[int]:
    async with factory() as uow:
        return frozenset(await uow.roles.lock_holders(SUPER_ADMIN_ROLE_ID, at(2)))


@pytest.mark.parametrize("how", ["revoke", "replace"])
async def test_super_admins_removing_each_other_at_once_leave_exactly_one(
    backend: Backend, how: str
) -> None:
    """Each super admin takes super_admin from the next one, all at once. Without the role's
    lock every transaction counted RACERS live holders and all of them committed: nobody was
    left. Run one after the other, the last one finds its target is the only holder."""
    admins = await _super_admins(backend)
    clock = FakeClock(at(2))

    async def remove(by: int, target: int) -> None:
        if how == "revoke":
            await revoke_role(
                backend.factory,
                clock,
                user_id=target,
                role_id=SUPER_ADMIN_ROLE_ID,
                by_user_id=by,
                caller=EVERYTHING,
            )
        else:
            await update_user_and_role(
                backend.factory,
                clock,
                user_id=target,
                changes={},
                admin_role="read_only",
                by_user_id=by,
                caller=EVERYTHING,
                queue=InProcessQueue(),
            )

    pairs = zip(admins, admins[1:] + admins[:1], strict=True)
    results = await asyncio.gather(*(remove(a, b) for a, b in pairs), return_exceptions=True)
    refused = [r for r in results if isinstance(r, LastSuperAdminRefused)]
    assert (results.count(None), len(refused)) == (RACERS - 1, 1), results
    assert len(await _live_super_admins(backend.factory)) == 1
