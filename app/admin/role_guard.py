"""Who may grant, re-date or take away a role assignment, and the last live super admin."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import attrs

from app.admin.permissions import permission_text
from domain.errors import DomainError
from ports.storage import Permission, UnitOfWork

#: role id 1 is the seeded `super_admin` (migration r1 inserts it first).
SUPER_ADMIN_ROLE_ID = 1


class SelfRevokeRefused(DomainError):
    """A super admin removing (or putting an end date on) their own super_admin role (422)."""


class SelfGrantRefused(DomainError):
    """An admin giving a role to themselves, or a new end date (or none) to one they hold
    (403): a role given for a day would otherwise be made permanent by its own holder.
    Another admin, within their own permissions, may do it."""

    kind = "forbidden"


SELF_GRANT = "Admins cannot assign or re-date their own roles: another admin must"
#: a role edit adding permissions to a role the caller holds (`check_not_own_role`)
OWN_ROLE = "Admins cannot add permissions to a role they hold: another admin must"


class LastSuperAdminRefused(DomainError):
    """A change that would leave nobody holding an unexpired super_admin assignment (422):
    nobody could then grant any role again, nor undo it, except at the console."""


class EscalationRefused(DomainError):
    """Granting, re-dating or revoking a role with a permission the caller does not hold (403
    in the HTTP layer).

    Without it anyone with `users::update` could make themselves super admin, anyone with
    `roles::update` could widen a role they hold, and anyone with `users::update` could take
    super_admin away from every super admin: the reference allowed all three.
    """

    kind = "forbidden"


def check_grantable(
    caller: Collection[Permission], granted: Iterable[Permission], *, doing: str = "grant"
) -> None:
    """The caller holds every permission in `granted`; else EscalationRefused naming the
    missing ones. `doing` says what they tried: "grant", "take away" (from a role), "re-date"
    or "revoke"."""
    missing = sorted({p for p in granted if p not in caller})
    if missing:
        names = ", ".join(permission_text(*p) for p in missing)
        if doing == "grant":
            raise EscalationRefused(f"Cannot grant permissions you do not hold: {names}")
        if doing == "take away":
            raise EscalationRefused(f"Cannot take away permissions you do not hold: {names}")
        raise EscalationRefused(f"Cannot {doing} a role with permissions you do not hold: {names}")


async def grantable_by(
    uow: UnitOfWork,
    caller: Collection[Permission],
    user_id: int,
    *,
    until: datetime | None = None,
) -> frozenset[Permission]:
    """What the caller (`user_id`, holding `caller` live) may grant for ever (`until` None),
    or until `until`: what they hold through an assignment without an end date, or through
    one that ends no sooner than `until`.

    A grant never outlives the granter's own hold: a permission given for a day is used for
    that day but not given on, neither copied into a role (one's own or an accomplice's:
    a role has no end date) nor assigned without an end date, or past its own."""
    ends: dict[Permission, datetime | None] = {}
    for assignment in await uow.roles.assignments_of(user_id):
        for row in await uow.roles.permissions_of_role(assignment.role_id):
            key = (row.resource, row.action)
            if key in ends and ends[key] is None:
                continue
            end, known = assignment.expires_at, ends.get(key)
            ends[key] = None if end is None else max(end, known) if known else end
    return frozenset(p for p in caller if p in ends and _covers(ends[p], until))


def _covers(end: datetime | None, until: datetime | None) -> bool:
    """Whether a hold ending at `end` (None: never) covers a grant until `until` (None: for
    ever)."""
    if end is None:
        return True
    return until is not None and until <= end


async def check_not_own_role(
    uow: UnitOfWork, user_id: int, role_id: int, added: Collection[Permission], now: datetime
) -> None:
    """`SelfGrantRefused` (403) when `added` is not empty and the user holds the role live:
    widening one's own role is giving oneself permissions, as assigning oneself a role is."""
    if not added:
        return
    for assignment in await uow.roles.assignments_of(user_id):
        live = assignment.expires_at is None or assignment.expires_at > now
        if assignment.role_id == role_id and live:
            raise SelfGrantRefused(OWN_ROLE)


async def check_role_changeable(
    uow: UnitOfWork, caller: Collection[Permission], role_id: int, *, doing: str
) -> None:
    """A role's assignment may only be given, re-dated or taken by a caller who holds every
    permission the role grants: a user manager cannot demote a super admin."""
    granted = [(p.resource, p.action) for p in await uow.roles.permissions_of_role(role_id)]
    check_grantable(caller, granted, doing=doing)


@attrs.frozen
class SuperAdmins:
    """Who holds super_admin: unexpired now (`live`), and without an end date (`lasting`)."""

    live: frozenset[int] = frozenset()
    lasting: frozenset[int] = frozenset()


async def lock_super_admins(uow: UnitOfWork, now: datetime) -> SuperAdmins:
    """The holders of super_admin, the role's row locked until the transaction ends (call it
    before anything else the transaction reads)."""
    holders = await uow.roles.lock_holders(SUPER_ADMIN_ROLE_ID, now)
    lasting = frozenset(user for user, ends in holders.items() if ends is None)
    return SuperAdmins(frozenset(holders), lasting)


def check_a_super_admin_left(admins: SuperAdmins, user_id: int, *, keeps: bool) -> None:
    """Refuse to take the user's super_admin away when they are its only live holder, or its
    only holder without an end date (the others' end dates would lock everyone out later).

    `admins` come from `lock_super_admins` in the same transaction; `keeps` says whether the
    user still holds it, without an end date, after the change.
    """
    if keeps:
        return
    if user_id in admins.live and admins.live <= {user_id}:
        raise LastSuperAdminRefused(
            "Cannot remove the last super admin: grant super_admin to another user first"
        )
    check_end_date_leaves_one(admins, user_id)


def check_end_date_leaves_one(admins: SuperAdmins, user_id: int) -> None:
    """An end date on the user's super_admin is a revocation that waits: refused when they
    are the only holder without one (two super admins end-dating each other would
    otherwise leave nobody once both dates pass)."""
    if user_id in admins.lasting and admins.lasting <= {user_id}:
        raise LastSuperAdminRefused(
            "Cannot leave super_admin without a holder that has no end date: grant it "
            "without an end date to another user first"
        )
