"""GET /reports/time-series and /reports/referral-usage/time-series over HTTP (api.md §9.16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from app.billing.completion import complete_payment
from domain.tax import TaxRates
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld, admin_world
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import order, paid_vm, renew, settle, subscription_of, user_of
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
            "/reports/time-series?start_date=2026-06-02&end_date=2026-06-01",
            "start_date must be before end_date",
        ),
        (f"{Q}&currency=XYZ", "Invalid currency: XYZ"),
        (f"{Q}&company_id=-1", "company_id must be a non-negative integer"),
    ]
    for path, error in cases:
        assert await _status(world, path) == (400, {"error": error}), path
    one_day = "/reports/time-series?start_date=2026-06-01&end_date=2026-06-01"
    assert (await _status(world, one_day))[0] == 200  # a one-day report (review r20)
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


async def _report(world: AdminWorld, start: str, end: str, company: int) -> dict[str, Any]:
    q = f"/reports/time-series?start_date={start}&end_date={end}&company_id={company}"
    body: dict[str, Any] = (await world.ok("GET", q, ROOT))["data"]
    return body


async def _issued_total(world: AdminWorld, start: str, end: str) -> int:
    found = await world.ok("GET", f"/invoices?start_date={start}&end_date={end}&limit=100")
    return sum(int(i["total"]) for i in found["data"])


async def test_a_payment_paid_in_the_last_second_of_june_is_in_junes_report() -> None:
    """Review r20: paid 30 Jun 23:59:59.5, invoiced in June; the reference's window (to 30
    Jun 23:59:59, exclusive) left it out of June's report and July's alike."""
    async with admin_world(now=datetime(2026, 6, 30, 23, 58, tzinfo=UTC)) as world:
        vm = await order(world.user, ALICE)
        world.api.clock.set(datetime(2026, 6, 30, 23, 59, 59, 500000, tzinfo=UTC))
        pay = await renew(world.user, ALICE, vm["id"])
        await settle(world.api, pay["id"])
        company = (await subscription_of(world.api, vm["id"])).company_id
        june = await _report(world, "2026-06-01", "2026-06-30", company)
        july = await _report(world, "2026-07-01", "2026-07-31", company)
        assert [p["id"] for p in june["payments"]] == [pay["id"]]
        assert july["payments"] == []
        assert sum(f["total"] for f in june["invoiced"]) == await _issued_total(
            world, "2026-06-01", "2026-07-01"
        )


async def test_a_payment_is_reported_in_the_period_it_was_paid_and_invoiced() -> None:
    """Review r20: created 30 Jun 23:55, paid 1 Jul 00:04:59: its invoice is July's, and so is
    its report line (the reference's basis, `created`, filed it under June)."""
    async with admin_world(now=datetime(2026, 6, 30, 23, 50, tzinfo=UTC)) as world:
        vm = await order(world.user, ALICE)
        world.api.clock.set(datetime(2026, 6, 30, 23, 55, tzinfo=UTC))
        pay = await renew(world.user, ALICE, vm["id"])
        world.api.clock.advance(timedelta(minutes=9, seconds=59))
        await settle(world.api, pay["id"])
        company = (await subscription_of(world.api, vm["id"])).company_id
        june = await _report(world, "2026-06-01", "2026-06-30", company)
        july = await _report(world, "2026-07-01", "2026-07-31", company)
        assert (june["payments"], [p["id"] for p in july["payments"]]) == ([], [pay["id"]])
        [line] = july["payments"]
        assert line["created"] == "2026-06-30T23:55:00+00:00"  # as stored, not moved
        reported = [sum(f["total"] for f in r["invoiced"]) for r in (june, july)]
        issued = [
            await _issued_total(world, "2026-06-01", "2026-07-01"),
            await _issued_total(world, "2026-07-01", "2026-08-01"),
        ]
        assert reported == issued == [0, 270]


async def test_the_windows_credit_notes_are_reported_against_what_was_invoiced() -> None:
    """Review r20: an invoice of 270 credited whole the same month. The report still lists
    the payment and its 270 invoiced, and now the note too (`credit_notes`) and its sums
    (`credited`): invoiced less credited is the invoice export's total for the window, 0."""
    async with admin_world() as world:
        vm = await paid_vm(world.user, ALICE)
        company = (await subscription_of(world.api, vm["id"])).company_id
        window = "start_date=2026-06-01&end_date=2026-07-01"
        [invoice] = (await world.ok("GET", f"/invoices?{window}"))["data"]
        note = await world.ok(
            "POST",
            f"/invoices/{invoice['id']}/credit_notes",
            json={"amount": invoice["total"], "reason": "refunded"},
        )
        resp = await world.call("GET", f"/invoices/export?{window}")
        rows = (await resp.text()).strip().splitlines()[1:]
        exported = sum(int(r.split(",")[11]) for r in rows)  # the `total` column
        body = await world.ok("GET", f"{Q}&company_id={company}", ROOT)
        report = body["data"]
        invoiced = sum(f["total"] for f in report["invoiced"])
        credited = sum(f["total"] for f in report["credited"])
        assert (invoiced, credited, exported) == (270, 270, 0)
        assert report["credit_notes"] == [
            {
                "number": note["data"]["number"],
                "invoice_number": invoice["number"],
                "issued_at": note["data"]["issued_at"].replace("Z", "+00:00"),
                "currency": "EUR",
                "amount": 270,
                "net": 270,
                "tax": 0,
                "reason": "refunded",
            }
        ]
        assert report["credited"] == [{"currency": "EUR", "net": 270, "tax": 0, "total": 270}]
        # paid in BTC (invoiced in EUR): the currency filter goes by the payment's, as its line's
        eur = (await world.ok("GET", f"{Q}&company_id={company}&currency=EUR"))["data"]
        assert (eur["payments"], eur["credit_notes"], eur["credited"]) == ([], [], [])
        btc = (await world.ok("GET", f"{Q}&company_id={company}&currency=BTC"))["data"]
        assert (btc["credit_notes"], btc["credited"]) == (
            report["credit_notes"],
            report["credited"],
        )
        doc = await world.ok("GET", "/openapi.json", signed=False)
        schema = doc["paths"]["/api/admin/v1/reports/time-series"]["get"]["responses"]["200"][
            "content"
        ]["application/json"]["schema"]
        assert problems(body, schema) == []


async def test_a_deleted_vm_keeps_its_revenue_line_and_its_referral() -> None:
    """Review r20: a referred VM paid in June and deleted later keeps its VM, host and region
    in June's revenue report and its referral in June's referral report."""
    async with admin_world() as world:
        vm = await order(world.user, ALICE, ref_code="PARTNER1")
        pay = await renew(world.user, ALICE, vm["id"])
        await settle(world.api, pay["id"])
        company = (await subscription_of(world.api, vm["id"])).company_id
        async with world.api.store() as uow:
            await uow.vms.delete(vm["id"])
            await uow.commit()
        [line] = (await _report(world, "2026-06-01", "2026-06-30", company))["payments"]
        assert (line["vm_id"], line["host_name"] != "", line["region_id"] != 0) == (
            vm["id"],
            True,
            True,
        )
        q = "/reports/referral-usage/time-series?start_date=2026-06-01&end_date=2026-06-30"
        body = await world.ok("GET", f"{q}&company_id={company}", ROOT)
        assert [(r["vm_id"], r["ref_code"]) for r in body["data"]["referrals"]] == [
            (vm["id"], "PARTNER1")
        ]
