"""A settlement the intake cannot complete (refused for good, or failing again and again) is
kept and reported, and the intake goes on."""

from __future__ import annotations

import logging

from domain.errors import DomainError
from ports.clock import Clock
from ports.jobs import SendAdminNotification
from ports.lightning import SettledInvoice
from ports.queue import WorkQueue
from ports.storage import SettlementProblem, UnitOfWorkFactory

log = logging.getLogger("lnvps.settlement")

#: how many recorded problems `recent_problems` returns unless told
RECENT_LIMIT = 50


async def record_problem(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    queue: WorkQueue,
    settled: SettledInvoice,
    err: Exception,
    tries: int = 1,
) -> bool:
    """Store the refused settlement (once per payment) and tell the admins; True when it was
    new. Storing is what lets the intake move past it: a storage failure here propagates, so
    the settlement is tried again rather than lost. The admins' notice is best effort.

    `err` is what completing it raised: a refusal of the domain, or (after `tries` failures
    in a row, `app.settlement_retries.Strikes`) a conflict that kept recurring or an
    unexpected error; its type and message are kept."""
    reason = _reason(err)
    if tries > 1:
        reason = f"{reason} (failed {tries} times in a row)"
    problem = SettlementProblem(
        id=0,
        payment_id=settled.payment_hash,
        settle_index=settled.settle_index,
        amount_paid_msat=settled.amount_paid_msat,
        error=type(err).__name__[:64],
        message=reason[:1000],
        created=clock.now(),
    )
    async with uow_factory() as uow:
        new = await uow.settlement_problems.record(problem)
        await uow.commit()
    hex_id = settled.payment_hash.hex()
    log.error(
        "OPERATOR: settled Lightning payment %s (settle index %d, %d msat) was NOT completed "
        "and is kept in settlement problems: %s: %s",
        hex_id,
        settled.settle_index,
        settled.amount_paid_msat,
        problem.error,
        reason,
    )
    if new:
        title = f"Lightning payment {hex_id[:16]}… paid but not completed"
        message = (
            f"The Lightning node settled payment {hex_id} ({settled.amount_paid_msat} msat, "
            f"settle index {settled.settle_index}), but completing it was refused: "
            f"{problem.error}: {reason}\n"
            "The payer's money has arrived and bought nothing yet. Remove the cause and "
            "complete the payment by hand (admin: complete payment), or settle it with the "
            "user. `lnvps admin settlement-problems` lists every such payment."
        )
        try:
            await queue.send(SendAdminNotification(title=title, message=message))
        except Exception:  # the record is kept; the notice is a courtesy
            log.exception("could not queue the admins' notice about payment %s", hex_id)
    return new


def _reason(err: Exception) -> str:
    """What went wrong, in words: a `DomainError`'s message, else the exception's text (its
    type alone when it has none)."""
    if isinstance(err, DomainError):
        return err.message
    return str(err) or repr(err)


async def recent_problems(
    uow_factory: UnitOfWorkFactory, limit: int = RECENT_LIMIT
) -> list[tuple[SettlementProblem, bool | None]]:
    """The newest recorded problems, each with whether its payment is paid now (None: the
    payment is gone), for the operator's list."""
    async with uow_factory() as uow:
        problems = await uow.settlement_problems.list_recent(limit)
        out: list[tuple[SettlementProblem, bool | None]] = []
        for problem in problems:
            payment = await uow.payments.get(problem.payment_id)
            out.append((problem, None if payment is None else payment.is_paid))
    return out
