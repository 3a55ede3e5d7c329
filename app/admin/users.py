"""Admin user update (api.md §9.1) and role assignment/revocation (§9.2)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from app.account.profile import check_country, check_email, email_hash, with_email_to_verify
from app.account.verify_mail_limit import verification_mail_wait
from app.admin.role_guard import (
    SELF_GRANT,
    SUPER_ADMIN_ROLE_ID,
    SelfGrantRefused,
    SelfRevokeRefused,
    SuperAdmins,
    check_a_super_admin_left,
    check_end_date_leaves_one,
    check_grantable,
    check_role_changeable,
    grantable_by,
    lock_super_admins,
)
from app.billing.errors import NotFound, UserNotFound
from app.billing.price_in_force import cancel_quietly, expire_user_quotes
from app.billing.rails import PaymentRails
from domain.errors import InvalidInput, found
from domain.model import AdminRole, RoleAssignment, RolePermission, SubscriptionPayment, User
from domain.own_account import TAX_DETAILS_EDIT, refuse_own, user_edit_moves_tax
from domain.tax import country_alpha3
from domain.text_rules import check_line
from ports.clock import Clock
from ports.jobs import SendEmailVerification
from ports.queue import WorkQueue
from ports.ratelimit import RateLimiter
from ports.storage import Page, Permission, UnitOfWork, UnitOfWorkFactory

ROLE_NAME_LIMIT = 50

#: fields an admin may set; `null` (None here) leaves a field unchanged (api.md §9.1).
TEXT_FIELDS = (
    "billing_name",
    "billing_address_1",
    "billing_address_2",
    "billing_city",
    "billing_state",
    "billing_postcode",
    "billing_tax_id",
)
#: `billing_vat_validated`: the operator checked the EU VAT id (reverse charge, issue 13)
BOOL_FIELDS = ("contact_nip17", "contact_email", "billing_vat_validated")


@attrs.frozen
class UserSummary:
    """A user with the counts AdminUserInfo shows: non-deleted VMs and any live role."""

    user: User
    vm_count: int
    is_admin: bool


async def list_users(
    uow_factory: UnitOfWorkFactory, clock: Clock, limit: int, offset: int
) -> Page[UserSummary]:
    """A page of every user, ascending id (api.md §9.1 without `search`); the page's VM
    counts and admin flags in one query each, whatever its size."""
    now = clock.now()
    async with uow_factory() as uow:
        page = await uow.users.list_page(limit, offset)
        ids = [u.id for u in page.items]
        counts = await uow.lookups.vm_counts(ids)
        admins = await uow.lookups.admins(ids, now)
    out = [
        UserSummary(user=u, vm_count=counts.get(u.id, 0), is_admin=u.id in admins)
        for u in page.items
    ]
    return Page(out, page.total)


async def update_user(
    uow_factory: UnitOfWorkFactory,
    user_id: int,
    changes: Mapping[str, Any],
    *,
    clock: Clock,
    rails: PaymentRails | None,
    queue: WorkQueue,
    mail_limiter: RateLimiter | None = None,
) -> User:
    """Set the given fields; `country_code` is stored as alpha-3 (`""` clears it, an unknown
    code is a 400). A new country changes the tax every quote of the user charged: their
    pending renewal quotes are expired in the same transaction and cancelled at their
    provider after it (D23). A new `email` is unverified until the user follows the link
    mailed to it (`with_email_to_verify`, as for the user's own change); the reference kept
    it verified, so notices went to an address nobody had shown they read. The same address
    sent again while still unverified is mailed again, within `mail_limiter`'s bucket for
    the address (`UserChanges.after_commit`)."""
    async with uow_factory() as uow:
        changed = await apply_user_changes(uow, user_id, changes, clock.now())
        await uow.commit()
    await changed.after_commit(rails, queue, mail_limiter)
    return changed.user


@attrs.frozen
class UserChanges:
    """What `apply_user_changes` did: the user as updated, the quotes a new country (or VAT
    validation) expired, and whether an address waits for its verification mail."""

    user: User
    expired: list[SubscriptionPayment]
    verify_email: bool

    async def after_commit(
        self, rails: PaymentRails | None, queue: WorkQueue, mail_limiter: RateLimiter | None
    ) -> None:
        """Cancel the expired quotes at their provider; queue the verification mail if the
        address's bucket of `mail_limiter` allows (`verification_mail_wait`).

        An admin's change skips the per-user bucket (it is not the user asking, and an
        operator fixing an address should not be held back by the user's own attempts) but
        not the address's: a shared admin key, or a compromised one, is still no mail bomb.
        Past it the change stays saved and unverified; saving the address again later mails.
        """
        await cancel_quietly(rails, self.expired)
        if not self.verify_email or not self.user.email:
            return
        address = email_hash(self.user.email)
        if await verification_mail_wait(mail_limiter, self.user.id, address, per_user=False):
            return
        await queue.send(SendEmailVerification(user_id=self.user.id))


async def apply_user_changes(
    uow: UnitOfWork,
    user_id: int,
    changes: Mapping[str, Any],
    now: datetime,
    *,
    by_user_id: int | None = None,
) -> UserChanges:
    """`update_user` inside the caller's transaction; the caller runs
    `UserChanges.after_commit` once it has committed. The user's row is read under its lock
    (`Users.get_for_update`): the user's own change or a verification click of the old
    address running at the same time waits, or is waited for, instead of one writing the
    other's row back over it.

    An admin (`by_user_id`) editing their own user is refused (`OwnAccountRefused`, 403,
    nothing changed) a change of the tax their quotes charge that the user's own edit could
    not make (`user_edit_moves_tax`: validating their own VAT id is zero VAT on every own
    quote), judged on the locked row."""
    fields: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    email = check_email(str(fields.pop("email"))) if "email" in fields else None
    if "country_code" in fields:
        fields["country_code"] = check_country(str(fields["country_code"]))
    user = found(await uow.users.get_for_update(user_id), UserNotFound("User not found"))
    pending = None if email is None else with_email_to_verify(user, email)
    updated = attrs.evolve(pending or user, **fields)
    if by_user_id == user_id and user_edit_moves_tax(user, updated):
        refuse_own(by_user_id, {user_id}, TAX_DETAILS_EDIT)
    await uow.users.update(updated)
    expired: list[SubscriptionPayment] = []
    if country_alpha3(updated.country_code) != country_alpha3(user.country_code) or (
        updated.billing_vat_validated != user.billing_vat_validated  # reverse charge: no tax
    ):
        expired = await expire_user_quotes(uow, user.id, now)
    return UserChanges(updated, expired, verify_email=pending is not None)


async def user_by_email(uow_factory: UnitOfWorkFactory, email: str) -> User:
    """The user whose stored address hashes like `email` (trimmed, lower-cased; §9.1)."""
    if not email.strip():
        raise InvalidInput("email is required")
    async with uow_factory() as uow:
        user = await uow.users.get_by_email_hash(email_hash(email))
    return found(user, UserNotFound("User not found"))


async def create_role(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    name: str,
    description: str | None,
    permissions: Sequence[Permission],
    caller: Collection[Permission],
    by_user_id: int,
) -> AdminRole:
    """The role and its permissions in one transaction (the reference was not atomic); the
    name is one line of at most 50 characters (`admin_roles.name`), unique (409).

    Only permissions the caller (`by_user_id`, holding `caller` live) holds without an end
    date may be put in it (403, `grantable_by`): a role given to an accomplice must not
    carry on a grant that was for a day. A new role has no holder, and nobody may assign a
    role to themselves (`SelfGrantRefused`), so it cannot be one's own in one step."""
    check_line(name, "name", ROLE_NAME_LIMIT)
    now = clock.now()
    async with uow_factory() as uow:
        check_grantable(await grantable_by(uow, caller, by_user_id), permissions)
        role = await uow.roles.add_role(
            AdminRole(
                id=0,
                name=name,
                description=description,
                created_at=now,
                updated_at=now,
            )
        )
        for resource, action in dict.fromkeys(permissions):
            await uow.roles.add_permission(
                RolePermission(
                    id=0,
                    role_id=role.id,
                    resource=resource,
                    action=action,
                    created_at=now,
                )
            )
        await uow.commit()
    return role


class RoleNotFound(NotFound):
    pass


async def assign_role(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    user_id: int,
    role_id: int,
    assigned_by: int,
    expires_at: datetime | None,
    caller: Collection[Permission],
) -> RoleAssignment:
    """Assign (or re-date) a role; `expires_at` is stored (the reference ignored it). An
    unknown role is a 404 (the SQL foreign key raised IntegrityError, a 500).

    Refused, changing nothing: an `expires_at` not in the future (400: expiring a role is
    revoking it), a role with a permission the caller lacks, or holds only until sooner
    than `expires_at` (403, `grantable_by`: a day-long grant is not given on for longer),
    a super admin putting
    an end date on their own super_admin role (422, as revoking it is), and any other
    assignment to the caller themselves (403, `SelfGrantRefused`): re-dated by its holder, a
    role given for a day would last for ever.
    """
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at must be in the future")
    async with uow_factory() as uow:
        admins = (
            await lock_super_admins(uow, now) if role_id == SUPER_ADMIN_ROLE_ID else SuperAdmins()
        )
        if await uow.users.get(user_id) is None:
            raise UserNotFound("User not found")
        if await uow.roles.get_role(role_id) is None:
            raise RoleNotFound("Role not found")
        if user_id == assigned_by and expires_at is not None and user_id in admins.live:
            raise SelfRevokeRefused(
                "Super admins cannot put an end date on their own super_admin role"
            )
        if user_id == assigned_by:
            raise SelfGrantRefused(SELF_GRANT)
        grantable = await grantable_by(uow, caller, assigned_by, until=expires_at)
        await check_role_changeable(uow, grantable, role_id, doing="grant")
        if expires_at is not None:
            check_end_date_leaves_one(admins, user_id)
        assignment = await uow.roles.assign(
            RoleAssignment(
                id=0,
                user_id=user_id,
                role_id=role_id,
                assigned_at=now,
                assigned_by=assigned_by,
                expires_at=expires_at,
            )
        )
        await uow.commit()
    return assignment


async def revoke_role(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    user_id: int,
    role_id: int,
    by_user_id: int,
    caller: Collection[Permission],
) -> None:
    """Take the role from the user. Refused, changing nothing: their own super_admin (422),
    no such assignment (404), a role with a permission the caller lacks (403: a user manager
    cannot demote a super admin), and the last live super_admin assignment (422)."""
    if user_id == by_user_id and role_id == SUPER_ADMIN_ROLE_ID:
        raise SelfRevokeRefused("Super admins cannot revoke their own super_admin role")
    async with uow_factory() as uow:
        admins = (
            await lock_super_admins(uow, clock.now())
            if role_id == SUPER_ADMIN_ROLE_ID
            else SuperAdmins()
        )
        if not any(a.role_id == role_id for a in await uow.roles.assignments_of(user_id)):
            raise NotFound("Role assignment not found")
        await check_role_changeable(uow, caller, role_id, doing="revoke")
        check_a_super_admin_left(admins, user_id, keeps=role_id != SUPER_ADMIN_ROLE_ID)
        await uow.roles.revoke(user_id, role_id)
        await uow.commit()
