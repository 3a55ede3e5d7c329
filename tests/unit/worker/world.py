"""A shop plus a worker over one in-memory store: dummy host, recording notifier, real queue."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from adapters.memory.vm_state import MemoryVmStateCache
from adapters.notify.memory import RecordingNotifier
from adapters.queue.memory import InProcessQueue
from adapters.vmhost.dummy import DummyVmHost
from app.billing.completion import CompletionReport, complete_payment
from app.billing.renewal import renew
from app.services import Services
from app.worker.context import HostRetry, WorkerDeps
from app.worker.dispatch import JobHandlers
from app.worker.jobs import build_handlers
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from app.worker.loop import drain
from app.worker.vmcheck import VmCheckReport, check_vms
from domain.enums import SubscriptionType, VmHistoryActionType
from domain.model import (
    Host,
    IpRangeSubscription,
    LineItem,
    OsImage,
    Subscription,
    SubscriptionPayment,
    User,
    Vm,
    VmHistory,
)
from ports.vmhost import (
    FullVmInfo,
    TimeSeriesPoint,
    VmHost,
    VmHostError,
    VmResources,
    VmRunningState,
)
from tests.unit.billing.world import Shop, new_shop

DAY = timedelta(days=1)


async def no_sleep(seconds: float) -> None:
    return None


class CountingHost:
    """Wraps the dummy host: counts calls per operation; `broken` ops raise transient errors,
    `refused` ops fatal ones.

    `hold(op)` makes the next calls of `op` wait (a slow Proxmox task) until `let_go(op)`;
    `entered(op)` is set once such a call is waiting. `sizes` holds each VM's size as last
    built or resized (the dummy host keeps none).
    """

    def __init__(self, inner: DummyVmHost) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.sizes: dict[int, VmResources] = {}
        self.broken: set[str] = set()
        self.refused: set[str] = set()
        self._gates: dict[str, asyncio.Event] = {}
        self._entered: dict[str, asyncio.Event] = {}

    def hold(self, op: str) -> None:
        self._gates[op] = asyncio.Event()
        self._entered[op] = asyncio.Event()

    def entered(self, op: str) -> asyncio.Event:
        return self._entered[op]

    def let_go(self, op: str) -> None:
        self._gates.pop(op).set()

    async def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        gate = self._gates.get(op)
        if gate is not None:
            self._entered[op].set()
            await gate.wait()
        if op in self.broken:
            raise VmHostError(f"{op}: host unreachable", transient=True)
        if op in self.refused:
            raise VmHostError(f"{op}: refused by the host")

    async def create_vm(self, info: FullVmInfo) -> None:
        await self._count("create_vm")
        await self.inner.create_vm(info)
        self.sizes[info.vm.id] = info.resources

    async def start_vm(self, vm: Vm) -> None:
        await self._count("start_vm")
        await self.inner.start_vm(vm)

    async def stop_vm(self, vm: Vm) -> None:
        await self._count("stop_vm")
        await self.inner.stop_vm(vm)

    async def restart_vm(self, vm: Vm) -> None:
        await self._count("restart_vm")
        await self.inner.restart_vm(vm)

    async def delete_vm(self, vm: Vm) -> None:
        await self._count("delete_vm")
        await self.inner.delete_vm(vm)

    async def reinstall_vm(self, info: FullVmInfo) -> None:
        await self._count("reinstall_vm")

    async def resize_vm(self, info: FullVmInfo) -> None:
        await self._count("resize_vm")
        await self.inner.resize_vm(info)
        self.sizes[info.vm.id] = info.resources

    async def get_vm_state(self, vm: Vm) -> VmRunningState:
        await self._count("get_vm_state")
        return await self.inner.get_vm_state(vm)

    async def get_all_vm_states(self) -> Mapping[int, VmRunningState]:
        await self._count("get_all_vm_states")
        return await self.inner.get_all_vm_states()

    async def generate_mac(self, vm: Vm) -> str:
        return await self.inner.generate_mac(vm)

    async def get_time_series(self, vm: Vm) -> Sequence[TimeSeriesPoint]:
        await self._count("get_time_series")
        return await self.inner.get_time_series(vm)

    async def download_os_image(self, image: OsImage) -> bool:
        await self._count("download_os_image")
        return await self.inner.download_os_image(image)


class OneHost:
    """A VmHostResolver that serves every host row with the same client."""

    def __init__(self, client: VmHost) -> None:
        self.client = client

    def for_host(self, host: Host) -> VmHost:
        return self.client


@attrs.define
class World:
    shop: Shop
    host: CountingHost
    notifier: RecordingNotifier
    queue: InProcessQueue
    states: MemoryVmStateCache
    deps: WorkerDeps
    handlers: JobHandlers

    @property
    def clock(self) -> Any:
        return self.shop.clock

    @property
    def now(self) -> datetime:
        return self.shop.clock.now()

    def advance(self, delta: timedelta) -> None:
        self.shop.clock.advance(delta)

    def at(self, when: datetime) -> None:
        self.shop.clock.set(when)

    async def complete(self, payment: SubscriptionPayment) -> CompletionReport:
        return await complete_payment(
            self.shop.factory, self.clock, self.shop.rails, self.queue, payment_id=payment.id
        )

    async def renew(self, vm: Vm | None = None, subscription_id: int | None = None) -> Any:
        return await renew(
            self.shop.factory,
            self.clock,
            self.shop.rails,
            self.shop.rates,
            self.shop.tax_rates,
            user_id=None,
            vm_id=None if vm is None else vm.id,
            subscription_id=subscription_id,
        )

    async def run_jobs(self) -> int:
        return await drain(self.queue, self.handlers)

    async def owner_api(self, vm: Vm) -> tuple[Services, User]:
        """The API's services over this world's stores and host, and the owner of `vm`, for
        the owner's own VM actions (`app.vm_actions`)."""
        shop = self.shop
        svc = Services(
            uow_factory=shop.factory,
            clock=shop.clock,
            rails=shop.rails,
            rates=shop.rates,
            queue=self.queue,
            hosts=self.deps.hosts,
        )
        async with shop.factory() as uow:
            user = await uow.users.get(vm.user_id)
        assert isinstance(user, User)
        return svc, user

    async def paid_vm(self) -> Vm:
        """Order, pay one month, run the worker: a VM running on the dummy host."""
        vm = await self.shop.order()
        await self.complete(await self.renew(vm))
        await self.run_jobs()
        return await self.shop.vm(vm.id)

    async def lifecycle(
        self, runs: int = 1, step: timedelta = timedelta(0)
    ) -> list[LifecycleReport]:
        """`runs` lifecycle passes, the clock moved by `step` after each."""
        reports = []
        for _ in range(runs):
            reports.append(await check_subscriptions(self.deps))
            self.advance(step)
        return reports

    async def vm_check(self) -> VmCheckReport:
        return await check_vms(self.deps)

    async def sub(self, vm: Vm) -> Subscription:
        return await self.shop.subscription(vm)

    async def balance(self, sub: Subscription) -> int:
        """The subscription's owner's account credit in the subscription's currency."""
        return await self.shop.balance(sub.currency, sub.user_id)

    async def set_paid_until(self, vm: Vm, expires: datetime) -> Subscription:
        """Give the VM's subscription paid time directly (as an admin extension would)."""
        async with self.shop.factory() as uow:
            sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
            assert sub is not None
            sub = attrs.evolve(sub, expires=expires, is_active=True, is_setup=True)
            await uow.subscriptions.update(sub)
            await uow.commit()
        return sub

    async def history(self, vm: Vm, kind: VmHistoryActionType) -> list[VmHistory]:
        return await self.shop.history(vm, kind)

    def host_state(self, vm_id: int) -> str | None:
        found = self.host.inner._vms.get(vm_id)
        return None if found is None else found.state.value

    async def ip_range_subscription(
        self, cidr: str = "203.0.113.8/29"
    ) -> tuple[Subscription, IpRangeSubscription]:
        """An IP-range subscription (EUR 10 a month) with one allocated /29, not yet paid."""
        async with self.shop.factory() as uow:
            sub, [item] = await uow.subscriptions.add_with_line_items(
                Subscription(
                    id=0, user_id=1, company_id=1, name="IP range", created=self.now, currency="EUR"
                ),
                [
                    LineItem(
                        id=0,
                        subscription_id=0,
                        subscription_type=SubscriptionType.IP_RANGE,
                        name=cidr,
                        amount=1000,
                    )
                ],
            )
            sold = await uow.ip_range_subscriptions.add(
                IpRangeSubscription(
                    id=0,
                    subscription_line_item_id=item.id,
                    available_ip_space_id=1,
                    created=self.now,
                    cidr=cidr,
                    started_at=self.now,
                )
            )
            await uow.commit()
        return sub, sold


async def new_world(delete_after_days: int = 3, **deps: Any) -> World:
    shop = await new_shop()  # its region's IPv4 range: 10.0.0.0/24, gateway .1
    host = CountingHost(DummyVmHost(None, shop.clock))
    notifier = RecordingNotifier()
    queue = InProcessQueue()
    states = MemoryVmStateCache()
    worker = WorkerDeps(
        uow_factory=shop.factory,
        clock=shop.clock,
        hosts=OneHost(host),
        queue=queue,
        notifier=notifier,
        delete_after_days=delete_after_days,
        public_url="https://api.lnvps.test",
        states=states,
        retry=HostRetry(sleep=no_sleep),
        **deps,
    )
    return World(
        shop=shop,
        host=host,
        notifier=notifier,
        queue=queue,
        states=states,
        deps=worker,
        handlers=build_handlers(worker),
    )
