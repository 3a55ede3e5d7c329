"""Memory repository of the settlements the intake could not complete."""

from __future__ import annotations

from adapters.memory.db import RecordRepo
from ports.storage import SettlementProblem


class MemorySettlementProblems(RecordRepo[SettlementProblem]):
    table = "settlement_problem"

    async def record(self, problem: SettlementProblem) -> bool:
        if self._where(lambda p: p.payment_id == problem.payment_id):
            return False
        self._insert(self.table, problem)
        return True

    async def get_by_payment(self, payment_id: bytes) -> SettlementProblem | None:
        found = self._where(lambda p: p.payment_id == payment_id)
        return found[0] if found else None

    async def list_recent(self, limit: int) -> list[SettlementProblem]:
        return list(reversed(self._where()))[:limit]
