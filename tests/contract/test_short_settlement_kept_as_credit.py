"""A short Lightning settlement an admin completes as paid, for a renewal kept as account
credit (its deleted VM cannot be restored), on memory, SQLite and MariaDB: the credit is
worth what arrived, net of VAT and rounded down, the prepayment net its invoice states, not
the value of the amount asked; and the revenue figures count its shortfall off the
prepayment, not the service."""

from __future__ import annotations

from decimal import Decimal

from app.billing.completion import complete_payment
from domain.account_credit import CreditReason
from domain.admin_completion import AdminCompletion, NodeSettlement
from domain.invoice_figures import invoiced_figures
from domain.prepayment import PREPAYMENT_LINE
from domain.shortfall import SHORTFALL_LINE
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_unrestorable_payment import (
    _deleted_with_late_renewal,
    _disable_host,
)
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")


async def test_a_short_settlement_kept_as_credit_credits_what_arrived(world: World) -> None:
    """1 624 000 msat asked (132 net + 30 VAT at 23 %, EUR 100 000 per BTC), 812 000 arrived:
    EUR 0.81, of which 65 net and 16 VAT. The credit is 65 (it was 132, the full value), the
    invoice's prepayment line less its shortfall line, and booked once."""
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub = await world.sub(vm)
    assert (renewal.amount, renewal.tax, renewal.total) == (1_320_000, 303_600, 1_624_000)
    arrived = renewal.total // 2
    admin = AdminCompletion(
        admin_id=1, settlement=NodeSettlement.COUNTED, short_received_msat=arrived
    )
    for _ in range(2):  # the second is a replay: nothing more is booked
        await complete_payment(
            world.shop.factory,
            world.clock,
            world.shop.rails,
            world.queue,
            payment_id=renewal.id,
            by_admin=admin,
        )

    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(renewal.id)
        page = await uow.credit_ledger.list_page(sub.user_id, 100, 0)
    assert invoice is not None
    doc = invoice.document
    assert [(x.description, x.net, x.tax_rate, x.tax) for x in doc.lines] == [
        (PREPAYMENT_LINE, 132, Decimal(23), 30),
        (SHORTFALL_LINE, -67, Decimal(23), -14),
    ]
    assert (invoice.net, invoice.tax, invoice.total) == (65, 16, 81)
    assert (doc.btc_msat, doc.short_msat) == (812_000, 812_000)
    assert await world.balance(sub) == invoice.net == 65
    kept = [e for e in page.items if e.reference == renewal.id.hex()]
    assert [(e.reason, e.amount) for e in kept] == [(CreditReason.OVERPAYMENT, 65)]

    figures = invoiced_figures(invoice)
    assert (figures.service_net, figures.service_tax) == (0, 0)
    assert (figures.prepayment_net, figures.prepayment_tax) == (65, 16)
    assert figures.total == invoice.total
