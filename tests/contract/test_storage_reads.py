"""Read-model ports on every storage: VM records, batched look-ups, batched line items, history."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import attrs

from domain.enums import (
    DiskInterface,
    DiskType,
    PaymentMethod,
    SubscriptionType,
    VmHistoryActionType,
)
from domain.model import (
    GIB,
    AdminRole,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    IpAssignment,
    IpRange,
    LineItem,
    RoleAssignment,
    Vm,
    VmHistory,
)
from domain.subscription import INTERVALS_KEY
from ports.storage.payments import MetadataKey, NewestPending
from ports.storage.reads import (
    IpLabel,
    PlanLabel,
    RegionLabel,
    SshKeyLabel,
    VmFilter,
    VmStatusRecords,
)
from ports.storage.subscriptions import OwnedPriced
from tests.contract.storage_backends import (
    Backend,
    World,
    at,
    backend,
    database,
    new_payment,
    new_subscription,
    seed_world,
)
from tests.sql_events import listening

__all__ = ["backend", "database"]


async def _second_vm(backend: Backend, world: World, user_id: int, **fields: Any) -> Vm:
    async with backend.factory() as uow:
        _, (item,) = await uow.subscriptions.add_with_line_items(
            new_subscription(user_id, world.company.id),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.VPS,
                    name="more",
                    amount=100,
                )
            ],
        )
        vm = await uow.vms.add(
            attrs.evolve(
                world.vm, id=0, user_id=user_id, subscription_line_item_id=item.id, **fields
            )
        )
        await uow.commit()
    return vm


async def test_vm_records_join_every_row_a_status_shows(backend: Backend) -> None:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        ip_range = await uow.ip_ranges.add(
            IpRange(
                id=0,
                cidr="10.1.0.0/24",
                gateway="10.1.0.1",
                region_id=world.region.id,
                enabled=True,
            )
        )
        first = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=world.vm.id, ip_range_id=ip_range.id, ip="10.1.0.5")
        )
        dropped = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=world.vm.id, ip_range_id=ip_range.id, ip="10.1.0.6")
        )
        await uow.ip_assignments.delete(dropped.id)
        second = await uow.ip_assignments.add(
            IpAssignment(
                id=0,
                vm_id=world.vm.id,
                ip_range_id=ip_range.id,
                ip="10.1.0.7",
                dns_reverse="x.example",
            )
        )
        await uow.commit()
    async with backend.factory() as uow:
        [records] = await uow.vm_reads.vm_records(VmFilter(user_id=world.user.id))
    assert records.vm == world.vm
    assert records.subscription == world.subscription
    assert records.image == world.image
    assert records.ssh_key == SshKeyLabel(
        id=world.ssh_key.id, name=world.ssh_key.name, created=world.ssh_key.created
    )
    assert (records.template, records.plan, records.region) == (
        world.template,
        world.plan,
        world.region,
    )
    assert (records.custom, records.pricing, records.pricing_disks) == (None, None, ())
    assert [a.id for a, _ in records.ips] == [first.id, second.id]
    assert [r for _, r in records.ips] == [ip_range, ip_range]
    assert records.ips[1][0].dns_reverse == "x.example"


async def test_vm_records_filter_by_user_ids_and_deleted(backend: Backend) -> None:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        other = await uow.users.get_or_create_by_pubkey(b"\x02" * 32, at(1))
        await uow.commit()
    mine = await _second_vm(backend, world, world.user.id)
    theirs = await _second_vm(backend, world, other.id)
    async with backend.factory() as uow:
        await uow.vms.delete(mine.id)
        await uow.commit()
    async with backend.factory() as uow:
        reads = uow.vm_reads
        assert [r.vm.id for r in await reads.vm_records(VmFilter(user_id=world.user.id))] == [
            world.vm.id
        ]
        assert [
            r.vm.id for r in await reads.vm_records(VmFilter(user_id=world.user.id, deleted=True))
        ] == [
            world.vm.id,
            mine.id,
        ]
        assert [
            r.vm.id for r in await reads.vm_records(VmFilter(vm_ids=[theirs.id, world.vm.id]))
        ] == [
            world.vm.id,
            theirs.id,
        ]
        assert await reads.vm_records(VmFilter(user_id=world.user.id, vm_ids=[theirs.id])) == []
        assert await reads.vm_records(VmFilter(vm_ids=[])) == []
        by_key = VmFilter(vm_ids=[world.vm.id], owner_pubkey=world.user.pubkey)
        assert [r.vm.id for r in await reads.vm_records(by_key)] == [world.vm.id]
        not_owner = VmFilter(vm_ids=[world.vm.id], owner_pubkey=other.pubkey)
        assert await reads.vm_records(not_owner) == []
        unknown = VmFilter(vm_ids=[world.vm.id], owner_pubkey=b"\x09" * 32)
        assert await reads.vm_records(unknown) == []
        assert (
            await reads.vm_records(VmFilter(vm_ids=[mine.id], owner_pubkey=world.user.pubkey)) == []
        )
        [deleted] = await reads.vm_records(VmFilter(vm_ids=[mine.id], deleted=True))
        vms = uow.vms
        assert await vms.get_owned_by_key(world.vm.id, world.user.pubkey) == world.vm
        assert await vms.get_owned_by_key(world.vm.id, other.pubkey) is None
        assert await vms.get_owned_by_key(world.vm.id, b"\x09" * 32) is None
        assert await vms.get_owned_by_key(9999, world.user.pubkey) is None
        owned_deleted = await vms.get_owned_by_key(mine.id, world.user.pubkey)
        assert owned_deleted is not None and owned_deleted.deleted
        subs = uow.subscriptions
        billing = await subs.get_by_line_item(world.vm.subscription_line_item_id)
        assert billing is not None
        items = await uow.line_items.list_by_subscription(billing.id)
        assert items
        newest = NewestPending(PaymentMethod.LIGHTNING, at(5), MetadataKey(INTERVALS_KEY, 1))

        async def owned(vm_id: int, pubkey: bytes) -> Any:
            return await uow.line_items.priced_of_owned_vm(vm_id, pubkey, newest)

        found = await owned(world.vm.id, world.user.pubkey)
        priced = await uow.line_items.list_priced(billing.id)
        assert priced is not None
        assert found == OwnedPriced(billing, priced, None)
        assert list(found.priced.items) == items
        assert await owned(world.vm.id, other.pubkey) is None
        assert await owned(world.vm.id, b"\x09" * 32) is None
        assert await owned(mine.id, world.user.pubkey) is None  # deleted
        assert await owned(9999, world.user.pubkey) is None
    assert deleted.vm.deleted and deleted.subscription is not None


async def test_a_custom_vm_brings_its_pricing_disks_and_region(backend: Backend) -> None:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        pricing = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="custom",
                enabled=True,
                created=at(1),
                expires=None,
                region_id=world.region.id,
                currency="EUR",
                cpu_cost=100,
                memory_cost=50,
                ip4_cost=10,
                ip6_cost=0,
                min_cpu=1,
                max_cpu=8,
                min_memory=GIB,
                max_memory=16 * GIB,
            )
        )
        disk = await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0, pricing_id=pricing.id, kind=DiskType.SSD, interface=DiskInterface.PCIE, cost=5
            )
        )
        spec = await uow.custom_templates.add(
            CustomTemplate(
                id=0,
                cpu=2,
                memory=2 * GIB,
                disk_size=40 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                pricing_id=pricing.id,
            )
        )
        await uow.commit()
    custom = await _second_vm(
        backend, world, world.user.id, template_id=None, custom_template_id=spec.id
    )
    async with backend.factory() as uow:
        standard, found = await uow.vm_reads.vm_records(VmFilter(user_id=world.user.id))
    assert standard.pricing_disks == ()
    assert found.vm == custom
    assert (found.custom, found.pricing, found.pricing_disks) == (spec, pricing, (disk,))
    assert (found.template, found.plan, found.region) == (None, None, world.region)


async def test_vm_statuses_are_the_records_narrowed_to_what_a_status_shows(
    backend: Backend,
) -> None:
    """`vm_statuses` (the narrow read GET /vm/{id} renders, issue 10) gives what `vm_records`
    gives, projected, for every filter: standard and custom VMs, live addresses only, several
    pricings' disks kept apart, deleted and other users' VMs."""
    async with backend.factory() as uow:
        world = await seed_world(uow)
        other = await uow.users.get_or_create_by_pubkey(b"\x02" * 32, at(1))
        rid = world.region.id
        ip_range = await uow.ip_ranges.add(
            IpRange(id=0, cidr="10.1.0.0/24", gateway="10.1.0.1", region_id=rid, enabled=True)
        )
        v6_range = await uow.ip_ranges.add(
            IpRange(id=0, cidr="2a13:2c0::/64", gateway="fe80::1", region_id=rid, enabled=True)
        )
        specs = []
        for n, kind in enumerate((DiskType.HDD, DiskType.SSD)):
            pricing = await uow.custom_pricing.add(
                CustomPricing(
                    id=0,
                    name=f"custom {n}",
                    enabled=True,
                    created=at(1 + n),
                    expires=at(20) if n else None,
                    region_id=world.region.id,
                    currency="EUR",
                    cpu_cost=100,
                    memory_cost=50,
                    ip4_cost=10,
                    ip6_cost=7,
                )
            )
            for cost in (5, 6):
                await uow.custom_pricing.add_disk(
                    CustomPricingDisk(
                        id=0,
                        pricing_id=pricing.id,
                        kind=kind,
                        interface=DiskInterface.PCIE,
                        cost=cost + n,
                    )
                )
            specs.append(
                await uow.custom_templates.add(
                    CustomTemplate(
                        id=0,
                        cpu=2,
                        memory=2 * GIB,
                        disk_size=40 * GIB,
                        disk_type=kind,
                        disk_interface=DiskInterface.PCIE,
                        pricing_id=pricing.id,
                    )
                )
            )
        await uow.commit()
    customs = [
        await _second_vm(backend, world, world.user.id, template_id=None, custom_template_id=s.id)
        for s in specs
    ]
    gone = await _second_vm(backend, world, world.user.id, mac_address="52:54:00:00:00:01")
    theirs = await _second_vm(backend, world, other.id)
    async with backend.factory() as uow:
        for vm_id, ip, range_id in (
            (world.vm.id, "10.1.0.5", ip_range.id),
            (world.vm.id, "2a13:2c0::5", v6_range.id),
            (customs[1].id, "10.1.0.9/24", ip_range.id),
            (gone.id, "10.1.0.10", ip_range.id),
        ):
            await uow.ip_assignments.add(
                IpAssignment(id=0, vm_id=vm_id, ip_range_id=range_id, ip=ip, dns_forward="f.x")
            )
        dropped = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=world.vm.id, ip_range_id=ip_range.id, ip="10.1.0.6")
        )
        await uow.ip_assignments.delete(dropped.id)
        await uow.vms.delete(gone.id)
        await uow.commit()
    mine, all_ids = world.user.id, [world.vm.id, theirs.id, gone.id, *(c.id for c in customs)]
    filters = [
        VmFilter(user_id=mine),
        VmFilter(user_id=mine, deleted=True),
        VmFilter(vm_ids=all_ids),
        VmFilter(vm_ids=all_ids, deleted=True),
        VmFilter(vm_ids=[customs[0].id]),
        VmFilter(vm_ids=[world.vm.id], owner_pubkey=world.user.pubkey),
        VmFilter(vm_ids=[world.vm.id], owner_pubkey=other.pubkey),
        VmFilter(vm_ids=[gone.id], owner_pubkey=world.user.pubkey, deleted=True),
        VmFilter(vm_ids=[]),
    ]
    async with backend.factory() as uow:
        reads = uow.vm_reads
        for which in filters:
            expected = [VmStatusRecords.of(r) for r in await reads.vm_records(which)]
            assert await reads.vm_statuses(which) == expected, which
        standard, first, second = await reads.vm_statuses(VmFilter(user_id=mine))
    assert [ip.ip for ip in standard.ips] == ["10.1.0.5", "2a13:2c0::5"]
    assert standard.ips[0] == IpLabel(
        standard.ips[0].id, "10.1.0.5", "f.x", None, "10.1.0.0/24", "10.1.0.1"
    )
    assert standard.template is not None and standard.template.id == world.template.id
    assert standard.plan == PlanLabel(
        world.plan.id,
        world.plan.name,
        world.plan.currency,
        world.plan.amount,
        world.plan.interval_amount,
        world.plan.interval_type,
    )
    assert standard.subscription is not None and standard.custom is None
    assert (first.custom, second.custom) == (specs[0], specs[1])
    assert [d.cost for d in first.pricing_disks] == [5, 6]
    assert [d.cost for d in second.pricing_disks] == [6, 7]
    assert second.pricing is not None and second.pricing.expires == at(20)
    assert first.region == RegionLabel(world.region.id, world.region.name)
    assert (first.template, first.plan) == (None, None)
    assert [ip.ip for ip in second.ips] == ["10.1.0.9/24"]


async def test_lookups_batch_users_counts_admins_payments_and_currencies(
    backend: Backend,
) -> None:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        other = await uow.users.get_or_create_by_pubkey(b"\x03" * 32, at(1))
        third = await uow.users.get_or_create_by_pubkey(b"\x04" * 32, at(1))
        role = await uow.roles.add_role(
            AdminRole(id=0, name="ops", created_at=at(1), updated_at=at(1))
        )
        await uow.roles.assign(
            RoleAssignment(id=0, user_id=other.id, role_id=role.id, assigned_at=at(1))
        )
        await uow.roles.assign(
            RoleAssignment(
                id=0, user_id=third.id, role_id=role.id, assigned_at=at(1), expires_at=at(2)
            )
        )
        for _ in range(3):
            await uow.payments.add(new_payment(world.subscription))
        await uow.commit()
    await _second_vm(backend, world, world.user.id)
    async with backend.factory() as uow:
        lookups = uow.lookups
        users = await lookups.users([world.user.id, other.id, 9999])
        assert users == {world.user.id: world.user, other.id: other}
        assert await lookups.vm_counts([world.user.id, other.id]) == {world.user.id: 2}
        assert await lookups.admins([world.user.id, other.id, third.id], at(3)) == {other.id}
        assert await lookups.admins([third.id], at(1) + timedelta(hours=1)) == {third.id}
        assert await lookups.payment_counts([world.subscription.id, 9999]) == {
            world.subscription.id: 3
        }
        assert await lookups.base_currencies([world.subscription.id, 9999]) == {
            world.subscription.id: world.company.base_currency
        }
        assert await lookups.users([]) == {} and await lookups.admins([], at(3)) == set()


async def test_line_items_of_many_subscriptions_and_all_history(backend: Backend) -> None:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        extra = await uow.subscriptions.add_with_line_items(
            new_subscription(world.user.id, world.company.id),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.VPS,
                    name=f"item {n}",
                    amount=n,
                )
                for n in range(2)
            ],
        )
        for hour in (3, 1, 2):
            await uow.vm_history.add(
                VmHistory(
                    id=0,
                    vm_id=world.vm.id,
                    action_type=VmHistoryActionType.STARTED,
                    timestamp=at(2, hour),
                )
            )
        await uow.commit()
    sub, items = extra
    async with backend.factory() as uow:
        found = await uow.line_items.list_by_subscriptions([world.subscription.id, sub.id, 9999])
        assert found == {world.subscription.id: [world.line_item], sub.id: items}
        assert await uow.line_items.list_by_subscriptions([]) == {}
        history = await uow.vm_history.list_all_by_vm(world.vm.id)
    assert [h.timestamp.hour for h in history] == [3, 2, 1]


async def test_the_status_read_is_one_statement_the_engine_hooks_see_with_converted_values(
    backend: Backend,
) -> None:
    """On SQLite the status read runs on the driver's cursor (issue 10): the engine's cursor
    hooks still see its one statement, and values come converted as SQLAlchemy converts them
    (a bool is a bool, not SQLite's 0/1; datetimes are aware UTC)."""
    async with backend.factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = backend.engine
    hooked = nullcontext() if engine is None else listening(engine, "before_cursor_execute", record)
    with hooked:
        async with backend.factory() as uow:
            which = VmFilter(vm_ids=[world.vm.id], owner_pubkey=world.user.pubkey)
            [status] = await uow.vm_reads.vm_statuses(which)
    if backend.engine is not None:
        assert len(seen) == 1 and seen[0].lstrip().upper().startswith("SELECT")
    sub = status.subscription
    assert sub is not None
    assert type(sub.is_setup) is bool and type(sub.auto_renewal_enabled) is bool
    assert sub.created == world.subscription.created and sub.created.tzinfo is not None
    assert status.image is not None and status.image.distribution is world.image.distribution
