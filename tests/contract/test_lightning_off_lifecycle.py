"""Lightning off on memory, SQLite and MariaDB: a subscription with NWC auto-renewal on is not
charged; it gets the normal "renew manually" notice once (no Lightning address in it) and
stops unpaid at its expiry, as any other."""

from __future__ import annotations

from datetime import timedelta

import attrs

from app.worker.context import NoAutoRenewal
from app.worker.jobs import build_handlers
from domain.enums import SubscriptionPaymentType
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
RUN = timedelta(seconds=30)


def _lightning_off(world: World) -> None:
    """The worker as the container wires it with `lightning.enabled: false`."""
    world.deps = attrs.evolve(world.deps, auto_renewer=NoAutoRenewal(), lightning_address=False)
    world.handlers = build_handlers(world.deps)


async def test_auto_renewal_is_not_tried_and_the_vm_expires_as_an_unpaid_one(
    world: World,
) -> None:
    vm = await world.paid_vm()  # bought by Lightning before the switch
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        # the wallet the user connected while Lightning was on
        wallet = "nostr+walletconnect://w"
        await uow.users.update(attrs.evolve(user, nwc_connection_string=wallet))
        await uow.commit()
    _lightning_off(world)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=RUN)
    world.at(sub.expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()

    payments = await world.shop.payments(vm)
    assert [p.payment_type for p in payments] == [SubscriptionPaymentType.PURCHASE]
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    [warned] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "renew it manually" in warned.message
    assert "automatic renewal failed" not in warned.message
    assert f"/api/v1/vm/{vm.id}/renew" in warned.message
    assert "Lightning address" not in warned.message
    [expired] = world.notifier.titled(f"[VM{vm.id}] Expired")
    assert "Lightning address" not in expired.message
    assert (await world.sub(vm)).expires == sub.expires
    assert world.host_state(vm.id) == "stopped"
