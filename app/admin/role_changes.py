"""Editing and deleting roles (api.md §9.2) and setting a user's role by name (§9.1)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import attrs

from app.admin.role_guard import (
    SELF_GRANT,
    SUPER_ADMIN_ROLE_ID,
    SelfGrantRefused,
    SelfRevokeRefused,
    SuperAdmins,
    check_a_super_admin_left,
    check_grantable,
    check_not_own_role,
    check_role_changeable,
    grantable_by,
    lock_super_admins,
)
from app.admin.roles import RoleNotFound
from app.admin.users import apply_user_changes
from app.billing.errors import UserNotFound
from app.billing.rails import PaymentRails
from domain.errors import DomainError, InvalidInput
from domain.model import AdminRole, RoleAssignment
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.ratelimit import RateLimiter
from ports.storage import Permission, UnitOfWork, UnitOfWorkFactory


class SystemRoleRefused(DomainError):
    """A change to a seeded system role (422)."""


class RoleInUse(DomainError):
    """Deleting a role some user still holds (422)."""


class RoleNameTaken(DomainError):
    kind = "conflict"


#: `admin_roles.name` is VARCHAR(50)
MAX_ROLE_NAME = 50


def check_role_name(name: str) -> None:
    if not name.strip():
        raise InvalidInput("Role name cannot be empty")
    if len(name.strip()) > MAX_ROLE_NAME:
        raise InvalidInput(f"Role name is longer than {MAX_ROLE_NAME} characters")


async def _role(uow: UnitOfWork, role_id: int) -> AdminRole:
    role = await uow.roles.get_role(role_id)
    if role is None:
        raise RoleNotFound("Role not found")
    return role


async def _role_named(uow: UnitOfWork, name: str) -> AdminRole | None:
    offset = 0
    while True:
        page = await uow.roles.list_roles(100, offset)
        for role in page.items:
            if role.name == name:
                return role
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return None


async def check_name_free(uow_factory: UnitOfWorkFactory, name: str) -> None:
    """409 when a role already has this name (the unique index would make it a 500)."""
    async with uow_factory() as uow:
        if await _role_named(uow, name) is not None:
            raise RoleNameTaken(f"A role named {name!r} already exists")


async def update_role(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    role_id: int,
    name: str | None,
    description: str | None,
    permissions: list[Permission] | None,
    caller: Collection[Permission],
    by_user_id: int,
) -> None:
    """Rename, re-describe and/or replace the whole permission set, in one transaction.

    A permission set is changed only by a caller (`by_user_id`, holding `caller` live)
    holding every permission it keeps and every one it takes away (403 otherwise): taking a
    permission from a role takes it from each of its holders, which revoking the role itself
    would need too. What it adds the caller must hold without an end date (`grantable_by`),
    and never to a role they hold themselves (`check_not_own_role`, 403): otherwise a role
    given for a day is made permanent by copying its permissions into a lasting one."""
    if name is not None:
        check_role_name(name)
    if permissions is not None:
        check_grantable(caller, permissions)
    now = clock.now()
    async with uow_factory() as uow:
        role = await _role(uow, role_id)
        if role.is_system_role:
            raise SystemRoleRefused("Cannot modify system roles")
        if name is not None:
            name = name.strip()
            other = await _role_named(uow, name)
            if other is not None and other.id != role.id:
                raise RoleNameTaken(f"A role named {name!r} already exists")
        changed = attrs.evolve(
            role,
            name=role.name if name is None else name,
            description=role.description if description is None else description,
            updated_at=now,
        )
        if permissions is not None:
            had = {(p.resource, p.action) for p in await uow.roles.permissions_of_role(role.id)}
            added = set(permissions) - had
            check_grantable(await grantable_by(uow, caller, by_user_id), added)
            await check_not_own_role(uow, by_user_id, role.id, added, now)
            check_grantable(caller, had - set(permissions), doing="take away")
        await uow.roles.update_role(changed)
        if permissions is not None:
            await uow.roles.set_permissions(role.id, permissions, now)
        await uow.commit()


async def delete_role(uow_factory: UnitOfWorkFactory, role_id: int) -> None:
    async with uow_factory() as uow:
        role = await _role(uow, role_id)
        if role.is_system_role:
            raise SystemRoleRefused("Cannot delete system roles")
        holders = await uow.roles.user_count(role.id)
        if holders:
            raise RoleInUse(
                f"Cannot delete role with {holders} assigned users. "
                "Remove all user assignments first."
            )
        await uow.roles.delete_role(role.id)
        await uow.commit()


async def update_user_and_role(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    user_id: int,
    changes: Mapping[str, Any],
    admin_role: str | None,
    by_user_id: int,
    caller: Collection[Permission],
    queue: WorkQueue,
    rails: PaymentRails | None = None,
    mail_limiter: RateLimiter | None = None,
) -> None:
    """The user's fields and, with `admin_role`, their roles: every assignment revoked, then
    the named role assigned (api.md §9.1), all in one transaction. A new country expires the
    user's pending quotes there, cancelled at their provider after the commit (D23); a new
    e-mail address is unverified and its verification mail queued after it, within the
    address's bucket of `mail_limiter` (`apply_user_changes`, `UserChanges.after_commit`).

    Refused, changing nothing: an unknown role name (400); a new role, or a role the user
    loses, with a permission the caller lacks (403: a user manager cannot demote a super
    admin); a super admin dropping their own super_admin role (422, as revoking it is);
    naming for oneself a role one does not hold live (403, `_replace_roles`); taking
    super_admin from its last live holder (422); and, on one's own user, validating the VAT
    id or changing a validated one's VAT id or country (403, `apply_user_changes`).
    """
    now = clock.now()
    async with uow_factory() as uow:
        admins = await lock_super_admins(uow, now) if admin_role is not None else SuperAdmins()
        # the user's lock before the first plain read (`apply_user_changes` reads under it)
        if await uow.users.get_for_update(user_id) is None:
            raise UserNotFound("User not found")
        if admin_role is not None:
            await _replace_roles(uow, now, user_id, admin_role, by_user_id, caller, admins)
        changed = await apply_user_changes(uow, user_id, changes, now, by_user_id=by_user_id)
        await uow.commit()
    await changed.after_commit(rails, queue, mail_limiter)


def _live(assignment: RoleAssignment, now: datetime) -> bool:
    return assignment.expires_at is None or assignment.expires_at > now


async def _replace_roles(
    uow: UnitOfWork,
    now: datetime,
    user_id: int,
    admin_role: str,
    by_user_id: int,
    caller: Collection[Permission],
    super_admins: SuperAdmins,
) -> None:
    """`admin_role` of `update_user_and_role`: the caller must be able to grant the new role
    (a new assignment has no end date: they must hold its permissions without one,
    `grantable_by`) and to revoke every role the user loses, expired ones included.

    A live assignment of the named role is kept as it is, its end date too: the reference
    assigned it afresh without one, so a role given for a day became permanent by a PATCH
    that only named it. An expired or missing one is assigned without an end date (a new
    grant), which nobody may do to themselves (`SelfGrantRefused`, 403); naming the role
    one holds live, as a form that sends the user's current role does, changes nothing."""
    role = await _role_named(uow, admin_role)
    if role is None:
        raise InvalidInput("Invalid admin role specified")
    held = await uow.roles.assignments_of(user_id)
    lost = [a.role_id for a in held if a.role_id != role.id]
    kept = next((a for a in held if a.role_id == role.id and _live(a, now)), None)
    if user_id == by_user_id and SUPER_ADMIN_ROLE_ID in lost:
        raise SelfRevokeRefused("Super admins cannot revoke their own super_admin role")
    if user_id == by_user_id and kept is None:
        raise SelfGrantRefused(SELF_GRANT)
    for role_id in lost:
        await check_role_changeable(uow, caller, role_id, doing="revoke")
    lasting = kept is None or kept.expires_at is None  # held after, without an end date
    check_a_super_admin_left(
        super_admins, user_id, keeps=role.id == SUPER_ADMIN_ROLE_ID and lasting
    )
    # a kept assignment is no new grant; a new one has no end date: held without one
    grantable = caller if kept is not None else await grantable_by(uow, caller, by_user_id)
    await check_role_changeable(uow, grantable, role.id, doing="grant")
    for role_id in lost:
        await uow.roles.revoke(user_id, role_id)
    if kept is None:
        await uow.roles.assign(
            RoleAssignment(
                id=0,
                user_id=user_id,
                role_id=role.id,
                assigned_at=now,
                assigned_by=by_user_id,
            )
        )
