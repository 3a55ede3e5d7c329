"""PaymentCompleted: published after the booking commits; a lost event is made good by the
worker's VM check, and a failing subscriber neither undoes the payment nor stops the others."""

from __future__ import annotations

from app.billing.completion import complete_payment
from app.billing.payment_completed import Reactions, cancel_expired_payments
from domain.enums import VmHistoryActionType as H
from domain.events import PaymentCompleted
from tests.unit.worker.world import World


async def _complete_and_die(world: World, payment_id: bytes) -> PaymentCompleted:
    """The booking commits, then the process dies before any subscriber ran."""
    report = await complete_payment(
        world.shop.factory,
        world.clock,
        world.shop.rails,
        world.queue,
        payment_id=payment_id,
        subscribers=(),
    )
    assert report.completed and report.jobs == () and report.event is not None
    return report.event


async def test_the_event_names_the_paid_vm_and_the_subscription_as_booked(world: World) -> None:
    vm = await world.shop.order()
    invoice = await world.renew(vm)
    event = await _complete_and_die(world, invoice.id)
    sub = await world.sub(vm)
    assert event.paid_vm_ids == (vm.id,) and event.upgrades == ()
    assert event.subscription == sub and sub.is_setup
    assert event.payment.id == invoice.id and event.payment.is_paid
    assert len(await world.history(vm, H.PAYMENT_RECEIVED)) == 1  # written with the booking


async def test_a_process_dying_before_the_subscribers_leaves_the_vm_check_to_spawn(
    world: World,
) -> None:
    vm = await world.shop.order()
    invoice = await world.renew(vm)
    await _complete_and_die(world, invoice.id)
    assert await world.run_jobs() == 0  # no SpawnVm was ever sent
    assert "create_vm" not in world.host.calls

    await world.vm_check()  # the worker's next check: a paid VM its host does not know
    await world.run_jobs()
    assert world.host_state(vm.id) == "running"
    assert (await world.shop.vm(vm.id)).is_provisioned
    # a replayed settlement does not book or publish a second time (D9)
    again = await world.complete(invoice)
    assert not again.completed and again.event is None


async def test_a_failing_subscriber_is_reported_and_the_next_one_still_runs(
    world: World,
) -> None:
    vm = await world.shop.order()
    invoice = await world.renew(vm)
    seen: list[PaymentCompleted] = []

    async def broken(event: PaymentCompleted, out: Reactions) -> None:
        raise RuntimeError("notifier down")

    async def recorder(event: PaymentCompleted, out: Reactions) -> None:
        seen.append(event)

    report = await complete_payment(
        world.shop.factory,
        world.clock,
        world.shop.rails,
        world.queue,
        payment_id=invoice.id,
        subscribers=(broken, recorder, cancel_expired_payments(None)),
    )
    assert report.completed and len(seen) == 1 and seen[0] is report.event
    assert report.problems == ("subscriber broken: RuntimeError('notifier down')",)
    assert (await world.sub(vm)).is_setup
