"""A refund closes its period to every auto-renewal retry, not only the first attempt (review
r13a): a first attempt of period P that failed before its wallet was asked, a manual renewal,
then a refund by hand from P (expiry back to P) must not let a retry buy P back."""

from __future__ import annotations

from datetime import timedelta

from app.admin.manual_refund import refund_by_hand
from app.lifecycle_codes import auto_renew_code, auto_renew_failed_code
from domain.enums import PaymentMethod
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_auto_renewal_retry import RUN, _marks, _renewals, _set_up
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world


async def test_a_refund_back_to_a_failed_period_is_not_renewed_by_a_retry(world: World) -> None:
    vm, sub, rates, wallet = await _set_up(world)
    period = sub.expires
    assert period is not None
    world.at(period - timedelta(hours=20))
    rates.down = True
    await world.lifecycle(runs=2, step=RUN)  # first attempt fails before the wallet: deferred
    assert set(await _marks(world, sub)) == {auto_renew_code(0), auto_renew_failed_code(0)}
    rates.down = False
    # the user renews by hand at once (before the retry is due): expiry P + 1 month
    await world.complete(await world.renew(vm))
    renewed = (await world.sub(vm)).expires
    assert renewed is not None and renewed > period
    # the admin refunds the extra month by hand: the service ends at P, "without renewal"
    await refund_by_hand(
        world.shop.factory,
        world.shop.rates,
        world.shop.clock,
        world.queue,
        vm_id=vm.id,
        method=PaymentMethod.REVOLUT,
        from_date=period,
        lightning_invoice=None,
        admin_id=ALICE,
        reason="leaving",
    )
    assert (await world.sub(vm)).expires == period
    before = len(await _renewals(world, vm))
    await world.lifecycle(runs=20, step=RUN)  # 10 minutes: past the 5-minute retry
    after = await _renewals(world, vm)
    paid = [p for p in after[before:] if p.is_paid]
    assert wallet.asked == [] and paid == [], (wallet.asked, (await world.sub(vm)).expires)
