"""Upgrades: quote refuses downgrades (D8), payments never reused, paying keeps expiry (D12),
rivals expired and cancelled at their own provider (D13), the paid spec applied once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest

from app.billing.errors import NoRoomToUpgrade, NothingToUpgrade, VmNotFound
from app.billing.upgrades import apply_upgrade, create_upgrade_payment, quote_upgrade
from domain.enums import IntervalType, PaymentMethod, SubscriptionPaymentType, VmHistoryActionType
from domain.errors import DowngradeRefused, SpecOutOfLimits
from domain.model import GIB, SubscriptionPayment, Vm
from domain.upgrade import AlreadyExpired, NoExpiry, UpgradeConfig, UpgradeQuote
from ports.jobs import ProcessVmUpgrade
from tests.unit.billing.world import BOB, Shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)


async def _paid_custom(shop: Shop) -> Vm:
    vm = await shop.order_custom()  # 2 CPU, 4 GiB, 80 GiB: EUR 48.00 a month
    await shop.complete(await shop.renew(vm))
    return vm


async def _quote(shop: Shop, vm: Vm, cfg: UpgradeConfig, **kw: object) -> UpgradeQuote:
    kw.setdefault("user_id", vm.user_id)
    return await quote_upgrade(shop.factory, shop.clock, shop.rates, vm_id=vm.id, cfg=cfg, **kw)  # type: ignore[arg-type]


async def _pay_for(
    shop: Shop, vm: Vm, cfg: UpgradeConfig, method: PaymentMethod = PaymentMethod.LIGHTNING
) -> SubscriptionPayment:
    return await create_upgrade_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        user_id=vm.user_id,
        vm_id=vm.id,
        cfg=cfg,
        method=method,
    )


async def test_the_quote_refuses_a_downgrade(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    for cfg in (UpgradeConfig(new_cpu=1), UpgradeConfig(new_cpu=4, new_disk=40 * GIB)):
        with pytest.raises(DowngradeRefused) as err:
            await _quote(shop, vm, cfg)
        assert err.value.kind == "bad_input"


async def test_the_quote_refuses_nothing_to_do_and_specs_beyond_the_limits(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    with pytest.raises(NothingToUpgrade):
        await _quote(shop, vm, UpgradeConfig(new_cpu=2))
    with pytest.raises(SpecOutOfLimits):
        await _quote(shop, vm, UpgradeConfig(new_cpu=9))


async def test_the_quote_prorates_over_the_calendar_month_ending_at_expiry(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    quote = await _quote(shop, vm, UpgradeConfig(new_cpu=4))
    # 28 days left of the month 28 Jan → 28 Feb (31 days, D7); EUR 48.00 → EUR 52.00; each
    # side exact (1 cent = 10 000 msat here), the difference rounded once: 361.29… cents =
    # 3 612 903.2 msat → 3 613 000; the discount shown, 4335.48… cents, rounded on its own
    new, old = Fraction(5200 * 28, 31) * 10_000, Fraction(4800 * 28, 31) * 10_000

    def d2(msat: Fraction) -> int:  # half up to a msat, then up to a whole sat
        return -(-int(msat + Fraction(1, 2)) // 1000) * 1000

    assert quote.upgrade.money.amount == d2(new - old) == 3_613_000
    assert quote.renewal.money.amount == 52_000_000
    assert quote.discount.money.amount == d2(old) == 43_355_000


async def test_never_paid_expired_or_foreign_vms_cannot_be_quoted(shop: Shop) -> None:
    unpaid = await shop.order_custom()
    with pytest.raises(NoExpiry):
        await _quote(shop, unpaid, UpgradeConfig(new_cpu=4))
    vm = await _paid_custom(shop)
    with pytest.raises(VmNotFound):
        await _quote(shop, vm, UpgradeConfig(new_cpu=4), user_id=BOB)
    shop.clock.set(FEB_28)
    with pytest.raises(AlreadyExpired):
        await _quote(shop, vm, UpgradeConfig(new_cpu=4))


async def test_upgrade_payments_are_never_reused(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    cfg = UpgradeConfig(new_cpu=4)
    first, second = await _pay_for(shop, vm, cfg), await _pay_for(shop, vm, cfg)
    assert first.id != second.id
    for p in (first, second):
        assert p.payment_type is SubscriptionPaymentType.UPGRADE
        assert (p.time_value, p.tax, p.processing_fee) == (0, 0, 0)
        sub = await shop.subscription(vm)
        assert sub.expires is not None
        assert p.metadata == {
            "new_cpu": 4,
            "new_memory": None,
            "new_disk": None,
            "quoted_expires": sub.expires.isoformat(),  # the expiry its price runs to
            "quoted_prices": {  # the prices its charge was computed from (D23)
                "old": {"currency": "EUR", "amount": 4800},
                "old_interval": [int(IntervalType.MONTH), 1],
                "new": {"currency": "EUR", "amount": 5200},
            },
            "rates": {"EUR": "100000", "USD": "100000"},  # those it saw, for credit/invoices
            "reverse_charge": False,  # as quoted, for the invoice
        }


async def test_paying_an_upgrade_keeps_expiry_and_cancels_rivals_at_their_own_provider(
    shop: Shop,
) -> None:
    vm = await _paid_custom(shop)
    shop.queue.sent.clear()
    shop.clock.advance(timedelta(days=1))
    winner = await _pay_for(shop, vm, UpgradeConfig(new_cpu=4))
    rival_ln = await _pay_for(shop, vm, UpgradeConfig(new_cpu=8))
    rival_card = await _pay_for(shop, vm, UpgradeConfig(new_cpu=6), PaymentMethod.REVOLUT)
    renewal = await shop.renew(vm)  # quoted at the old price: stale once the upgrade applies
    report = await shop.complete(winner)

    assert report.completed and report.problems == ()
    sub = await shop.subscription(vm)
    assert sub.expires == FEB_28 and sub.is_active  # D12
    now = shop.clock.now()
    for rival in (rival_ln, rival_card):
        assert (await shop.payment(rival.id)).expires == now
    # D13: each at its own provider; D23: the renewal quoted at the old price too
    assert shop.node.cancelled == [rival_ln.id, renewal.id]
    assert shop.revolut.cancelled == [rival_card.external_id]
    assert set(report.cancelled) == {rival_ln.id, rival_card.id, renewal.id}
    assert (await shop.payment(renewal.id)).expires == now

    config = UpgradeConfig(new_cpu=4)
    assert shop.queue.sent == [ProcessVmUpgrade(vm_id=vm.id, config=config)]
    async with shop.factory() as uow:
        assert vm.custom_template_id is not None
        spec = await uow.custom_templates.get(vm.custom_template_id)
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert spec is not None and spec.cpu == 4
    assert item is not None and item.amount == 5200
    [changed] = await shop.history(vm, VmHistoryActionType.CONFIGURATION_CHANGED)
    assert changed.metadata["upgrade_type"] == "custom_template_update"
    assert changed.metadata["new_specs"]["cpu"] == 4


async def test_paying_an_upgrade_of_a_lapsed_vm_does_not_revive_it(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    shop.clock.set(FEB_28 - timedelta(minutes=5))
    payment = await _pay_for(shop, vm, UpgradeConfig(new_cpu=4))
    shop.clock.set(FEB_28 + timedelta(days=1))
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None
        await uow.subscriptions.update(attrs.evolve(sub, is_active=False))
        await uow.commit()
    assert (await shop.complete(payment)).completed
    sub = await shop.subscription(vm)
    assert (sub.expires, sub.is_active) == (FEB_28, False)


async def test_a_standard_vm_is_converted_to_a_custom_one_when_the_upgrade_is_paid(
    shop: Shop,
) -> None:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    cfg = UpgradeConfig(new_cpu=4)
    report = await shop.complete(await _pay_for(shop, vm, cfg))
    assert report.problems == ()
    converted = await shop.vm(vm.id)
    assert converted.template_id is None and converted.custom_template_id is not None
    sub = await shop.subscription(vm)
    assert (sub.interval_type, sub.interval_amount, sub.expires) == (IntervalType.MONTH, 1, FEB_28)
    async with shop.factory() as uow:
        spec = await uow.custom_templates.get(converted.custom_template_id)
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert spec is not None and (spec.cpu, spec.memory, spec.disk_size) == (4, 2 * GIB, 64 * GIB)
    assert item is not None and item.amount == 4 * 200 + 2 * 100 + 64 * 50
    assert item.configuration == {"new_cpu": 4, "new_memory": None, "new_disk": None}
    # applying the same config again (the worker's job) changes nothing
    assert await apply_upgrade(shop.factory, shop.clock, vm_id=vm.id, cfg=cfg) is None
    assert len(await shop.history(vm, VmHistoryActionType.CONFIGURATION_CHANGED)) == 1


async def test_a_conversion_into_a_pricing_of_another_currency_bills_in_that_currency(
    shop: Shop,
) -> None:
    async with shop.factory() as uow:
        pricing = await uow.custom_pricing.get(1)
        assert pricing is not None
        await uow.custom_pricing.update(attrs.evolve(pricing, currency="USD"))
        await uow.commit()
    vm = await shop.order()
    await shop.complete(await shop.renew(vm, method=PaymentMethod.REVOLUT))
    upgrade = await _pay_for(shop, vm, UpgradeConfig(new_cpu=4), PaymentMethod.REVOLUT)
    assert upgrade.currency == "USD"
    assert (await shop.complete(upgrade)).problems == ()
    assert (await shop.subscription(vm)).currency == "USD"
    renewal = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    assert (renewal.currency, renewal.amount) == ("USD", 4200)


async def test_apply_refuses_a_stale_downgrade(shop: Shop) -> None:
    vm = await _paid_custom(shop)
    await apply_upgrade(shop.factory, shop.clock, vm_id=vm.id, cfg=UpgradeConfig(new_cpu=6))
    with pytest.raises(DowngradeRefused):
        await apply_upgrade(shop.factory, shop.clock, vm_id=vm.id, cfg=UpgradeConfig(new_cpu=4))


async def _host_room(shop: Shop, vm: Vm, *, cpu: int, disk: int) -> None:
    """The VM's host sized to `cpu` cores and its disk to `disk` bytes, load factors 1."""
    async with shop.factory() as uow:
        host = await uow.hosts.get(vm.host_id)
        disk_row = await uow.host_disks.get(vm.disk_id)
        assert host is not None and disk_row is not None
        await uow.hosts.update(
            attrs.evolve(host, cpu=cpu, load_cpu=Decimal(1), load_disk=Decimal(1))
        )
        await uow.host_disks.update(attrs.evolve(disk_row, size=disk))
        await uow.commit()


async def test_an_upgrade_the_host_has_no_room_for_is_not_quoted_nor_invoiced(
    shop: Shop,
) -> None:
    """The host's capacity holds the VM's 2 cores and 80 GiB and one more core, 20 GiB more:
    a growth within that is quoted; beyond it is refused (422) before any invoice exists."""
    vm = await _paid_custom(shop)  # 2 CPU, 4 GiB, 80 GiB
    await _host_room(shop, vm, cpu=3, disk=100 * GIB)
    assert (await _quote(shop, vm, UpgradeConfig(new_cpu=3))).upgrade.money.amount > 0
    assert (await _quote(shop, vm, UpgradeConfig(new_disk=100 * GIB))).upgrade.money.amount > 0
    for cfg in (UpgradeConfig(new_cpu=4), UpgradeConfig(new_disk=101 * GIB)):
        with pytest.raises(NoRoomToUpgrade) as err:
            await _quote(shop, vm, cfg)
        assert err.value.kind == "unprocessable"
        with pytest.raises(NoRoomToUpgrade):
            await _pay_for(shop, vm, cfg)
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None
        payments = await uow.payments.list_by_subscription(sub.id, 50)
    kinds = {p.payment_type for p in payments.items}
    assert SubscriptionPaymentType.UPGRADE not in kinds


async def test_room_taken_by_another_vm_on_the_host_refuses_the_upgrade(shop: Shop) -> None:
    """What the host's other VMs hold counts: a second VM takes the core that was free."""
    vm = await _paid_custom(shop)
    await _host_room(shop, vm, cpu=5, disk=1000 * GIB)
    await _quote(shop, vm, UpgradeConfig(new_cpu=3))
    await _paid_custom(shop)  # 2 more cores held: 4 of 5
    await _quote(shop, vm, UpgradeConfig(new_cpu=3))
    with pytest.raises(NoRoomToUpgrade):
        await _quote(shop, vm, UpgradeConfig(new_cpu=4))


async def test_a_vm_that_cannot_be_upgraded_says_why_even_on_a_full_host(shop: Shop) -> None:
    """The quote's own refusals come first: the room is judged last."""
    unpaid = await shop.order_custom()
    vm = await _paid_custom(shop)
    await _host_room(shop, vm, cpu=4, disk=160 * GIB)  # both VMs' 2 cores: full
    with pytest.raises(NoExpiry):
        await _quote(shop, unpaid, UpgradeConfig(new_cpu=4))
    with pytest.raises(NoRoomToUpgrade):
        await _quote(shop, vm, UpgradeConfig(new_cpu=4))
    shop.clock.set(FEB_28)
    with pytest.raises(AlreadyExpired):
        await _quote(shop, vm, UpgradeConfig(new_cpu=4))
