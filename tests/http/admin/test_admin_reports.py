"""GET /reports/time-series and /reports/referral-usage/time-series over HTTP (api.md §9.16)."""

from __future__ import annotations

from typing import Any

from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import paid_vm, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
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
