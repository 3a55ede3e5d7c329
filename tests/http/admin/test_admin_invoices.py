"""Admin invoices over HTTP: the date window (paged), the CSV export, one invoice with its
credit notes, credit notes issued; 403 without the permission; no route edits an invoice."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import attrs

from adapters.http.admin.routes_invoices import CSV_COLUMNS, _cell
from domain.invoice import CreditNote, Invoice, InvoiceLine
from tests.http.admin.adminapp import NOBODY, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)
WINDOW = "start_date=2026-06-01&end_date=2026-07-01"
#: the export's columns as clients parse them, by position: new ones only ever come after
FIRST_COLUMNS = (
    "number",
    "issued_at",
    "company_id",
    "payment_id",
    "user_id",
    "buyer_name",
    "buyer_country",
    "buyer_tax_id",
    "currency",
    "net",
    "tax",
    "total",
    "credit_applied",
    "charged",
    "reverse_charge",
    "btc_msat",
    "btc_rate",
)


async def _schema(world: AdminWorld, path: str, method: str = "get") -> Any:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]


async def test_the_window_lists_issued_invoices_paged_and_exports_csv(world: AdminWorld) -> None:
    for key in (ALICE, BOB, ALICE):
        await paid_vm(world.user, key)
    body = await world.ok("GET", f"/invoices?{WINDOW}&limit=2", VIEWER)
    assert body["total"] == 3 and [i["number"] for i in body["data"]] == [
        "2026-000001",
        "2026-000002",
    ]
    assert problems(body, await _schema(world, "/api/admin/v1/invoices")) == []
    rest = await world.ok("GET", f"/invoices?{WINDOW}&limit=2&offset=2", VIEWER)
    assert [i["number"] for i in rest["data"]] == ["2026-000003"]
    assert (await world.ok("GET", "/invoices?start_date=2026-07-01&end_date=2026-08-01"))[
        "total"
    ] == 0

    resp = await world.call("GET", f"/invoices/export?{WINDOW}", VIEWER)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 4
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    listed = body["data"][0]
    assert first["number"] == listed["number"] and first["payment_id"] == listed["payment_id"]
    assert (int(first["net"]), int(first["tax"]), int(first["total"])) == (
        listed["net"],
        listed["tax"],
        listed["total"],
    )
    assert first["currency"] == "EUR" and int(first["btc_msat"]) > 0 and first["btc_rate"]


async def _export(world: AdminWorld) -> list[dict[str, str]]:
    resp = await world.call("GET", f"/invoices/export?{WINDOW}", VIEWER)
    assert resp.status == 200
    header, *rows = csv.reader(io.StringIO(await resp.text()))
    assert tuple(header) == CSV_COLUMNS
    return [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows]


async def test_the_export_gives_credit_notes_as_negative_rows_after_the_invoices(
    world: AdminWorld,
) -> None:
    assert (*FIRST_COLUMNS, "document", "corrects", "outside_eu") == CSV_COLUMNS
    for key in (ALICE, BOB):
        await paid_vm(world.user, key)
    first, second = (await world.ok("GET", f"/invoices?{WINDOW}"))["data"]
    for invoice, amount in ((first, 100), (second, second["total"])):
        await world.ok(
            "POST",
            f"/invoices/{invoice['id']}/credit_notes",
            json={"amount": amount, "reason": "refund"},
        )
    rows = await _export(world)
    assert [(r["number"], r["document"], r["corrects"]) for r in rows] == [
        (first["number"], "invoice", ""),
        (second["number"], "invoice", ""),
        ("CN-2026-000001", "credit_note", first["number"]),
        ("CN-2026-000002", "credit_note", second["number"]),
    ]
    partial, whole = rows[2], rows[3]
    assert first["tax"] == 0  # an untaxed invoice: all of a note is net
    assert (partial["net"], partial["tax"], partial["total"]) == ("-100", "0", "-100")
    assert (int(whole["net"]), int(whole["tax"]), int(whole["total"])) == (
        -second["net"],
        -second["tax"],
        -second["total"],
    )
    assert partial["payment_id"] == first["payment_id"] and partial["currency"] == "EUR"
    assert (partial["credit_applied"], partial["charged"], partial["btc_msat"]) == ("", "", "")
    # what the window earned: the invoices less their credit notes
    assert sum(int(r["total"]) for r in rows) == first["total"] - 100


def test_cells_that_a_spreadsheet_would_run_are_quoted_but_numbers_stay_numbers() -> None:
    assert [_cell(v) for v in ("=1+2", "-x", "+x", "@x", "ok")] == [
        "'=1+2",
        "'-x",
        "'+x",
        "'@x",
        "ok",
    ]
    assert [_cell(v) for v in (-100, 0, 5)] == ["-100", "0", "5"]


async def test_credit_notes_are_issued_against_an_invoice_that_never_changes(
    world: AdminWorld,
) -> None:
    await paid_vm(world.user, ALICE)
    [invoice] = (await world.ok("GET", f"/invoices?{WINDOW}"))["data"]
    path = f"/invoices/{invoice['id']}"
    note = await world.ok(
        "POST", f"{path}/credit_notes", json={"amount": 100, "reason": "goodwill refund"}
    )
    assert note["data"]["number"] == "CN-2026-000001" and note["data"]["amount"] == 100
    assert (
        problems(note, await _schema(world, "/api/admin/v1/invoices/{id}/credit_notes", "post"))
        == []
    )
    one = await world.ok("GET", path)
    assert one["data"]["invoice"] == invoice
    assert [n["number"] for n in one["data"]["credit_notes"]] == ["CN-2026-000001"]
    over = await world.call(
        "POST", f"{path}/credit_notes", json={"amount": invoice["total"], "reason": "too much"}
    )
    assert over.status == 400
    for bad in (
        {"amount": 0, "reason": "x"},
        {"amount": 5},
        {"amount": "5", "reason": "x"},
        {"amount": 5, "reason": "   "},
    ):
        resp = await world.call("POST", f"{path}/credit_notes", json=bad)
        assert resp.status == 400, bad
    assert (await world.call("GET", "/invoices/999")).status == 404
    # an issued invoice has no edit or delete route
    for method in ("PATCH", "PUT", "DELETE"):
        resp = await world.call(method, path, json={"total": 1})
        assert resp.status == 405, method
    assert (await world.ok("GET", path))["data"]["invoice"] == invoice


async def test_invoices_need_the_payments_permission(world: AdminWorld) -> None:
    await paid_vm(world.user, ALICE)
    for method, path, key in (
        ("GET", f"/invoices?{WINDOW}", NOBODY),
        ("GET", f"/invoices/export?{WINDOW}", NOBODY),
        ("GET", "/invoices/1", NOBODY),
        ("POST", "/invoices/1/credit_notes", VIEWER),
    ):
        resp = await world.call(
            method, path, key, json={"amount": 1, "reason": "x"} if method == "POST" else None
        )
        assert resp.status == 403, (method, path)
    bad = await world.call("GET", "/invoices?start_date=2026-06-01&end_date=2026-05-01")
    assert bad.status == 400


async def test_an_admin_validates_a_vat_id_and_a_new_id_loses_it(world: AdminWorld) -> None:
    account = {
        "contact_nip17": True,
        "contact_email": False,
        "country_code": "DE",
        "name": "Alice GmbH",
        "address_1": None,
        "address_2": None,
        "state": None,
        "city": None,
        "postcode": None,
        "tax_id": "DE811907980",
        "nwc_connection_string": None,
    }
    resp = await world.user.call("PATCH", "/api/v1/account", key=ALICE, json=account)
    assert resp.status == 200, await resp.text()
    async with world.api.store() as uow:
        alice = await uow.users.get_by_pubkey(ALICE.pubkey)
    assert alice is not None and not alice.billing_vat_validated
    await world.ok("PATCH", f"/users/{alice.id}", json={"billing_vat_validated": True})
    shown = await world.ok("GET", f"/users/{alice.id}")
    assert shown["data"]["billing_vat_validated"] is True
    resp = await world.user.call(
        "PATCH", "/api/v1/account", key=ALICE, json={**account, "tax_id": "DE999999999"}
    )
    assert resp.status == 200
    async with world.api.store() as uow:
        after = await uow.users.get(alice.id)
    assert after is not None and not after.billing_vat_validated


async def _taxed_copy(world: AdminWorld, invoice: dict[str, Any], n: int) -> Invoice:
    """A copy of the listed invoice as 10.00 + 23 % VAT (the test app charges no tax)."""
    line = InvoiceLine(description="Renewal: VPS", net=1000, tax_rate=Decimal(23), tax=230)
    async with world.api.store() as uow:
        found = await uow.invoices.get(invoice["id"])
        assert found is not None
        content = attrs.evolve(found.document, lines=(line,))
        taxed = await uow.invoices.add(
            attrs.evolve(
                found,
                id=0,
                seq=100 + n,
                number=f"2026-{100 + n:06d}",
                payment_id=bytes([n]) * 32,
                net=1000,
                tax=230,
                total=1230,
                content=content.to_json(),
            )
        )
        await uow.commit()
    return taxed


async def test_a_credit_note_states_the_vat_it_takes_back(world: AdminWorld) -> None:
    """Two partial notes split at 23 % and a last one taking the rest: the JSON and the CSV
    give each note's net and VAT, and all of them take back the invoice's exactly. A note
    issued before notes stored their split has none (null, empty cells) on a taxed invoice."""
    await paid_vm(world.user, ALICE)
    [listed] = (await world.ok("GET", f"/invoices?{WINDOW}"))["data"]
    taxed = await _taxed_copy(world, listed, 1)
    path = f"/invoices/{taxed.id}"
    notes = [
        (await world.ok("POST", f"{path}/credit_notes", json={"amount": a, "reason": "r"}))["data"]
        for a in (123, 500, 607)
    ]
    assert [(n["net"], n["tax"]) for n in notes] == [(100, 23), (407, 93), (493, 114)]
    one = await world.ok("GET", path)
    assert [{**n, "replayed": False} for n in one["data"]["credit_notes"]] == notes
    assert problems(one, await _schema(world, "/api/admin/v1/invoices/{id}")) == []

    old_invoice = await _taxed_copy(world, listed, 2)
    async with world.api.store() as uow:  # as r15 leaves a note issued before it
        number = "CN-2026-000099"
        old = CreditNote(
            id=0,
            company_id=old_invoice.company_id,
            series="CN-2026",
            seq=99,
            number=number,
            invoice_id=old_invoice.id,
            issued_at=old_invoice.issued_at,
            currency="EUR",
            amount=500,
            reason="before r15",
        )
        await uow.invoices.add_credit_note(old)
        await uow.commit()
    shown = await world.ok("GET", f"/invoices/{old_invoice.id}")
    assert [(n["net"], n["tax"]) for n in shown["data"]["credit_notes"]] == [(None, None)]
    assert problems(shown, await _schema(world, "/api/admin/v1/invoices/{id}")) == []

    rows = {r["number"]: r for r in await _export(world) if r["document"] == "credit_note"}
    assert [(rows[n["number"]]["net"], rows[n["number"]]["tax"]) for n in notes] == [
        ("-100", "-23"),
        ("-407", "-93"),
        ("-493", "-114"),
    ]
    assert (rows[number]["net"], rows[number]["tax"], rows[number]["total"]) == ("", "", "-500")
