"""Storage ports for people and organisations: users, SSH keys, companies, admin roles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from domain.enums import AdminAction, AdminResource
from domain.model import AdminRole, Company, RoleAssignment, RolePermission, SshKey, User
from ports.storage.common import Catalogue, Page, Records, Removable


class Users(Records[User], Protocol):
    async def get_by_pubkey(self, pubkey: bytes) -> User | None: ...

    async def get_by_email_hash(self, digest: bytes) -> User | None:
        """The user whose `email_hash` is `digest` (SHA-256 of the address): one who verified
        it first, then the lowest id (anyone may type someone else's address, unproven)."""
        ...

    async def list_page(self, limit: int, offset: int) -> Page[User]:
        """A page of every user, ascending id, with the total number of users."""
        ...

    async def get_or_create_by_pubkey(self, pubkey: bytes, now: datetime) -> User:
        """The user with this Nostr key, created (contact_nip17 on, created=now) if new."""
        ...

    async def lock(self, user_id: int) -> None:
        """Hold the user's row lock until the transaction ends.

        Ordering takes it first, so one user's concurrent orders count their never-paid VMs
        one after another (D25) instead of all seeing the same count.
        """
        ...

    async def get_for_update(self, user_id: int) -> User | None:
        """`lock` the user's row and read it as last committed (None: no such user).

        Every read-modify-write of the row (its e-mail address and verification above all)
        goes through it, so an admin's change, the user's own and a verification click run
        one after another instead of the later write putting back what the earlier one
        replaced. The read sees the row as last committed even after the transaction's
        snapshot was fixed (MariaDB's `FOR UPDATE`)."""
        ...


class SshKeys(Protocol):
    async def add(self, key: SshKey) -> SshKey: ...

    async def lock_owner(self, owner_key: bytes) -> tuple[int, int] | None:
        """Lock the user whose public key is `owner_key` to the end of the unit of work and
        count their keys, in one statement (issue 10): (user id, keys held); None when no
        user has it. Concurrent adds of one user's keys so count one after another (the
        cap). Call it first in the unit of work: an earlier read would fix MariaDB's
        snapshot, and the count would miss a key committed while this statement waited.
        The only count of a user's keys: every add of a key goes through it."""
        ...

    async def get(self, key_id: int) -> SshKey | None: ...

    async def list_by_user(self, user_id: int) -> list[SshKey]:
        """The user's keys, ascending id."""
        ...

    async def delete(self, key_id: int) -> bool:
        """Hard delete; True when a row was removed."""
        ...


class Companies(Catalogue[Company], Removable, Protocol):
    pass


Permission = tuple[AdminResource, AdminAction]


class Roles(Protocol):
    async def add_role(self, role: AdminRole) -> AdminRole:
        """Insert a role; a role of the same name raises `RoleNameTaken` (nothing inserted)."""
        ...

    async def add_permission(self, permission: RolePermission) -> RolePermission: ...

    async def assign(self, assignment: RoleAssignment) -> RoleAssignment:
        """Upsert on (user_id, role_id): an existing assignment gets the new expiry."""
        ...

    async def revoke(self, user_id: int, role_id: int) -> bool: ...

    async def lock_holders(self, role_id: int, now: datetime) -> dict[int, datetime | None]:
        """Hold the role's row lock until the transaction ends, then the users whose
        assignment of it is unexpired at `now`, each with its end date (None: it has none),
        as last committed.

        Call it first in the transaction. Two transactions that lock the same role run one
        after the other and the second sees what the first committed, so two super admins
        revoking each other at once cannot both find the other one left.
        """
        ...

    async def permissions_of(self, user_id: int, now: datetime) -> frozenset[Permission]:
        """Union of the permissions of the user's unexpired role assignments."""
        ...

    async def is_admin(self, user_id: int, now: datetime) -> bool:
        """True when the user holds any unexpired role assignment."""
        ...

    async def list_roles(self, limit: int, offset: int) -> Page[AdminRole]:
        """A page of roles: system roles first, then by name ascending (then id)."""
        ...

    async def get_role(self, role_id: int) -> AdminRole | None: ...

    async def permissions_of_role(self, role_id: int) -> list[RolePermission]:
        """The role's permission rows, ascending (resource, action)."""
        ...

    async def assignments_of(self, user_id: int) -> list[RoleAssignment]:
        """Every assignment of the user, expired ones included, ascending id."""
        ...

    async def all_assignments(self) -> list[RoleAssignment]:
        """Every assignment of every user, expired ones included, ascending id."""
        ...

    async def user_count(self, role_id: int) -> int:
        """How many users hold the role (every assignment row, expired ones included)."""
        ...

    async def update_role(self, role: AdminRole) -> None:
        """Overwrite name, description, is_system_role and updated_at of the role's row."""
        ...

    async def set_permissions(
        self, role_id: int, permissions: Sequence[Permission], now: datetime
    ) -> None:
        """Replace the role's whole permission set (duplicates collapse to one row)."""
        ...

    async def delete_role(self, role_id: int) -> bool:
        """Delete the role with its permission rows; True when a role was removed."""
        ...
