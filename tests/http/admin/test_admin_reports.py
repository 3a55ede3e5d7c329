"""GET /reports/time-series and /reports/referral-usage/time-series over HTTP (api.md §9.16)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from app.billing.completion import complete_payment
from domain.tax import TaxRates
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld, admin_world
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import order, paid_vm, renew, subscription_of, user_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)
Q = "/reports/time-series?start_date=2026-06-01&end_date=2026-06-30"


async def _status(world: AdminWorld, path: str, key: NostrKey = ROOT) -> tuple[int, Any]:
    resp = await world.call("GET", path, key)
    return resp.status, await resp.json()


async def test_time_series_lists_the_paid_payment_as_stored(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    async with world.api.store() as uow:
        [paid] = (await uow.payments.list_by_subscription(sub.id, 10, 0)).items
        company = await uow.companies.get(sub.company_id)
    assert company is not None
    body = await world.ok("GET", f"{Q}&company_id={company.id}", VIEWER)
    data = body["data"]
    assert (data["start_date"], data["end_date"]) == ("2026-06-01", "2026-06-30")
    [line] = data["payments"]
    assert line["id"] == paid.id.hex() and line["vm_id"] == vm["id"]
    assert (line["amount"], line["tax"], line["currency"]) == (paid.amount, paid.tax, "BTC")
    assert line["rate_exact"] == str(paid.rate) and line["rate"] == float(paid.rate)
    assert line["created"] == paid.created.isoformat() and line["created"].endswith("+00:00")
    assert line["company_id"] == company.id and line["company_base_currency"] == "EUR"
    assert line["time_value"] == (paid.time_value or 0) and line["is_paid"] is True
    # msat × EUR/BTC, exactly: what the customer paid, back in cents
    assert line["base_currency_amount"] == 270
    doc = await world.ok("GET", "/openapi.json", signed=False)
    schema = doc["paths"]["/api/admin/v1/reports/time-series"]["get"]["responses"]["200"][
        "content"
    ]["application/json"]["schema"]
    assert problems(body, schema) == []
    assert (await world.ok("GET", f"{Q}&company_id={company.id}&currency=eur"))["data"][
        "payments"
    ] == []
    assert (await world.ok("GET", f"{Q}&company_id={company.id}&currency=BTC"))["data"][
        "payments"
    ] == [line]
    referrals = await world.ok(
        "GET",
        "/reports/referral-usage/time-series?start_date="
        f"2026-06-01&end_date=2026-06-30&company_id={company.id}",
    )
    assert referrals["data"]["referrals"] == []


async def test_report_refusals(world: AdminWorld) -> None:
    cases = [
        ("/reports/time-series?end_date=2026-06-30", "Invalid start_date format. Use YYYY-MM-DD"),
        (
            "/reports/time-series?start_date=2026-6-1&end_date=2026-06-30",
            "Invalid start_date format. Use YYYY-MM-DD",
        ),
        (
            "/reports/time-series?start_date=2026-W01-1&end_date=2026-06-30",
            "Invalid start_date format. Use YYYY-MM-DD",
        ),
        (
            "/reports/time-series?start_date=2026-06-01&end_date=2026-02-30",
            "Invalid end_date format. Use YYYY-MM-DD",
        ),
        (
            "/reports/time-series?start_date=2026-06-01&end_date=2026-06-01",
            "start_date must be before end_date",
        ),
        (f"{Q}&currency=XYZ", "Invalid currency: XYZ"),
        (f"{Q}&company_id=-1", "company_id must be a non-negative integer"),
    ]
    for path, error in cases:
        assert await _status(world, path) == (400, {"error": error}), path
    for path in (
        Q,
        "/reports/referral-usage/time-series?start_date=2026-06-01&end_date=2026-06-30",
    ):
        assert await _status(world, path, NOBODY) == (
            403,
            {"error": "Insufficient permissions for analytics::view"},
        )


#: 1 239 000 msat beyond the invoice: EUR 1.23 at 100 000 EUR/BTC, a prepayment at 23 %
EXCESS_MSAT = 1_239_000


async def test_the_report_accounts_for_every_cent_invoiced_prepayments_apart() -> None:
    """Alice (Ireland, 23 %) pays EUR 2.70 + 0.62 VAT (3 321 000 msat) and 1 239 000 msat
    more: her invoice bills 455 cents, of which the prepayment to account credit (100 net
    credited, 23 VAT) is not in the payment row (its amount and tax say 332). Bob (no
    country, no tax) pays 270 exactly. Each line's `invoice` splits its invoice by kind, and
    the report's `invoiced` sums them: 725 cents, every cent the window's invoices bill."""
    rates = TaxRates({"IRL": Decimal(23)})
    async with admin_world(tax_rates=rates) as world:
        alice = await user_of(world.api, ALICE)
        async with world.api.store() as uow:
            await uow.users.update(attrs.evolve(alice, country_code="IE"))
            await uow.commit()
        vm = await order(world.user, ALICE)
        overpaid = bytes.fromhex((await renew(world.user, ALICE, vm["id"]))["id"])
        async with world.api.store() as uow:
            row = await uow.payments.get(overpaid)
        assert row is not None and (row.amount, row.tax, row.total) == (
            2_700_000,
            621_000,
            3_321_000,
        )
        svc = world.api.services
        await world.api.node.settle(overpaid)
        await complete_payment(
            svc.uow_factory,
            svc.clock,
            svc.rails,
            svc.queue,
            payment_id=overpaid,
            received_msat=row.total + EXCESS_MSAT,
        )
        await paid_vm(world.user, BOB)
        sub = await subscription_of(world.api, vm["id"])

        body = await world.ok("GET", f"{Q}&company_id={sub.company_id}", VIEWER)
        lines = body["data"]["payments"]
        # both created at the same instant: their order between them is the storage's
        [first] = [line for line in lines if line["id"] == overpaid.hex()]
        [second] = [line for line in lines if line["id"] != overpaid.hex()]
        assert (first["amount"], first["tax"]) == (2_700_000, 621_000)  # the row, as stored
        assert (first["base_currency_amount"], first["base_currency_tax"]) == (270, 62)
        assert first["invoice"] == {
            "number": "2026-000001",
            "currency": "EUR",
            "net": 370,
            "tax": 85,
            "total": 455,
            "service_net": 270,
            "service_tax": 62,
            "processing_fee": 0,
            "prepayment_net": 100,
            "prepayment_tax": 23,
        }
        assert second["invoice"] == {
            "number": "2026-000002",
            "currency": "EUR",
            "net": 270,
            "tax": 0,
            "total": 270,
            "service_net": 270,
            "service_tax": 0,
            "processing_fee": 0,
            "prepayment_net": 0,
            "prepayment_tax": 0,
        }
        assert body["data"]["invoiced"] == [
            {
                "currency": "EUR",
                "net": 640,
                "tax": 85,
                "total": 725,
                "service_net": 540,
                "service_tax": 62,
                "processing_fee": 0,
                "prepayment_net": 100,
                "prepayment_tax": 23,
            }
        ]
        issued = await world.ok("GET", "/invoices?start_date=2026-06-01&end_date=2026-07-01")
        assert sum(i["total"] for i in issued["data"]) == 725
        assert sum(i["tax"] for i in issued["data"]) == 85
        doc = await world.ok("GET", "/openapi.json", signed=False)
        schema = doc["paths"]["/api/admin/v1/reports/time-series"]["get"]["responses"]["200"][
            "content"
        ]["application/json"]["schema"]
        assert problems(body, schema) == []
