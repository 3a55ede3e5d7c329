"""A small shop in memory: one company, region, host, plan, pricing, two users, and the fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from adapters.memory.clock import FakeClock
from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.completion import CompletionReport, complete_payment
from app.billing.invoicing import issue_credit_note
from app.billing.ordering import OrderTerms, order_custom_vm, order_vm
from app.billing.rails import PaymentRails
from app.billing.renewal import renew
from domain.enums import (
    DiskInterface,
    DiskType,
    IntervalType,
    OsDistribution,
    PaymentMethod,
    VmHistoryActionType,
    VmHostKind,
)
from domain.invoice import CreditNote, Invoice
from domain.model import (
    GIB,
    Company,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    Host,
    HostDisk,
    IpRange,
    OsImage,
    PaymentMethodConfig,
    Region,
    SshKey,
    Subscription,
    SubscriptionPayment,
    User,
    Vm,
    VmHistory,
    VmTemplate,
)
from domain.tax import TaxRates
from domain.unpaid_room import DEFAULT_UNPAID_ROOM, UnpaidRoom
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.unit.billing.fakes import FakeGateway, FakeNode, FreshRates, RecordingQueue

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
ALICE, BOB = 1, 2
ALICE_KEY, BOB_KEY = 1, 2
IMAGE, HIDDEN_IMAGE = 1, 2
TEMPLATE, PRICING = 1, 1
PLAN_EUR_CENTS = 132


@attrs.define
class Shop:
    factory: MemoryUnitOfWorkFactory
    clock: FakeClock
    node: FakeNode
    revolut: FakeGateway
    queue: RecordingQueue
    rates: FreshRates
    rails: PaymentRails
    tax_rates: TaxRates
    #: D25 room limits of the orders below (the production defaults unless a test says)
    unpaid_room: UnpaidRoom = DEFAULT_UNPAID_ROOM

    async def order(self, user_id: int = ALICE, **kw: Any) -> Vm:
        key = ALICE_KEY if user_id == ALICE else BOB_KEY
        kw.setdefault("unpaid_room", self.unpaid_room)
        terms = OrderTerms(user_id=user_id, image_id=IMAGE, ssh_key_id=key, **kw)
        return await order_vm(self.factory, self.clock, terms, TEMPLATE)

    async def order_custom(self, **kw: Any) -> Vm:
        spec: dict[str, Any] = {
            "cpu": 2,
            "memory": 4 * GIB,
            "disk": 80 * GIB,
            "disk_type": DiskType.SSD,
            "disk_interface": DiskInterface.PCIE,
        }
        spec.update(kw)
        terms = OrderTerms(
            user_id=ALICE, image_id=IMAGE, ssh_key_id=ALICE_KEY, unpaid_room=self.unpaid_room
        )
        return await order_custom_vm(self.factory, self.clock, terms, PRICING, **spec)

    async def renew(self, vm: Vm, **kw: Any) -> SubscriptionPayment:
        kw.setdefault("user_id", vm.user_id)
        return await renew(
            self.factory, self.clock, self.rails, self.rates, self.tax_rates, vm_id=vm.id, **kw
        )

    async def complete(self, payment: SubscriptionPayment) -> CompletionReport:
        return await complete_payment(
            self.factory, self.clock, self.rails, self.queue, payment_id=payment.id
        )

    async def subscription(self, vm: Vm) -> Subscription:
        async with self.factory() as uow:
            sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None
        return sub

    async def payment(self, payment_id: bytes) -> SubscriptionPayment:
        async with self.factory() as uow:
            found = await uow.payments.get(payment_id)
        assert found is not None
        return found

    async def history(self, vm: Vm, kind: VmHistoryActionType | None = None) -> list[VmHistory]:
        async with self.factory() as uow:
            page = await uow.vm_history.list_by_vm(vm.id, 1000)
        return [h for h in page.items if kind is None or h.action_type is kind]

    async def payments(self, vm: Vm) -> list[SubscriptionPayment]:
        async with self.factory() as uow:
            return (await uow.payments.list_by_vm(vm.id, 1000)).items

    async def vm(self, vm_id: int) -> Vm:
        async with self.factory() as uow:
            found = await uow.vms.get(vm_id)
        assert found is not None
        return found

    async def invoice(self, payment: SubscriptionPayment) -> Invoice:
        """The payment's invoice (it must have one)."""
        async with self.factory() as uow:
            found = await uow.invoices.get_by_payment(payment.id)
        assert found is not None
        return found

    async def invoices(self, vm: Vm) -> list[Invoice]:
        """The invoices of the VM's payments, newest first."""
        payments = await self.payments(vm)
        async with self.factory() as uow:
            found = [await uow.invoices.get_by_payment(payment.id) for payment in payments]
        return sorted((i for i in found if i is not None), key=lambda i: i.id, reverse=True)

    async def credit_note(self, invoice: Invoice, amount: int) -> CreditNote:
        """An admin's credit note of `amount` against the invoice."""
        return await issue_credit_note(
            self.factory, self.clock, invoice_id=invoice.id, amount=amount, reason="refund"
        )

    async def credit_notes(self, invoice: Invoice) -> list[CreditNote]:
        async with self.factory() as uow:
            return await uow.invoices.credit_notes_of(invoice.id)

    async def balances(self, user_id: int = ALICE) -> dict[str, int]:
        """The user's account credit by currency."""
        async with self.factory() as uow:
            return await uow.credit_ledger.balances(user_id)

    async def balance(self, currency: str = "EUR", user_id: int = ALICE) -> int:
        """The user's account credit in `currency` (0 without any)."""
        return (await self.balances(user_id)).get(currency, 0)


async def add_host(uow: UnitOfWork, *, region_id: int, name: str, ip: str) -> Host:
    """A dummy host of 16 cores and 64 GiB with one enabled 2 TiB NVMe SSD, in `uow`."""
    host = await uow.hosts.add(
        Host(
            id=0,
            kind=VmHostKind.DUMMY,
            region_id=region_id,
            name=name,
            ip=ip,
            cpu=16,
            memory=64 * GIB,
            enabled=True,
            api_token="",
        )
    )
    await uow.host_disks.add(
        HostDisk(
            id=0,
            host_id=host.id,
            name="nvme",
            size=2048 * GIB,
            kind=DiskType.SSD,
            interface=DiskInterface.PCIE,
            enabled=True,
        )
    )
    return host


async def seed(factory: UnitOfWorkFactory) -> None:
    """The shop's catalogue and users; the hidden image is Debian 11 (images are unique in SQL)."""
    async with factory() as uow:
        await uow.companies.add(Company(id=0, created=START, name="LNVPS"))
        await uow.regions.add(Region(id=0, name="IE", enabled=True, company_id=1))
        await add_host(uow, region_id=1, name="h1", ip="10.0.0.1")
        # the region's IPv4 pool: orders count its addresses (253 here), builds take them
        await uow.ip_ranges.add(
            IpRange(id=0, cidr="10.0.0.0/24", enabled=True, region_id=1, gateway="10.0.0.1/24")
        )
        for enabled, version in ((True, "12"), (False, "11")):
            await uow.images.add(
                OsImage(
                    id=0,
                    distribution=OsDistribution.DEBIAN,
                    flavour="server",
                    version=version,
                    enabled=enabled,
                    release_date=START,
                    url="https://example.invalid/debian.img",
                )
            )
        for pubkey, country in ((b"a" * 32, "IE"), (b"b" * 32, None)):
            user = await uow.users.add(
                User(id=0, pubkey=pubkey, created=START, country_code=country)
            )
            await uow.ssh_keys.add(
                SshKey(id=0, name="k", user_id=user.id, created=START, key_data="ssh-ed25519 AAA")
            )
        await uow.cost_plans.add(
            CostPlan(
                id=0,
                name="tiny",
                created=START,
                amount=PLAN_EUR_CENTS,
                currency="EUR",
                interval_amount=1,
                interval_type=IntervalType.MONTH,
            )
        )
        await uow.templates.add(
            VmTemplate(
                id=0,
                name="Tiny",
                enabled=True,
                created=START,
                expires=None,
                cpu=2,
                memory=2 * GIB,
                disk_size=64 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                cost_plan_id=1,
                region_id=1,
            )
        )
        pricing = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="Custom IE",
                enabled=True,
                created=START,
                expires=None,
                region_id=1,
                currency="EUR",
                cpu_cost=200,
                memory_cost=100,
                ip4_cost=0,
                ip6_cost=0,
                max_cpu=8,
                max_memory=16 * GIB,
            )
        )
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=pricing.id,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                cost=50,
                max_disk_size=512 * GIB,
            )
        )
        await uow.payment_methods.add(
            PaymentMethodConfig(
                id=0,
                company_id=1,
                payment_method=PaymentMethod.REVOLUT,
                name="revolut",
                enabled=True,
                provider_type="revolut",
                config={},
                created=START,
                modified=START,
                processing_fee_rate=Decimal("2.8"),
                processing_fee_base=20,
                processing_fee_currency="EUR",
            )
        )
        await uow.commit()


async def new_shop() -> Shop:
    factory = MemoryUnitOfWorkFactory()
    await seed(factory)
    clock = FakeClock(START)
    node = FakeNode(clock)
    revolut = FakeGateway()
    return Shop(
        factory=factory,
        clock=clock,
        node=node,
        revolut=revolut,
        queue=RecordingQueue(),
        rates=FreshRates(clock),
        rails=PaymentRails(node, {PaymentMethod.REVOLUT: revolut}),
        tax_rates=TaxRates.from_config({"IE": 23}),
    )
