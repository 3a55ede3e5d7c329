"""Storage port of the admin audit trail: append a record, read them back newest first."""

from __future__ import annotations

from typing import Protocol

from domain.model import AdminAudit
from ports.storage.common import Page


class AdminAudits(Protocol):
    async def add(self, entry: AdminAudit) -> AdminAudit: ...

    async def list_page(
        self, limit: int, offset: int, *, user_id: int | None = None
    ) -> Page[AdminAudit]:
        """Newest first (id descending), optionally only one admin's records."""
        ...
