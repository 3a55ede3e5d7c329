"""Memory repository of the admin audit trail."""

from __future__ import annotations

from adapters.memory.db import RecordRepo, page_of
from domain.model import AdminAudit
from ports.storage import Page


class MemoryAdminAudits(RecordRepo[AdminAudit]):
    table = "admin_audit"

    async def list_page(
        self, limit: int, offset: int, *, user_id: int | None = None
    ) -> Page[AdminAudit]:
        rows = self._where(lambda e: user_id is None or e.user_id == user_id)
        return Page(*page_of(reversed(rows), limit, offset))
