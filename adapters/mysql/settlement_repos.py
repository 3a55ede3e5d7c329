"""SQL repository of the settlements the intake could not complete (table r14)."""

from __future__ import annotations

from sqlalchemy import insert

from adapters.mysql import tables as t
from adapters.mysql.product_repos import insert_unless_duplicate
from adapters.mysql.repositories import SqlRecords
from ports.storage import SettlementProblem


class SqlSettlementProblems(SqlRecords[SettlementProblem]):
    async def record(self, problem: SettlementProblem) -> bool:
        row = self.mapper.to_row(problem)
        row["created"] = problem.created.replace(microsecond=0)
        return await insert_unless_duplicate(self, insert(t.settlement_problem).values(row))

    async def get_by_payment(self, payment_id: bytes) -> SettlementProblem | None:
        found = await self._where(t.settlement_problem.c.payment_id == payment_id)
        return found[0] if found else None

    async def list_recent(self, limit: int) -> list[SettlementProblem]:
        query = self._select().order_by(t.settlement_problem.c.id.desc()).limit(limit)
        rows = (await self.conn.execute(query)).mappings()
        return [self.mapper.from_row(row) for row in rows]
