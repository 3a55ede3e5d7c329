"""Memory repositories for users, SSH keys, companies and admin roles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.memory.db import RecordRepo, Repo, evolve, page_of
from domain.errors import RoleNameTaken
from domain.model import AdminRole, Company, RoleAssignment, RolePermission, SshKey, User
from ports.storage import Page, Permission


class MemoryUsers(RecordRepo[User]):
    table = "users"

    async def get_by_pubkey(self, pubkey: bytes) -> User | None:
        found = self._where(lambda u: u.pubkey == pubkey)
        return found[0] if found else None

    async def list_page(self, limit: int, offset: int) -> Page[User]:
        return Page(*page_of(self._where(), limit, offset))

    async def get_by_email_hash(self, digest: bytes) -> User | None:
        found = self._where(lambda u: u.email_hash == digest)
        return min(found, key=lambda u: (not u.email_verified, u.id), default=None)

    async def get_or_create_by_pubkey(self, pubkey: bytes, now: datetime) -> User:
        existing = await self.get_by_pubkey(pubkey)
        if existing is not None:
            return existing
        return await self.add(User(id=0, pubkey=pubkey, created=now))

    async def lock(self, user_id: int) -> None:
        """Nothing to do: a memory unit of work already runs alone (one lock for all)."""

    async def get_for_update(self, user_id: int) -> User | None:
        return await self.get(user_id)  # the unit of work's lock already serialises


class MemorySshKeys(RecordRepo[SshKey]):
    table = "user_ssh_key"

    async def lock_owner(self, owner_key: bytes) -> tuple[int, int] | None:
        # the unit of work's lock already serialises
        owners = [u for u in self._rows("users").values() if u.pubkey == owner_key]
        if not owners:
            return None
        held = self._where(lambda k: k.user_id == owners[0].id)
        return owners[0].id, len(held)

    async def list_by_user(self, user_id: int) -> list[SshKey]:
        return self._where(lambda k: k.user_id == user_id)

    async def delete(self, key_id: int) -> bool:
        return self._rows(self.table).pop(key_id, None) is not None


class MemoryCompanies(RecordRepo[Company]):
    table = "company"


class MemoryRoles(Repo):
    async def add_role(self, role: AdminRole) -> AdminRole:
        if any(r.name == role.name for r in self._rows("admin_roles").values()):
            raise RoleNameTaken(f"A role named {role.name!r} exists already")
        return self._insert("admin_roles", role)

    async def add_permission(self, permission: RolePermission) -> RolePermission:
        return self._insert("admin_role_permissions", permission)

    async def assign(self, assignment: RoleAssignment) -> RoleAssignment:
        rows = self._rows("admin_role_assignments")
        for existing in rows.values():
            if (existing.user_id, existing.role_id) == (assignment.user_id, assignment.role_id):
                updated: RoleAssignment = evolve(existing, expires_at=assignment.expires_at)
                rows[existing.id] = updated
                return updated
        return self._insert("admin_role_assignments", assignment)

    async def revoke(self, user_id: int, role_id: int) -> bool:
        rows = self._rows("admin_role_assignments")
        for key, existing in list(rows.items()):
            if (existing.user_id, existing.role_id) == (user_id, role_id):
                del rows[key]
                return True
        return False

    async def lock_holders(self, role_id: int, now: datetime) -> dict[int, datetime | None]:
        """Nothing to lock: a memory unit of work already runs alone (one lock for all)."""
        return {
            a.user_id: a.expires_at
            for a in self._rows("admin_role_assignments").values()
            if a.role_id == role_id and (a.expires_at is None or a.expires_at > now)
        }

    async def permissions_of(self, user_id: int, now: datetime) -> frozenset[Permission]:
        roles = {a.role_id for a in self._live_assignments(user_id, now)}
        return frozenset(
            (p.resource, p.action)
            for p in self._rows("admin_role_permissions").values()
            if p.role_id in roles
        )

    async def is_admin(self, user_id: int, now: datetime) -> bool:
        return bool(self._live_assignments(user_id, now))

    async def list_roles(self, limit: int, offset: int) -> Page[AdminRole]:
        roles: list[AdminRole] = sorted(
            self._rows("admin_roles").values(),
            key=lambda r: (not r.is_system_role, r.name, r.id),
        )
        return Page(*page_of(roles, limit, offset))

    async def get_role(self, role_id: int) -> AdminRole | None:
        found: AdminRole | None = self._rows("admin_roles").get(role_id)
        return found

    async def permissions_of_role(self, role_id: int) -> list[RolePermission]:
        rows = self._rows("admin_role_permissions").values()
        mine: list[RolePermission] = [p for p in rows if p.role_id == role_id]
        return sorted(mine, key=lambda p: (p.resource, p.action, p.id))

    async def assignments_of(self, user_id: int) -> list[RoleAssignment]:
        rows = self._rows("admin_role_assignments")
        return [a for _, a in sorted(rows.items()) if a.user_id == user_id]

    async def all_assignments(self) -> list[RoleAssignment]:
        return [a for _, a in sorted(self._rows("admin_role_assignments").items())]

    async def user_count(self, role_id: int) -> int:
        rows = self._rows("admin_role_assignments").values()
        return sum(1 for a in rows if a.role_id == role_id)

    async def update_role(self, role: AdminRole) -> None:
        rows = self._rows("admin_roles")
        if role.id in rows:
            rows[role.id] = role

    async def set_permissions(
        self, role_id: int, permissions: Sequence[Permission], now: datetime
    ) -> None:
        rows = self._rows("admin_role_permissions")
        for key, p in list(rows.items()):
            if p.role_id == role_id:
                del rows[key]
        for resource, action in dict.fromkeys(permissions):
            self._insert(
                "admin_role_permissions",
                RolePermission(
                    id=0, role_id=role_id, resource=resource, action=action, created_at=now
                ),
            )

    async def delete_role(self, role_id: int) -> bool:
        """The role and its permission rows (the SQL foreign key cascades them)."""
        for table in ("admin_role_permissions", "admin_role_assignments"):
            rows = self._rows(table)
            for key, row in list(rows.items()):
                if row.role_id == role_id:
                    del rows[key]
        return self._rows("admin_roles").pop(role_id, None) is not None

    def _live_assignments(self, user_id: int, now: datetime) -> list[RoleAssignment]:
        return [
            a
            for a in self._rows("admin_role_assignments").values()
            if a.user_id == user_id and (a.expires_at is None or a.expires_at > now)
        ]
