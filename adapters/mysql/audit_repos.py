"""SQL repository of the admin audit trail (table `admin_audit`, revision r6)."""

from __future__ import annotations

from sqlalchemy import true

from adapters.mysql import tables as t
from adapters.mysql.repositories import SqlRecords
from domain.model import AdminAudit
from ports.storage import Page


class SqlAdminAudits(SqlRecords[AdminAudit]):
    async def list_page(
        self, limit: int, offset: int, *, user_id: int | None = None
    ) -> Page[AdminAudit]:
        c = t.admin_audit.c
        where = true() if user_id is None else c.user_id == user_id
        return await self._page(self.mapper, where, [c.id.desc()], limit, offset)
