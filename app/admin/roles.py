"""Admin roles (api.md §9.2): roles with their permissions, a user's role assignments, and
granting/revoking by Nostr key for `lnvps admin`."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.errors import NotFound, UserNotFound
from domain.errors import DomainError
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
            if (
                live_at is not None
                and assignment.expires_at is not None
                and (assignment.expires_at <= live_at)
            ):
                continue
            role = await uow.roles.get_role(assignment.role_id)
            if role is not None:  # the FK cascades; a missing role is a concurrent delete
                out.append(UserRole(await _info(uow, role), assignment))
        return out


class UnknownRole(DomainError):
    """A role name that no role carries (the CLI's `admin grant/revoke`)."""

    kind = "bad_input"


@attrs.frozen
class Assignment:
    """An assignment with its user's key and its role's name, for `lnvps admin list`."""

    pubkey: bytes
    role_name: str
    assignment: RoleAssignment


async def _role_named(uow: UnitOfWork, name: str) -> AdminRole:
    roles = (await uow.roles.list_roles(10_000, 0)).items
    for role in roles:
        if role.name == name:
            return role
    known = ", ".join(sorted(r.name for r in roles)) or "none"
    raise UnknownRole(f"unknown role {name!r} (roles: {known})")


async def grant_role(
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    *,
    pubkey: bytes,
    role_name: str,
    expires_at: datetime | None,
) -> tuple[RoleAssignment, bool]:
    """Give the user with this key the role (the user row is created if unknown).

    Idempotent: granting again only re-dates the expiry. Returns the assignment and whether
    it is new. Assigned by nobody (`assigned_by` null): the operator at the console.
    """
    async with uow_factory() as uow:
        role = await _role_named(uow, role_name)
        user = await uow.users.get_or_create_by_pubkey(pubkey, now)
        had = any(a.role_id == role.id for a in await uow.roles.assignments_of(user.id))
        assignment = await uow.roles.assign(
            RoleAssignment(
                id=0,
                user_id=user.id,
                role_id=role.id,
                assigned_at=now,
                expires_at=expires_at,
            )
        )
        await uow.commit()
    return assignment, not had


async def revoke_role_of(uow_factory: UnitOfWorkFactory, *, pubkey: bytes, role_name: str) -> bool:
    """Take the role from the user with this key; False when they did not hold it (or the
    key is unknown: no user row is created)."""
    async with uow_factory() as uow:
        role = await _role_named(uow, role_name)
        user = await uow.users.get_by_pubkey(pubkey)
        if user is None or not await uow.roles.revoke(user.id, role.id):
            return False
        await uow.commit()
    return True


async def list_assignments(uow_factory: UnitOfWorkFactory) -> list[Assignment]:
    """Every assignment, expired ones included, ascending id."""
    async with uow_factory() as uow:
        out: list[Assignment] = []
        names: dict[int, str] = {}
        for a in await uow.roles.all_assignments():
            user = await uow.users.get(a.user_id)
            if a.role_id not in names:
                role = await uow.roles.get_role(a.role_id)
                names[a.role_id] = role.name if role else f"#{a.role_id}"
            if user is not None:
                out.append(Assignment(user.pubkey, names[a.role_id], a))
        return out
