"""No use case reads from a MariaDB snapshot older than a lock it took, beyond the judged few.

A representative walk (order and pay, upgrade and apply it, an admin's credit adjustment,
subscription and line-item edits and extension, refunds to credit and by hand, the worker's
expiry, deletion and VM check) runs on MariaDB under
`tests.snapshot_reads.Detector`; every occurrence it sees (`read A -> lock B`: a plain read
fixed the snapshot before the lock; `lock B -> read C`: a plain read answered from it after
the lock) must be in `JUDGED`, each with why its staleness changes no decision. A new one
fails here: read after the lock, take the lock first, or make the read a locking one; or,
when it truly cannot matter, add it with the reason.
"""

from __future__ import annotations

from datetime import timedelta

from app.admin.credit_refund import refund_to_credit
from app.admin.manual_refund import refund_by_hand
from app.admin.subscriptions import (
    LineItemPatch,
    SubscriptionPatch,
    update_line_item,
    update_subscription,
)
from app.admin.vms import extend_vm
from app.billing.credit_balance import adjust_credit
from app.billing.upgrades import create_upgrade_payment
from domain.enums import PaymentMethod
from domain.upgrade import UpgradeConfig
from tests.contract import lifecycle_world, storage_backends
from tests.snapshot_reads import Detector, pairs
from tests.unit.billing.world import ALICE, BOB
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
pytestmark = storage_backends.only("mysql")

#: every writer of what these read holds a lock this transaction took before its snapshot
#: (the subscription's, or the user's and region's in a booking), so the read is current
_UNDER_SUB = "read after the subscription's lock, which every writer of it holds"
#: the dedup look of `CreditLedger.book`; a missed replay meets the unique key (a replay)
_BOOK = "duplicate check backed by the unique key and a locking re-read"

JUDGED: dict[str, str] = {
    # completion's booking: subscription (user, region) locked before its first plain read
    "read app/billing/completion.py _book -> lock app/billing/completion.py _apply": _UNDER_SUB,
    "lock app/billing/completion.py _apply -> read app/billing/booked_records.py "
    "ProductRecords.__call__": _UNDER_SUB,
    "lock app/billing/completion.py _apply -> read app/billing/booked_records.py "
    "ProductRecords._upgrade": _UNDER_SUB,
    "lock app/billing/completion.py _apply -> read app/billing/invoicing.py issue_invoice": (
        _UNDER_SUB + "; the series' counter is this transaction's own write"
    ),
    "lock app/billing/completion.py _apply -> read app/billing/price_in_force.py priced_items": (
        _UNDER_SUB
    ),
    "lock app/billing/completion.py _apply -> read app/billing/upgrades.py _plan": _UNDER_SUB,
    "lock app/billing/completion.py _apply -> read app/billing/upgrades.py upgrade_in": (
        _UNDER_SUB
    ),
    "lock app/billing/completion.py _apply -> read app/billing/catalogue.py "
    "template_with_plan": _UNDER_SUB,
    "lock app/billing/credit_balance.py book_in -> read app/billing/credit_balance.py book_in": (
        _BOOK
    ),
    # an admin's adjustment: the user's existence, then the balance lock
    "read app/billing/credit_balance.py adjust_credit -> lock app/billing/credit_balance.py "
    "book_in": "the user's existence only; users are never deleted",
    # refunds: `locked_subscription_of` locks the subscription first
    "read app/admin/vms.py locked_subscription_of -> lock app/billing/credit_balance.py "
    "book_in": _UNDER_SUB,
    "read app/admin/vms.py locked_subscription_of -> lock app/billing/invoicing.py "
    "lock_for_notes": _UNDER_SUB,
    "read app/admin/vms.py locked_subscription_of -> lock app/billing/price_in_force.py "
    "expire_stale_quotes": _UNDER_SUB,
    "lock app/billing/invoicing.py lock_for_notes -> read app/billing/invoicing.py "
    "credited_as_account_credit": "a payment is credited only under its subscription's lock,"
    " which a refund holds from before its first read",
    "lock app/billing/invoicing.py lock_for_notes -> read app/billing/invoicing.py "
    "add_credit_note": "the series' counter, this transaction's own write",
    # a refund to credit values invoices under their locks, the subscription's
    # taken first; what refunds to credit gave back is recorded only under that lock
    "lock app/billing/invoicing.py lock_for_notes -> read app/billing/credit_balance.py "
    "book_in": _BOOK,
    "lock app/billing/invoicing.py lock_for_notes -> read app/billing/refunded_credit.py "
    "refunded_to_credit": "refunds to credit record it under the subscription's lock, held "
    "from before the first read (an admin's note takes the invoice lock first of all)",
    "lock app/billing/invoicing.py lock_for_notes -> read app/admin/credit_refund_invoices.py "
    "invoices_refunded": "a paid invoice's payment: what the VAT-free part reads of it (type,"
    " amount, tax, the credit it applied) is never written once it is paid",
    # an admin's adjustment: the user's row locked first, as book_in locks it
    "read app/billing/credit_balance.py _refuse_other_currency -> lock "
    "app/billing/credit_balance.py book_in": "read after the user's lock, which book_in takes",
    # an admin's subscription edit: the subscription locked first
    "read app/admin/subscriptions.py _update_locked -> lock app/billing/price_in_force.py "
    "expire_stale_quotes": _UNDER_SUB,
    # the worker: subscription (user, region) locked first
    "read app/worker/lifecycle.py _still_there -> lock app/worker/pending.py end_pending": (
        _UNDER_SUB
    ),
}


async def test_the_walk_reads_nothing_stale_beyond_the_judged(world: World) -> None:
    found: list[dict[str, object]] = []
    shop = world.shop
    with Detector(found.append):
        vm = await world.paid_vm()
        await adjust_credit(
            shop.factory, shop.clock, admin_id=BOB, user_id=ALICE, currency="EUR",
            amount=50, note="goodwill", reference="r1",
        )  # fmt: skip
        upgrade = await create_upgrade_payment(
            shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id,
            cfg=UpgradeConfig(new_cpu=4),
        )  # fmt: skip
        await world.complete(upgrade)
        await world.run_jobs()
        sub = await world.sub(vm)
        assert sub.expires is not None
        await update_subscription(
            shop.factory, sub.id, SubscriptionPatch(expires=sub.expires + timedelta(days=1)),
            clock=shop.clock, rails=shop.rails, admin_id=BOB,
        )  # fmt: skip
        await update_line_item(
            shop.factory, vm.subscription_line_item_id, LineItemPatch(name="renamed"),
            clock=shop.clock, rails=shop.rails, admin_id=BOB,
        )  # fmt: skip
        await extend_vm(shop.factory, shop.clock, world.queue, vm_id=vm.id, days=1, admin_id=BOB)
        world.advance(timedelta(days=2))
        await refund_to_credit(
            shop.factory, shop.clock, shop.rates, vm_id=vm.id, admin_id=BOB, reason="test"
        )
        second = await world.paid_vm()
        world.advance(timedelta(days=1))
        await refund_by_hand(
            shop.factory, shop.rates, shop.clock, world.queue, vm_id=second.id,
            method=PaymentMethod.LIGHTNING, from_date=None, lightning_invoice=None,
            admin_id=BOB, reason="test",
        )  # fmt: skip
        third = await world.paid_vm()
        sub = await world.sub(third)
        assert sub.expires is not None
        world.at(sub.expires + timedelta(days=30))
        await world.lifecycle(runs=3, step=timedelta(days=3))
        await world.run_jobs()
        await world.vm_check()
    seen = {pair for record in found for pair in pairs(record)}
    assert seen, "the detector saw nothing: is it still hooked?"
    assert sorted(seen - JUDGED.keys()) == []
