"""Order a VM: validate everything, then write subscription, line item, VM and history at once."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.catalogue import orderable_spec, pricing_with_disks, template_with_plan, user_of
from app.billing.errors import (
    BitcoinPriceNeedsLightning,
    EmailNotVerified,
    ImageNotFound,
    NoHostAvailable,
    OfferUnavailable,
    SshKeyNotFound,
    TooManyUnpaidVms,
)
from app.billing.order_locks import check_region, lock_order, offer_region, under_region_lock
from app.billing.placement import NO_HOST, Placement, place_vm
from app.billing.unpaid_room import check_buyer_room
from domain.cpu_match import CpuKind
from domain.enums import (
    DiskInterface,
    DiskType,
    SubscriptionType,
    VmHistoryActionType,
)
from domain.intervals import Interval
from domain.model import (
    LineItem,
    OsImage,
    Subscription,
    User,
    Vm,
    vm_event,
)
from domain.money import Currency, Money
from domain.pricing import CUSTOM_INTERVAL, Spec, custom_price, plan_price
from domain.unpaid_room import DEFAULT_UNPAID_ROOM, UnpaidRoom
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory

#: D25: never-paid VMs one user may hold at once (the `max-unpaid-vms` setting's default).
DEFAULT_MAX_UNPAID_VMS = 3


@attrs.frozen(kw_only=True)
class OrderTerms:
    """What every order carries besides its offer: buyer, image, key, referral, account limits."""

    user_id: int
    image_id: int
    ssh_key_id: int
    ref_code: str | None = None
    require_verified_email: bool = False
    #: D25: never-paid VMs the buyer may hold at once (None: no cap).
    max_unpaid: int | None = DEFAULT_MAX_UNPAID_VMS
    #: D25: the room never-paid orders may hold, the buyer's together and on each host
    #: (`max-unpaid-room`, `unpaid-host-share`; `NO_UNPAID_ROOM_LIMITS`: none).
    unpaid_room: UnpaidRoom = DEFAULT_UNPAID_ROOM
    #: False on a server with Lightning off: an offer priced in BTC is refused (422), only
    #: Lightning can charge bitcoin (`_check_payable`)
    bitcoin_payable: bool = True


@attrs.frozen
class _Buyer:
    user: User
    image: OsImage
    #: the buyer's never-paid VMs, read under their lock (None: no D25 limit asks for them)
    unpaid: list[Vm] | None


async def _check_buyer(uow: UnitOfWork, terms: OrderTerms) -> _Buyer:
    """The buyer may order (D22, D25), the SSH key is theirs and the image is offered (D21).

    Another user's key and a disabled (unlisted) image are "not found", never "not yours".
    Runs under `lock_order`'s user lock, so concurrent orders of one user count the
    never-paid VMs one after another: 32 at once leave exactly the cap.
    """
    user_id, max_unpaid = terms.user_id, terms.max_unpaid
    user = await user_of(uow, user_id)
    if terms.require_verified_email and not user.email_verified:
        raise EmailNotVerified("Email verification is required before creating a VM")
    unpaid = None
    if max_unpaid is not None or terms.unpaid_room.budgeted:
        unpaid = await uow.vms.list_never_paid(user_id=user_id)
        if max_unpaid is not None and len(unpaid) >= max_unpaid:
            raise TooManyUnpaidVms(
                f"You already have {len(unpaid)} unpaid VMs (at most {max_unpaid}): pay for one"
                " or wait until unpaid orders are removed (one hour after ordering)"
            )
    key = await uow.ssh_keys.get(terms.ssh_key_id)
    if key is None or key.user_id != user_id:
        raise SshKeyNotFound("SSH key not found")
    image = await uow.images.get(terms.image_id)
    if image is None or not image.enabled:
        raise ImageNotFound("OS image not found")
    return _Buyer(user, image, unpaid)


async def _place(
    uow: UnitOfWork,
    terms: OrderTerms,
    buyer: _Buyer,
    region_id: int,
    spec: Spec,
    disk_interface: DiskInterface,
    now: datetime,
    *,
    cpu: CpuKind,
) -> Placement:
    """Where the order goes (D25 limits applied): within the buyer's `max-unpaid-room`
    (judged first, under the buyer's lock), then on a host of the region whose CPU is what
    the offer asks for (`cpu`) and whose share for never-paid orders has room for it
    (under the region's lock, which every order takes before reading the hosts' room, so
    two orders racing for the share's last room are placed one after another)."""
    if buyer.unpaid is not None:
        await check_buyer_room(uow, terms.unpaid_room, buyer.unpaid, spec, now)
    share = terms.unpaid_room.host_share
    return await place_vm(uow, region_id, spec, disk_interface, now, unpaid_share=share, cpu=cpu)


async def _company_of(uow: UnitOfWork, region_id: int) -> int:
    region = await uow.regions.get(region_id)
    if region is None:
        raise NoHostAvailable(NO_HOST)
    return region.company_id


async def _write_order(
    uow: UnitOfWork,
    terms: OrderTerms,
    *,
    now: datetime,
    company_id: int,
    offer_name: str,
    price: Money,
    interval: Interval,
    placement: Placement,
    template_id: int | None,
    custom_template_id: int | None,
) -> Vm:
    """The writes of one order, inside the caller's transaction (D-provisioning: one tx)."""
    user_id = terms.user_id
    sub, items = await uow.subscriptions.add_with_line_items(
        Subscription(
            id=0,
            user_id=user_id,
            company_id=company_id,
            name=f"{offer_name} subscription",
            created=now,
            currency=price.currency.value,
            interval_amount=interval.amount,
            interval_type=interval.unit,
        ),
        [
            LineItem(
                id=0,
                subscription_id=0,
                subscription_type=SubscriptionType.VPS,
                name=offer_name,
                amount=price.amount,
            )
        ],
    )
    vm = await uow.vms.add(
        Vm(
            id=0,
            host_id=placement.host.id,
            user_id=user_id,
            image_id=terms.image_id,
            template_id=template_id,
            custom_template_id=custom_template_id,
            ssh_key_id=terms.ssh_key_id,
            disk_id=placement.disk.id,
            subscription_line_item_id=items[0].id,
            ref_code=terms.ref_code,
        )
    )
    await uow.subscriptions.update(attrs.evolve(sub, name=f"VM{vm.id} subscription"))
    await uow.line_items.update(attrs.evolve(items[0], name=f"VM{vm.id} - {offer_name}"))
    await uow.vm_history.add(
        vm_event(
            vm.id,
            VmHistoryActionType.CREATED,
            now,
            f"VM {vm.id} was created",
            by=user_id,
            after=vm_state(vm),
        )
    )
    return vm


def vm_state(vm: Vm) -> dict[str, object]:
    """The VM fields a history entry records (lifecycle.md §12.2)."""
    return {
        "host_id": vm.host_id,
        "user_id": vm.user_id,
        "image_id": vm.image_id,
        "template_id": vm.template_id,
        "custom_template_id": vm.custom_template_id,
        "ssh_key_id": vm.ssh_key_id,
        "disk_id": vm.disk_id,
        "mac_address": vm.mac_address,
        "ref_code": vm.ref_code,
    }


async def order_vm(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    terms: OrderTerms,
    template_id: int,
) -> Vm:
    """Order a VM on a standard template (lifecycle.md §6.1, §6.3).

    Every check (D21, D22, fewer than `max_unpaid` never-paid VMs (D25; None: no cap),
    template enabled and unexpired, the buyer's never-paid orders within `unpaid_room`, a
    host with room and with room in its share for unpaid orders) runs before the first
    write; then
    subscription (Ordered: inactive, not set up, no expiry, the plan's currency and
    interval), VPS line item (the plan amount), VM (placeholder MAC), the
    `VM{id} …` names and the Created history entry are written in ONE transaction, so a
    failure leaves no orphan subscription (the reference's §13.29). That transaction first
    takes the buyer's and the template region's row locks (`lock_order`), so two orders
    never both take a host's last room; the region is read beforehand in a transaction of
    its own and the order runs again should the template have moved meanwhile.
    """
    now = clock.now()

    async def attempt(region_id: int | None) -> Vm:
        async with uow_factory() as uow:
            await lock_order(uow, terms.user_id, region_id)
            buyer = await _check_buyer(uow, terms)
            template, plan = await template_with_plan(uow, template_id)
            check_region(region_id, template.region_id)
            _check_on_sale(template.enabled, template.expires, now, "template")
            price = plan_price(plan)
            _check_payable(terms, price)
            placement = await _place(
                uow,
                terms,
                buyer,
                template.region_id,
                template,
                template.disk_interface,
                now,
                cpu=template,
            )
            vm = await _write_order(
                uow,
                terms,
                now=now,
                company_id=await _company_of(uow, template.region_id),
                offer_name=template.name,
                price=price,
                interval=plan.interval,
                placement=placement,
                template_id=template.id,
                custom_template_id=None,
            )
            await uow.commit()
        return vm

    region = await offer_region(uow_factory, lambda uow: uow.templates.get(template_id))
    return await under_region_lock(region, attempt)


def _check_payable(terms: OrderTerms, price: Money) -> None:
    """Refuse an offer priced in BTC where Lightning is off: no fiat rail charges bitcoin,
    so the order would sit unpaid until its hour is up and hold its host room meanwhile."""
    if price.currency is Currency.BTC and not terms.bitcoin_payable:
        raise BitcoinPriceNeedsLightning(
            "This offer is priced in BTC, which only Lightning can pay, and this server takes"
            " no Lightning payments: choose an offer priced in another currency"
        )


def _check_on_sale(enabled: bool, expires: datetime | None, now: datetime, offer: str) -> None:
    """Refuse an offer that is switched off or past its expiry (D21)."""
    if not enabled:
        raise OfferUnavailable(f"Cant create VM from disabled {offer}")
    if expires is not None and expires < now:
        raise OfferUnavailable(f"Cant create VM from expired {offer}")


async def order_custom_vm(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    terms: OrderTerms,
    pricing_id: int,
    cpu: int,
    memory: int,
    disk: int,
    disk_type: DiskType,
    disk_interface: DiskInterface,
) -> Vm:
    """Order a VM with a custom spec (lifecycle.md §6.2) in one transaction, like `order_vm`.

    The spec must be within the pricing's limits (D21) and the pricing must sell a disk of
    that type and interface. The line item carries the monthly custom price (the reference
    stores 0 until an upgrade), so notifications and non-engine readers see the real price;
    renewals still price the VM afresh.
    """
    now = clock.now()

    async def attempt(region_id: int | None) -> Vm:
        async with uow_factory() as uow:
            await lock_order(uow, terms.user_id, region_id)
            buyer = await _check_buyer(uow, terms)
            pricing, disks = await pricing_with_disks(uow, pricing_id)
            check_region(region_id, pricing.region_id)
            _check_on_sale(pricing.enabled, pricing.expires, now, "custom pricing")
            spec = orderable_spec(pricing, disks, cpu, memory, disk, disk_type, disk_interface)
            price = custom_price(spec, pricing, disks).total
            _check_payable(terms, price)
            placement = await _place(
                uow, terms, buyer, pricing.region_id, spec, disk_interface, now, cpu=pricing
            )
            company_id = await _company_of(uow, pricing.region_id)
            stored = await uow.custom_templates.add(spec)
            vm = await _write_order(
                uow,
                terms,
                now=now,
                company_id=company_id,
                offer_name=pricing.name,
                price=price,
                interval=CUSTOM_INTERVAL,
                placement=placement,
                template_id=None,
                custom_template_id=stored.id,
            )
            await uow.commit()
        return vm

    region = await offer_region(uow_factory, lambda uow: uow.custom_pricing.get(pricing_id))
    return await under_region_lock(region, attempt)
