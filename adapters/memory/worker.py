"""In-memory worker leases and cursors."""

from __future__ import annotations

import secrets
from datetime import datetime

from adapters.memory.db import Repo


class MemoryWorkerLeases(Repo):
    async def take(self, name: str, now: datetime, stale_before: datetime) -> str | None:
        rows = self._rows("worker_lease")
        held: tuple[str, datetime] | None = rows.get(name)
        if held is not None and held[1] >= stale_before:
            return None
        token = secrets.token_hex(16)
        rows[name] = (token, now.replace(microsecond=0))
        return token

    async def renew(self, name: str, token: str, now: datetime) -> bool:
        rows = self._rows("worker_lease")
        held: tuple[str, datetime] | None = rows.get(name)
        if held is None or held[0] != token:
            return False
        rows[name] = (token, now.replace(microsecond=0))
        return True

    async def release(self, name: str, token: str) -> bool:
        rows = self._rows("worker_lease")
        held: tuple[str, datetime] | None = rows.get(name)
        if held is None or held[0] != token:
            return False
        del rows[name]
        return True


class MemoryWorkerCursors(Repo):
    async def get(self, name: str) -> int | None:
        found: int | None = self._rows("worker_cursor").get(name)
        return found

    async def advance(self, name: str, position: int) -> None:
        if position < 0:
            raise ValueError(f"cursor position must be ≥ 0, got {position}")
        rows = self._rows("worker_cursor")
        rows[name] = max(rows.get(name, 0), position)
