"""The pure legacy-billing mapping rules (legacy_migration.md §4–5, D18)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import (
    IntervalType,
    LegacyPaymentType,
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
)
from domain.legacy import (
    MAX_KEPT_PROBLEMS,
    BackfillReport,
    InvalidUpgradeParams,
    LegacyDataError,
    LegacyPaymentRow,
    LegacyVm,
    Problem,
    VmPlan,
    map_payment,
    map_payment_type,
    map_time_value,
    plan_vm,
    upgrade_params_to_metadata,
)
from domain.lifecycle import never_paid_cleanup_due
from domain.model import Subscription, SubscriptionPayment
from domain.subscription import apply_paid_payment
from domain.upgrade import InvalidUpgradeConfig, UpgradeConfig

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
RENEWAL, UPGRADE = LegacyPaymentType.RENEWAL, LegacyPaymentType.UPGRADE


def legacy_vm(**changes: object) -> LegacyVm:
    values: dict[str, object] = {
        "id": 7,
        "user_id": 3,
        "deleted": False,
        "auto_renewal_enabled": True,
        "expires": NOW + timedelta(days=9),
        "created": NOW - timedelta(days=400),
        "company_id": 1,
        "company_base_currency": "EUR",
        "template_id": 2,
        "custom_template_id": None,
        "template_name": "Tiny",
        "plan_amount": 500,
        "plan_currency": "EUR",
        "plan_interval_amount": 1,
        "plan_interval_type": 1,
        "has_paid_payment": True,
    }
    values.update(changes)
    return LegacyVm(**values)  # type: ignore[arg-type]


# --- payment type ---------------------------------------------------------------------------
def test_payment_type_renewal_maps_to_1_and_upgrade_to_2_never_purchase() -> None:
    assert map_payment_type(0) is SubscriptionPaymentType.RENEWAL
    assert map_payment_type(1) is SubscriptionPaymentType.UPGRADE


@pytest.mark.parametrize("code", [2, 3, 4, 65535])
def test_unknown_legacy_payment_type_is_an_error(code: int) -> None:
    with pytest.raises(LegacyDataError, match="payment_type"):
        map_payment_type(code)


# --- time_value (§5.2 + D18) ----------------------------------------------------------------
@pytest.mark.parametrize("kind", [RENEWAL, UPGRADE])
@pytest.mark.parametrize("paid", [True, False])
def test_positive_time_value_is_copied(kind: LegacyPaymentType, paid: bool) -> None:
    assert map_time_value(2_592_000, kind, paid) == 2_592_000


def test_pending_upgrade_keeps_time_value_zero_not_null() -> None:
    """D18 / R4: NULL would extend a late-completed upgrade by a whole interval."""
    assert map_time_value(0, UPGRADE, False) == 0


def test_paid_upgrade_with_zero_time_value_becomes_null() -> None:
    assert map_time_value(0, UPGRADE, True) is None


@pytest.mark.parametrize("paid", [True, False])
def test_renewal_with_zero_time_value_becomes_null(paid: bool) -> None:
    assert map_time_value(0, RENEWAL, paid) is None


def test_negative_time_value_is_an_error() -> None:
    with pytest.raises(LegacyDataError):
        map_time_value(-1, RENEWAL, True)


# --- upgrade_params → metadata (R3) ---------------------------------------------------------
def test_null_upgrade_params_give_null_metadata() -> None:
    assert upgrade_params_to_metadata(None) is None


def test_valid_params_are_compact_with_sorted_keys() -> None:
    text = '{"new_memory":4294967296,"new_cpu":4,"new_disk":1}'
    assert upgrade_params_to_metadata(text) == (
        '{"new_cpu":4,"new_disk":1,"new_memory":4294967296}'
    )


def test_whitespace_heavy_params_are_normalised() -> None:
    text = '\n  {  "new_cpu" :\t4 ,\r\n "new_memory"  : 8589934592 }  \n'
    assert upgrade_params_to_metadata(text) == '{"new_cpu":4,"new_memory":8589934592}'


def test_null_values_and_empty_object_are_kept() -> None:
    assert upgrade_params_to_metadata('{"new_cpu":null}') == '{"new_cpu":null}'
    assert upgrade_params_to_metadata("{}") == "{}"


@pytest.mark.parametrize(
    "text",
    [
        "{new_cpu: 4",
        "",
        "   ",
        "not json",
        "[1,2]",
        '"text"',
        "4",
        "null",
        '{"new_cpu": 4.5}',
        '{"new_cpu": 4.0}',
        '{"new_cpu": -1}',
        '{"new_cpu": 65536}',
        '{"new_memory": 18446744073709551616}',
        '{"new_cpu": true}',
        '{"new_cpu": "4"}',
        '{"cpu": 4}',
        '{"new_cpu": 4, "new_cpu": 8}',
        '{"new_cpu": NaN}',
        '{"new_disk": Infinity}',
    ],
)
def test_invalid_params_are_reported_never_dropped(text: str) -> None:
    """D18: the reference turned these into NULL silently."""
    with pytest.raises(InvalidUpgradeParams):
        upgrade_params_to_metadata(text)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "new_cpu": st.integers(0, 2**16 - 1) | st.none(),
            "new_memory": st.integers(0, 2**64 - 1),
            "new_disk": st.integers(0, 2**64 - 1),
        },
    )
)
def test_any_valid_upgrade_config_round_trips(config: dict[str, int | None]) -> None:
    out = upgrade_params_to_metadata(json.dumps(config, indent=3))
    assert out is not None
    assert json.loads(out) == config
    assert out == json.dumps(config, sort_keys=True, separators=(",", ":"))


def test_map_payment_combines_the_rules() -> None:
    row = LegacyPaymentRow(
        id=b"\x01" * 32,
        vm_id=7,
        payment_type=1,
        payment_method=1,
        time_value=0,
        is_paid=False,
        upgrade_params='{"new_cpu": 2}',
    )
    mapped = map_payment(row)
    assert mapped.payment_type is SubscriptionPaymentType.UPGRADE
    assert mapped.time_value == 0
    assert mapped.metadata == '{"new_cpu":2}'


@pytest.mark.parametrize("params", ["", "{new_cpu: 4", '{"cpu": 4}', '{"new_cpu": 1.5}'])
def test_map_payment_keeps_a_payment_with_unreadable_params_and_reports_why(params: str) -> None:
    """R3/D18: a money record is never held back for its upgrade_params: the text kept
    verbatim in its metadata (finalization drops vm_payment, its only other copy) and the
    reason, for the report (the backfill counted it as an error and refused to start)."""
    row = LegacyPaymentRow(
        id=b"\x01" * 32,
        vm_id=7,
        payment_type=1,
        payment_method=0,
        time_value=0,
        is_paid=True,
        upgrade_params=params,
    )
    mapped = map_payment(row)
    assert mapped.payment_type is SubscriptionPaymentType.UPGRADE
    assert mapped.metadata is not None and mapped.time_value is None
    assert json.loads(mapped.metadata) == {"legacy_upgrade_params": params}
    assert mapped.metadata_problem is not None and "upgrade_params" in mapped.metadata_problem


def test_unreadable_legacy_params_are_never_read_as_an_upgrade_config() -> None:
    """An upgrade completed late (Revolut webhook, admin) reports "paid but not applied", as
    with the NULL metadata the reference stored, instead of reading no change at all."""
    mapped = map_payment(
        LegacyPaymentRow(
            id=b"\x01" * 32,
            vm_id=7,
            payment_type=1,
            payment_method=0,
            time_value=0,
            is_paid=False,
            upgrade_params="{new_cpu: 4",
        )
    )
    assert mapped.metadata is not None
    for stored in (mapped.metadata, json.loads(mapped.metadata)):
        with pytest.raises(InvalidUpgradeConfig, match="legacy upgrade_params"):
            UpgradeConfig.from_json(stored)


def test_map_payment_rejects_unknown_method() -> None:
    row = LegacyPaymentRow(
        id=b"\x01" * 32,
        vm_id=7,
        payment_type=0,
        payment_method=9,
        time_value=1,
        is_paid=True,
        upgrade_params=None,
    )
    with pytest.raises(LegacyDataError, match="payment_method"):
        map_payment(row)


# --- subscription for a VM (§4.2–4.4) -------------------------------------------------------
def test_standard_vm_takes_interval_and_amount_from_the_cost_plan() -> None:
    plan = plan_vm(legacy_vm(plan_interval_amount=3, plan_interval_type=2), NOW)
    sub = plan.subscription
    assert (sub.interval_amount, sub.interval_type) == (3, IntervalType.YEAR)
    assert sub.name == "VM 7 Subscription"
    assert sub.description == "Tiny (VM 7)"
    assert sub.currency == "EUR" and sub.company_id == 1
    assert plan.line_item.name == "Tiny (VM 7)"
    assert plan.line_item.amount == 500
    assert plan.line_item.subscription_type is SubscriptionType.VPS
    assert plan.line_item.setup_amount == 0 and plan.line_item.description is None
    assert sub.setup_fee == 0 and sub.external_id is None


def test_custom_vm_is_one_month_with_amount_zero() -> None:
    plan = plan_vm(legacy_vm(template_id=None, custom_template_id=5, template_name=None), NOW)
    assert (plan.subscription.interval_amount, plan.subscription.interval_type) == (
        1,
        IntervalType.MONTH,
    )
    assert plan.subscription.description == "Custom VM 7"
    assert plan.line_item.amount == 0


def test_template_wins_over_custom_template() -> None:
    plan = plan_vm(legacy_vm(custom_template_id=5), NOW)
    assert plan.subscription.description == "Tiny (VM 7)"


def test_vm_with_neither_template_is_linked_with_a_warning() -> None:
    """R8 decided: such a VM must not block start-up forever; it is linked without a price."""
    plan = plan_vm(legacy_vm(template_id=None, custom_template_id=None), NOW)
    assert plan.subscription.description == "VM 7 (no template)"
    assert (plan.subscription.interval_amount, plan.subscription.interval_type) == (
        1,
        IntervalType.MONTH,
    )
    assert plan.line_item.amount == 0
    assert any("neither template_id nor custom_template_id" in w for w in plan.warnings)


def test_expires_and_auto_renew_are_copied_exactly() -> None:
    """B2: the reference once wrote NULL / false here."""
    expires = datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC)
    plan = plan_vm(legacy_vm(expires=expires, auto_renewal_enabled=True), NOW)
    assert plan.subscription.expires == expires
    assert plan.subscription.auto_renewal_enabled is True
    plan = plan_vm(legacy_vm(auto_renewal_enabled=False), NOW)
    assert plan.subscription.auto_renewal_enabled is False


def test_null_expires_is_an_error_not_a_subscription_without_lifecycle() -> None:
    with pytest.raises(LegacyDataError, match="no expires"):
        plan_vm(legacy_vm(expires=None), NOW)


@pytest.mark.parametrize("deleted", [True, False])
def test_is_active_is_not_deleted(deleted: bool) -> None:
    assert plan_vm(legacy_vm(deleted=deleted), NOW).subscription.is_active is (not deleted)


@pytest.mark.parametrize("paid", [True, False])
def test_is_setup_only_with_a_paid_payment(paid: bool) -> None:
    assert plan_vm(legacy_vm(has_paid_payment=paid), NOW).subscription.is_setup is paid


def _subscription_of(plan: VmPlan) -> Subscription:
    """The subscription row as the backfill writes it, read back as the domain sees it."""
    planned = attrs.asdict(plan.subscription, recurse=False)
    return Subscription(id=1, **planned)


def test_a_never_paid_order_is_adopted_without_expiry_and_cleaned_up_after_an_hour() -> None:
    """Review r2: LNVPS marks an order never paid with `expires == created`. Copying that
    expiry made it look given time (`in_service`), so D17 never deleted it and the expiry
    lifecycle told its user "Expired" and "Cancelled"; it is adopted as a never-paid order."""
    ordered = NOW - timedelta(minutes=30)
    plan = plan_vm(legacy_vm(created=ordered, expires=ordered, has_paid_payment=False), NOW)
    sub = _subscription_of(plan)
    assert (sub.expires, sub.is_setup, sub.is_active) == (None, False, True)
    assert not sub.in_service
    assert not never_paid_cleanup_due(sub, False, NOW)  # within its hour
    assert not never_paid_cleanup_due(sub, True, NOW + timedelta(hours=2))  # invoice pending
    assert never_paid_cleanup_due(sub, False, NOW + timedelta(hours=2))  # D17


@pytest.mark.parametrize(
    "changes",
    [
        {"has_paid_payment": True},  # a paid payment: a real VM, whatever its dates
        {"expires": NOW - timedelta(days=1) + timedelta(seconds=1)},  # paid for a second
        {"created": None},  # no creation time: no mark to go by
    ],
    ids=["paid", "expiry-after-created", "no-created"],
)
def test_only_the_unpaid_order_mark_drops_the_expiry(changes: dict[str, Any]) -> None:
    created = NOW - timedelta(days=1)
    values: dict[str, Any] = {"created": created, "expires": created, "has_paid_payment": False}
    vm = legacy_vm(**{**values, **changes})
    plan = plan_vm(vm, NOW)
    assert plan.subscription.expires == vm.expires
    sub = _subscription_of(plan)
    assert sub.in_service and not never_paid_cleanup_due(sub, False, NOW + timedelta(days=9))


def test_created_is_the_vm_created_time_else_now() -> None:
    created = NOW - timedelta(days=400)
    assert plan_vm(legacy_vm(created=created), NOW).subscription.created == created
    assert plan_vm(legacy_vm(created=None), NOW).subscription.created == NOW


def test_missing_company_is_an_error() -> None:
    with pytest.raises(LegacyDataError, match="company"):
        plan_vm(legacy_vm(company_id=None, company_base_currency=None), NOW)


def test_dangling_template_is_an_error() -> None:
    with pytest.raises(LegacyDataError, match="template 2"):
        plan_vm(legacy_vm(template_name=None, plan_amount=None), NOW)


def test_unknown_interval_code_is_an_error() -> None:
    with pytest.raises(LegacyDataError, match="interval_type"):
        plan_vm(legacy_vm(plan_interval_type=9), NOW)


@pytest.mark.parametrize(("unit", "amount"), [(0, 36_501), (1, 1_201), (2, 101), (1, 0)])
def test_a_plan_interval_outside_its_units_bounds_is_an_error(unit: int, amount: int) -> None:
    """Not migrated into a subscription no renewal or lifecycle run could handle."""
    with pytest.raises(LegacyDataError, match="cost plan interval"):
        plan_vm(legacy_vm(plan_interval_type=unit, plan_interval_amount=amount), NOW)
    assert plan_vm(legacy_vm(plan_interval_type=2, plan_interval_amount=100), NOW)


def test_plan_currency_mismatch_stores_zero_and_warns() -> None:
    """R7: never store an amount in a currency the subscription does not state."""
    plan = plan_vm(legacy_vm(plan_currency="USD"), NOW)
    assert plan.subscription.currency == "EUR"
    assert plan.line_item.amount == 0
    assert any("R7" in w for w in plan.warnings)
    assert plan_vm(legacy_vm(plan_currency="eur"), NOW).line_item.amount == 500


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(Exception, match="UTC"):
        plan_vm(legacy_vm(), datetime(2026, 1, 1))  # noqa: DTZ001


def test_log_line_uses_the_reference_30_day_month() -> None:
    line = plan_vm(legacy_vm(plan_interval_amount=2), NOW).log_line()
    assert line == "VM 7 → subscription (2 month(s), time_value=5184000s, amount=500)"


# --- report ---------------------------------------------------------------------------------
def test_report_is_ok_only_without_errors_and_summarises() -> None:
    report = BackfillReport(dry_run=False, vms_linked=3, payments_copied=5)
    assert report.ok
    report.add_warning(Problem("phase1", "careful", vm_id=1))
    assert report.ok
    report.add_error(Problem("phase2", "bad params", vm_id=2, payment_id="ab"))
    assert not report.ok
    text = report.summary()
    assert "FAILED" in text and "3 VMs linked" in text and "5 payments copied" in text
    assert "[phase2 VM 2 payment ab] bad params" in text
    assert "warning [phase1 VM 1] careful" in text


def test_dry_run_summary_says_nothing_was_written() -> None:
    text = BackfillReport(dry_run=True, vms_linked=2).summary()
    assert "DRY RUN" in text and "2 VMs would link" in text


def test_report_memory_is_bounded_but_counts_everything() -> None:
    report = BackfillReport(dry_run=False)
    for i in range(MAX_KEPT_PROBLEMS + 5):
        report.add_error(Problem("phase1", "x", vm_id=i))
    assert report.error_count == MAX_KEPT_PROBLEMS + 5
    assert len(report.errors) == MAX_KEPT_PROBLEMS
    assert "5 more errors not shown" in report.summary()


# --- R4: what completing a migrated pending invoice does (with domain.subscription) ----------
def _migrated(time_value: int, kind: LegacyPaymentType, expires: datetime) -> tuple[Any, Any]:
    sub = Subscription(
        id=1,
        user_id=3,
        company_id=1,
        name="VM 7 Subscription",
        created=NOW - timedelta(days=400),
        currency="EUR",
        expires=expires,
        is_active=True,
        is_setup=True,
    )
    payment = SubscriptionPayment(
        id=b"\x02" * 32,
        subscription_id=1,
        user_id=3,
        created=NOW - timedelta(days=1),
        expires=NOW - timedelta(hours=23),
        amount=100,
        currency="EUR",
        payment_method=PaymentMethod.REVOLUT,
        payment_type=map_payment_type(kind),
        external_data="{}",
        rate=Decimal(1),
        time_value=map_time_value(time_value, kind, False),
    )
    return sub, payment


def test_r4_late_completed_migrated_upgrade_does_not_extend() -> None:
    """time_value 0 (not NULL, D18) and D12: a whole interval is never given away."""
    expires = NOW + timedelta(days=5)
    sub, payment = _migrated(0, UPGRADE, expires)
    assert payment.time_value == 0
    assert apply_paid_payment(sub, payment, NOW).expires == expires


def test_r4_late_completed_migrated_renewal_extends_from_max_expires_now() -> None:
    """The legacy rule was vm.expires + time_value; the new one counts from max(expires, now)."""
    lapsed = NOW - timedelta(days=10)
    sub, payment = _migrated(2_592_000, RENEWAL, lapsed)
    assert apply_paid_payment(sub, payment, NOW).expires == NOW + timedelta(seconds=2_592_000)
    future = NOW + timedelta(days=10)
    sub, payment = _migrated(2_592_000, RENEWAL, future)
    assert apply_paid_payment(sub, payment, NOW).expires == future + timedelta(seconds=2_592_000)
