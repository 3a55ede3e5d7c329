"""Admin role reading (api.md §9.2): roles with their permissions, a user's role assignments."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.errors import NotFound, UserNotFound
from domain.model import AdminRole, RoleAssignment
from ports.storage import Page, Permission, UnitOfWork, UnitOfWorkFactory


class RoleNotFound(NotFound):
    pass


@attrs.frozen
class RoleInfo:
    """A role, its permissions (ascending resource, action) and how many users hold it."""

    role: AdminRole
    permissions: list[Permission]
    user_count: int


@attrs.frozen
class UserRole:
    """One of a user's assignments with the role it grants."""

    role: RoleInfo
    assignment: RoleAssignment


async def _info(uow: UnitOfWork, role: AdminRole) -> RoleInfo:
    permissions = await uow.roles.permissions_of_role(role.id)
    return RoleInfo(
        role=role,
        permissions=[(p.resource, p.action) for p in permissions],
        user_count=await uow.roles.user_count(role.id),
    )


async def list_roles(uow_factory: UnitOfWorkFactory, limit: int, offset: int) -> Page[RoleInfo]:
    """System roles first, then by name."""
    async with uow_factory() as uow:
        page = await uow.roles.list_roles(limit, offset)
        return Page([await _info(uow, r) for r in page.items], page.total)


async def get_role(uow_factory: UnitOfWorkFactory, role_id: int) -> RoleInfo:
    async with uow_factory() as uow:
        role = await uow.roles.get_role(role_id)
        if role is None:
            raise RoleNotFound("Role not found")
        return await _info(uow, role)


async def roles_of_user(
    uow_factory: UnitOfWorkFactory, user_id: int, *, live_at: datetime | None = None
) -> list[UserRole]:
    """The user's assignments, ascending id; with `live_at`, only those not expired by then.

    Unknown user: UserNotFound.
    """
    async with uow_factory() as uow:
        if await uow.users.get(user_id) is None:
            raise UserNotFound("User not found")
        out: list[UserRole] = []
        for assignment in await uow.roles.assignments_of(user_id):
            if live_at is not None and assignment.expires_at is not None and (
                assignment.expires_at <= live_at
            ):
                continue
            role = await uow.roles.get_role(assignment.role_id)
            if role is not None:  # the FK cascades; a missing role is a concurrent delete
                out.append(UserRole(await _info(uow, role), assignment))
        return out
