"""Reading roles, their permissions and assignments, and paging through users."""

from __future__ import annotations

import pytest

from domain.enums import AdminAction, AdminResource
from domain.errors import RoleNameTaken
from domain.model import AdminRole, RoleAssignment, RolePermission, User
from ports.storage import Page, UnitOfWork, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


async def _role(uow: UnitOfWork, name: str, *, system: bool = False) -> AdminRole:
    return await uow.roles.add_role(
        AdminRole(
            id=0,
            name=name,
            description=f"{name} role" if system else None,
            is_system_role=system,
            created_at=at(1),
            updated_at=at(2),
        )
    )


async def _grant(
    uow: UnitOfWork, role: AdminRole, resource: AdminResource, action: AdminAction
) -> RolePermission:
    return await uow.roles.add_permission(
        RolePermission(id=0, role_id=role.id, resource=resource, action=action, created_at=at(1))
    )


async def _user(uow: UnitOfWork, n: int) -> User:
    return await uow.users.add(User(id=0, pubkey=bytes([n]) * 32, created=at(n)))


async def test_roles_list_system_roles_first_then_by_name_in_pages(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        zeta = await _role(uow, "zeta")
        admin = await _role(uow, "admin", system=True)
        alpha = await _role(uow, "alpha")
        super_admin = await _role(uow, "super_admin", system=True)
        await uow.commit()
    async with uow_factory() as uow:
        everything = await uow.roles.list_roles(10, 0)
        assert everything.items == [admin, super_admin, alpha, zeta]
        assert everything.total == 4
        middle = await uow.roles.list_roles(2, 1)
        assert (middle.items, middle.total) == ([super_admin, alpha], 4)
        assert (await uow.roles.list_roles(10, 4)).items == []
        assert await uow.roles.get_role(alpha.id) == alpha
        assert await uow.roles.get_role(admin.id) == admin
        assert await uow.roles.get_role(super_admin.id + 1000) is None


async def test_permissions_of_a_role_are_only_its_own_in_resource_action_order(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        ops, other, empty = [await _role(uow, n) for n in ("ops", "other", "empty")]
        later = await _grant(uow, ops, AdminResource.ROLES, AdminAction.VIEW)
        first = await _grant(uow, ops, AdminResource.USERS, AdminAction.UPDATE)
        second = await _grant(uow, ops, AdminResource.ROLES, AdminAction.CREATE)
        await _grant(uow, other, AdminResource.USERS, AdminAction.VIEW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.roles.permissions_of_role(ops.id) == [first, second, later]
        assert await uow.roles.permissions_of_role(empty.id) == []
        assert await uow.roles.permissions_of_role(ops.id + 1000) == []


async def test_assignments_of_a_user_include_expired_ones_and_roles_count_their_users(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        ann, bob, cid = [await _user(uow, n) for n in (1, 2, 3)]
        viewer, editor = await _role(uow, "viewer"), await _role(uow, "editor")
        expired = await uow.roles.assign(
            RoleAssignment(
                id=0,
                user_id=ann.id,
                role_id=viewer.id,
                assigned_at=at(1),
                assigned_by=bob.id,
                expires_at=at(3),
            )
        )
        live = await uow.roles.assign(
            RoleAssignment(id=0, user_id=ann.id, role_id=editor.id, assigned_at=at(2))
        )
        await uow.roles.assign(
            RoleAssignment(id=0, user_id=bob.id, role_id=viewer.id, assigned_at=at(2))
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.roles.assignments_of(ann.id) == [expired, live]
        assert await uow.roles.assignments_of(cid.id) == []
        assert [(a.user_id, a.role_id) for a in await uow.roles.all_assignments()] == [
            (ann.id, viewer.id),
            (ann.id, editor.id),
            (bob.id, viewer.id),
        ]
        assert (await uow.roles.all_assignments())[:2] == [expired, live]
        assert await uow.roles.user_count(viewer.id) == 2
        assert await uow.roles.user_count(editor.id) == 1
        assert await uow.roles.revoke(bob.id, viewer.id)
        assert await uow.roles.user_count(viewer.id) == 1
        assert await uow.roles.user_count(editor.id + 1000) == 0


async def test_lock_holders_are_the_users_with_an_unexpired_assignment_and_its_end(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        ann, bob, cid = [await _user(uow, n) for n in (1, 2, 3)]
        viewer, editor = await _role(uow, "viewer"), await _role(uow, "editor")
        for user, role, ends in ((ann, viewer, None), (bob, viewer, at(3)), (cid, editor, None)):
            await uow.roles.assign(
                RoleAssignment(
                    id=0, user_id=user.id, role_id=role.id, assigned_at=at(1), expires_at=ends
                )
            )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.roles.lock_holders(viewer.id, at(2)) == {ann.id: None, bob.id: at(3)}
    async with uow_factory() as uow:
        assert await uow.roles.lock_holders(viewer.id, at(3)) == {ann.id: None}  # ends at 3
        assert await uow.roles.lock_holders(editor.id, at(3)) == {cid.id: None}
        assert await uow.roles.lock_holders(editor.id + 1000, at(3)) == {}


async def test_users_page_in_id_order_with_the_total(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.users.list_page(10, 0) == Page([], 0)
        users = [await _user(uow, n) for n in (5, 3, 4, 1)]
        await uow.commit()
    async with uow_factory() as uow:
        page = await uow.users.list_page(2, 1)
        assert (page.items, page.total) == (users[1:3], 4)
        assert (await uow.users.list_page(10, 0)).items == users
        assert (await uow.users.list_page(10, 4)).items == []


async def test_a_second_role_of_the_same_name_is_refused_and_the_transaction_goes_on(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """`admin_roles.name` is unique: SQL backends raised IntegrityError (a 500), memory stored
    the duplicate."""
    async with uow_factory() as uow:
        first = await _role(uow, "ops")
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(RoleNameTaken):
            await _role(uow, "ops")
        other = await _role(uow, "billing")
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.roles.list_roles(10, 0)).items == [other, first]
