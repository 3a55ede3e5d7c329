"""Backfill Phase 2: copy `vm_payment` into `subscription_payment` set-wise, per id-keyset batch."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    case,
    func,
    insert,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from adapters.mysql import tables as t
from adapters.mysql.legacy_shape import BillingShape
from adapters.mysql.never_paid import none_of
from domain.enums import (
    LegacyPaymentType,
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
)
from domain.legacy import (
    PAYMENT_TYPE_MAP,
    LegacyDataError,
    LegacyPaymentRow,
    Problem,
    map_payment,
)

vp, sp, vm, li = t.vm_payment, t.subscription_payment, t.vm, t.subscription_line_item
sub = t.subscription

#: Columns copied verbatim by the server, never through Python (B5: external_data stays raw).
RAW_COLUMNS = (
    "id",
    "created",
    "expires",
    "amount",
    "currency",
    "payment_method",
    "external_data",
    "external_id",
    "is_paid",
    "rate",
    "tax",
    "processing_fee",
    "paid_at",
)

_TYPE = type_coerce(vp.c.payment_type, Integer)
_METHOD = type_coerce(vp.c.payment_method, Integer)
_PAID = type_coerce(vp.c.is_paid, Integer)
_KNOWN_TYPE = _TYPE.in_([int(code) for code in LegacyPaymentType])
_KNOWN_METHOD = _METHOD.in_([int(code) for code in PaymentMethod])


def _link(shape: BillingShape) -> ColumnElement[Any]:
    return vm.c.subscription_line_item_id if shape.has_link else null()


def _in_range(low: bytes | None, high: bytes | None) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if low is not None:
        conds.append(vp.c.id > low)
    if high is not None:
        conds.append(vp.c.id <= high)
    return and_(true(), *conds)


async def next_bound(conn: AsyncConnection, low: bytes | None, size: int) -> bytes | None:
    """The id `size` rows after `low` in `vm_payment`'s unique index; None for the last range."""
    stmt = select(vp.c.id).order_by(vp.c.id).offset(size - 1).limit(1)
    if low is not None:
        stmt = stmt.where(vp.c.id > low)
    value = (await conn.execute(stmt)).scalar_one_or_none()
    return None if value is None else bytes(value)


def _missing() -> ColumnElement[bool]:
    """No `subscription_payment` with the same id anywhere (§6: the id is the idempotency key)."""
    return ~select(sp.c.id).where(sp.c.id == vp.c.id).exists()


def _linked_ok(shape: BillingShape) -> ColumnElement[bool]:
    """The VM exists and links a Vps (type 3) line item; type 4 and others are refused (B7)."""
    return and_(vm.c.id.is_not(None), li.c.id.is_not(None), _vps_item())


def _vps_item() -> ColumnElement[bool]:
    return type_coerce(li.c.subscription_type, Integer) == int(SubscriptionType.VPS)


def _source(shape: BillingShape) -> Any:
    # On the legacy shape (dry run before r2) no VM is linked: join no line item at all.
    never = and_(li.c.id == vm.c.id, literal(1) == literal(0))
    item_on = li.c.id == _link(shape) if shape.has_link else never
    return (
        vp.outerjoin(vm, vm.c.id == vp.c.vm_id)
        .outerjoin(li, item_on)
        .outerjoin(sub, sub.c.id == li.c.subscription_id)
    )


class _Instant(FunctionElement[Any]):
    """A stored time as a comparable value: SQLite keeps text in more than one format
    (`…12:00:00` from LNVPS, `…12:00:00.000000` from lnvps), `datetime()` makes them one."""

    type = DateTime()
    inherit_cache = True


@compiles(_Instant)
def _instant(element: _Instant, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Instant, "sqlite")
def _instant_sqlite(element: _Instant, compiler: SQLCompiler, **kw: Any) -> str:
    return f"datetime({compiler.process(element.clauses, **kw)})"


def _expiry_moved() -> ColumnElement[bool]:
    """The VM's legacy `vm.expires` is not its subscription's expiry (never NULL itself).

    Phase 1 copies `vm.expires` into the subscription, and lnvps never writes `vm.expires`;
    so for a VM whose paid legacy payment is still to copy (lnvps has not served since, or
    the old LNVPS is running: only it writes `vm_payment`), a difference means the old
    LNVPS moved the VM's time after adoption, typically by settling that very payment.
    """
    return or_(
        sub.c.expires.is_(None),
        vm.c.expires.is_(None),
        _Instant(vm.c.expires) != _Instant(sub.c.expires),
    )


def _withheld() -> ColumnElement[bool]:
    """A paid uncopied row of a Vps-linked VM whose time moved after adoption: not copied.

    Copied, it would look settled and applied while its time (added to `vm.expires` by the
    old LNVPS) is in no subscription; finalization would then drop the only trace. Left
    uncopied it is reported on every run and blocks finalization until resolved.
    """
    return and_(_PAID == 1, sub.c.id.is_not(None), _vps_item(), _expiry_moved())


async def count_present(
    conn: AsyncConnection, shape: BillingShape, low: bytes | None, high: bytes | None
) -> tuple[int, list[Problem]]:
    """Rows of the range already in `subscription_payment`; those attached elsewhere are errors.

    §6: the reference's per-VM skip set only looked at the VM's own subscription, so an id
    already used by another subscription failed the VM. Here it is reported per payment.
    """
    base = (
        select(vp.c.id, vp.c.vm_id, sp.c.subscription_id, li.c.subscription_id.label("own"))
        .select_from(_source(shape).join(sp, sp.c.id == vp.c.id))
        .where(_in_range(low, high))
    )
    total = int(
        (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    )
    wrong = base.where(
        or_(li.c.subscription_id.is_(None), li.c.subscription_id != sp.c.subscription_id)
    )
    problems = [
        Problem(
            "phase2",
            f"payment id already exists in subscription_payment attached to subscription "
            f"{row.subscription_id}, not to this VM's subscription {row.own}",
            vm_id=int(row.vm_id),
            payment_id=bytes(row.id).hex(),
        )
        for row in (await conn.execute(wrong)).all()
    ]
    return total, problems


def _when(value: Any) -> str:
    """A stored time as the report shows it (`2026-04-29 12:00:00`, or `NULL`)."""
    if value is None:
        return "NULL"
    return str(value)[:19]


async def read_withheld(
    conn: AsyncConnection, shape: BillingShape, low: bytes | None, high: bytes | None
) -> list[Problem]:
    """The range's paid rows not copied because their VM's time moved after adoption
    (`_withheld`), one error each: what differs and how to resolve it."""
    if not shape.has_link:
        return []
    stmt = (
        select(vp.c.id, vp.c.vm_id, vm.c.expires, sub.c.id.label("sub_id"), sub.c.expires)
        .select_from(_source(shape))
        .where(_in_range(low, high), _missing(), _withheld())
    )
    return [
        Problem(
            "phase2",
            f"drift: paid, not copied yet, and the VM's legacy vm.expires "
            f"{_when(row[2])} differs from subscription {row.sub_id}'s expiry "
            f"{_when(row[4])} (adoption copied vm.expires there): the old LNVPS changed this "
            "VM after adoption (typically it settled this payment and added its time to "
            "vm.expires). Stop every "
            "old LNVPS process, set the subscription's expiry to the one it should have (the "
            "legacy one if the old LNVPS was right) or vm.expires to the subscription's, and "
            "run the backfill again; the payment is copied once both agree",
            vm_id=int(row.vm_id),
            payment_id=bytes(row.id).hex(),
        )
        for row in (await conn.execute(stmt)).all()
    ]


async def read_paid_after_copy(
    conn: AsyncConnection, low: bytes | None, high: bytes | None
) -> list[Problem]:
    """Copies of the range still unpaid whose legacy row the old LNVPS marked paid since.

    lnvps never marks a paid payment unpaid, and a payment lnvps completes itself is paid in
    its copy (only the copy changes), so `vm_payment` paid / copy unpaid is always the old
    LNVPS settling after the copy: the customer's time is only in `vm.expires`, which
    finalization drops. One error each, on every run until resolved.
    """
    stmt = (
        select(vp.c.id, vp.c.vm_id, vp.c.paid_at, vm.c.expires, sp.c.subscription_id)
        .select_from(vp.join(sp, sp.c.id == vp.c.id).outerjoin(vm, vm.c.id == vp.c.vm_id))
        .where(_in_range(low, high), _PAID == 1, type_coerce(sp.c.is_paid, Integer) == 0)
    )
    return [
        Problem(
            "phase2",
            f"drift: the old LNVPS marked this payment paid (paid_at {_when(row.paid_at)}) "
            f"after it was copied unpaid to subscription {row.subscription_id}; its time is "
            f"not in the subscription (the VM's legacy vm.expires is {_when(row[3])}). Stop "
            "every old LNVPS process, mark the copy paid like the original and, for a "
            "renewal, set the subscription's expiry to the one it should have",
            vm_id=int(row.vm_id),
            payment_id=bytes(row.id).hex(),
        )
        for row in (await conn.execute(stmt)).all()
    ]


def _needs_python(shape: BillingShape) -> ColumnElement[bool]:
    """Rows the set-wise copy cannot take as they are: params to validate, or a reason to fail."""
    return or_(
        vp.c.upgrade_params.is_not(None),
        not_(_KNOWN_TYPE),
        not_(_KNOWN_METHOD),
        not_(_linked_ok(shape)),
    )


async def read_attention_rows(
    conn: AsyncConnection, shape: BillingShape, low: bytes | None, high: bytes | None
) -> list[Any]:
    """Uncopied rows of the range that need the pure rules (upgrade_params) or will fail."""
    stmt = (
        select(
            vp.c.id,
            vp.c.vm_id,
            _TYPE.label("payment_type"),
            _METHOD.label("payment_method"),
            vp.c.time_value,
            _PAID.label("is_paid"),
            vp.c.upgrade_params,
            vm.c.id.label("vm_found"),
            _link(shape).label("link"),
            li.c.id.label("item_found"),
            type_coerce(li.c.subscription_type, Integer).label("item_type"),
        )
        .select_from(_source(shape))
        .where(_in_range(low, high), _missing(), _needs_python(shape), not_(_withheld()))
    )
    return list((await conn.execute(stmt)).all())


async def count_plain_rows(
    conn: AsyncConnection, shape: BillingShape, low: bytes | None, high: bytes | None
) -> int:
    """Uncopied rows the set-wise copy takes without help (what a dry run reports)."""
    stmt = (
        select(func.count())
        .select_from(_source(shape))
        .where(_in_range(low, high), _missing(), not_(_needs_python(shape)), not_(_withheld()))
    )
    return int((await conn.execute(stmt)).scalar_one())


def classify(
    rows: list[Any], *, dry_run_failed_vms: Collection[int] | None
) -> tuple[dict[bytes, str | None], list[Problem], list[Problem], int]:
    """Split attention rows into copyable (id → metadata), problems (not copied) and
    warnings (copied: `upgrade_params` unreadable, kept verbatim); return the failed count.

    `dry_run_failed_vms` is for a dry run, where nothing is linked yet: an unlinked VM counts
    as linked unless Phase 1 failed for it (the old tool's dry run failed them all, §8).
    Unlinked VMs' payments are reported per VM, like the reference (§5.1 step 1).
    """
    ok: dict[bytes, str | None] = {}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    unlinked: dict[int, int] = {}
    for row in rows:
        payment_id = bytes(row.id)
        if row.vm_found is None:
            problems.append(
                Problem("phase2", "payment references a missing VM", row.vm_id, payment_id.hex())
            )
            continue
        linked = bool(row.link) and row.item_found is not None
        if linked and row.item_type != int(SubscriptionType.VPS):
            problems.append(
                Problem(
                    "phase2",
                    f"VM is linked to line item {row.link} of type {row.item_type}, not 3 Vps "
                    "(B7); payment not copied",
                    row.vm_id,
                    payment_id.hex(),
                )
            )
            continue
        would_link = dry_run_failed_vms is not None and row.vm_id not in dry_run_failed_vms
        if not linked and not would_link:
            unlinked[row.vm_id] = unlinked.get(row.vm_id, 0) + 1
            continue
        try:
            mapping = map_payment(
                LegacyPaymentRow(
                    id=payment_id,
                    vm_id=int(row.vm_id),
                    payment_type=int(row.payment_type),
                    payment_method=int(row.payment_method),
                    time_value=int(row.time_value),
                    is_paid=bool(row.is_paid),
                    upgrade_params=row.upgrade_params,
                )
            )
        except LegacyDataError as exc:
            problems.append(Problem("phase2", exc.message, row.vm_id, payment_id.hex()))
            continue
        ok[payment_id] = mapping.metadata
        if mapping.metadata_problem is not None:
            message = (
                f"{mapping.metadata_problem}; copied with the text kept verbatim in "
                'metadata {"legacy_upgrade_params": …} (R3)'
            )
            warnings.append(Problem("phase2", message, row.vm_id, payment_id.hex()))
    for vm_id, count in sorted(unlinked.items()):
        problems.append(
            Problem(
                "phase2",
                f"VM has no subscription_line_item_id; {count} payment(s) not copied",
                vm_id,
            )
        )
    return ok, problems, warnings, len(rows) - len(ok)


def _time_value() -> ColumnElement[Any]:
    """SQL twin of `domain.legacy.map_time_value` (D18; a contract test checks they agree)."""
    return case(
        (vp.c.time_value > 0, vp.c.time_value),
        (and_(_TYPE.in_([int(LegacyPaymentType.UPGRADE)]), _PAID == 0), literal(0)),
        else_=null(),
    )


def _payment_type() -> ColumnElement[Any]:
    """SQL twin of `PAYMENT_TYPE_MAP` (0 → 1, 1 → 2; never 0 Purchase)."""
    return case({int(old): int(new) for old, new in PAYMENT_TYPE_MAP.items()}, value=_TYPE)


async def mark_setup(
    conn: AsyncConnection, shape: BillingShape, low: bytes | None, high: bytes | None
) -> None:
    """`is_setup = 1` for what the range shows paid, set-wise, in the transaction copying it.

    * VM subscriptions, D18 `is_setup = 1 only where the VM has a paid payment`: a subscription
      is marked set up exactly when a paid payment of its VM has been copied to it; the twin
      of `plan_vm`'s rule.
    * pre-existing non-VM subscriptions (IP range, ASN, DNS), R6: paid before the schema
      upgrade added `is_setup` with default 0, they would otherwise make their next invoice a
      Purchase and charge the setup fee again (`domain.subscription.payment_type_for`).
      Deviation from the reference, which left them at 0. See `_paid_before_upgrade`.

    Both are driven by `subscription_payment`'s own id range (its clustered order), so every
    paid row is looked at in exactly one range; a re-run finds nothing left at 0 (idempotent).
    """
    paid = [type_coerce(sp.c.is_paid, Integer) == 1]
    if low is not None:
        paid.append(sp.c.id > low)
    if high is not None:
        paid.append(sp.c.id <= high)
    # the join to vm_payment keeps it to copied legacy rows of VMs
    vm_subscriptions = (
        select(sp.c.subscription_id)
        .select_from(sp.join(vp, vp.c.id == sp.c.id))
        .where(*paid)
        .distinct()
    )
    non_vm_subscriptions = (
        select(sp.c.subscription_id)
        .select_from(sp.join(sub, sub.c.id == sp.c.subscription_id))
        .where(
            *paid,
            *_paid_before_upgrade(),
            type_coerce(sub.c.is_setup, Integer) == 0,
            none_of(select(li.c.id).where(li.c.subscription_id == sub.c.id, _vps_item())),
        )
        .distinct()
    )
    # Selected first, then one UPDATE by primary key: `UPDATE … WHERE id IN (subquery)` made
    # MariaDB run a dependent subquery per subscription row (O(subscriptions) per range).
    ids = {int(v) for v in (await conn.execute(vm_subscriptions)).scalars()}
    ids |= {int(v) for v in (await conn.execute(non_vm_subscriptions)).scalars()}
    if ids:
        await conn.execute(
            update(sub)
            .where(sub.c.id.in_(sorted(ids)), type_coerce(sub.c.is_setup, Integer) == 0)
            .values(is_setup=True)
        )


def _paid_before_upgrade() -> list[ColumnElement[bool]]:
    """A Purchase or Renewal row that existed before the schema upgrade (schema.md §9).

    The upgrade added `time_value` and `metadata` as NULL to the rows already there, and
    every payment lnvps writes carries its quote in `metadata`. So a later payment is never
    taken for a legacy one: in particular not one that was paid but bought nothing (booked
    as account credit, `is_setup` rightly left at 0), whose subscription stays as it is.
    """
    time_buying = [int(SubscriptionPaymentType.PURCHASE), int(SubscriptionPaymentType.RENEWAL)]
    return [
        type_coerce(sp.c.payment_type, Integer).in_(time_buying),
        sp.c.time_value.is_(None),
        sp.c.metadata.is_(None),
    ]


async def copy_range(
    conn: AsyncConnection,
    shape: BillingShape,
    low: bytes | None,
    high: bytes | None,
    with_metadata: dict[bytes, str | None],
    *,
    guard: bool = True,
) -> int:
    """One `INSERT … SELECT … WHERE NOT EXISTS` for the range; returns rows copied.

    Takes every uncopied row of a Vps-linked VM with known codes and no upgrade_params, plus
    the validated upgrade rows in `with_metadata` (their metadata bound as plain text).
    `guard=False` drops the NOT EXISTS when the caller saw no copy in the range: the
    self-referencing insert makes MariaDB buffer the select in a temporary table. The unique
    index on `subscription_payment.id` still refuses a duplicate, and the caller then retries
    with the guard.
    """
    extra = list(with_metadata)
    plain = and_(vp.c.upgrade_params.is_(None), _KNOWN_TYPE, _KNOWN_METHOD)
    allowed = or_(plain, vp.c.id.in_(extra)) if extra else plain
    columns = [vp.c[name] for name in RAW_COLUMNS]
    query = (
        select(
            *columns,
            li.c.subscription_id,
            vm.c.user_id,
            _payment_type(),
            _time_value(),
            null(),
        )
        .select_from(
            vp.join(vm, vm.c.id == vp.c.vm_id)
            .join(li, li.c.id == _link(shape))
            .join(sub, sub.c.id == li.c.subscription_id)
        )
        .where(_in_range(low, high), _vps_item(), allowed, not_(_withheld()))
    )
    if guard:
        query = query.where(_missing())
    target = [*RAW_COLUMNS, "subscription_id", "user_id", "payment_type", "time_value", "metadata"]
    result = await conn.execute(insert(sp).from_select(target, query))
    await _set_metadata(conn, with_metadata)
    return int(result.rowcount)


async def _set_metadata(conn: AsyncConnection, with_metadata: dict[bytes, str | None]) -> None:
    """Fill `metadata` of the rows just copied, one UPDATE per distinct value.

    Same transaction as the copy, so no row is ever visible without its metadata. Grouping by
    value keeps every statement the same shape (an expanding IN), so the compiled-statement
    cache stays small and memory does not grow with the table (a per-id CASE did).
    """
    by_value: dict[str, list[bytes]] = {}
    for payment_id, value in with_metadata.items():
        if value is not None:
            by_value.setdefault(value, []).append(payment_id)
    for value, ids in by_value.items():
        await conn.execute(
            update(sp)
            .where(sp.c.id.in_(ids), sp.c.metadata.is_(None))
            .values({sp.c.metadata: literal(value, String())})
        )
