"""Admin payment routes (api.md §9.3, §9.13): VM and subscription payments, manual complete."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add
from adapters.http.admin.views import base_currency, subscription_payment_json, vm_payment_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import path_id
from app.admin.payments import (
    subscription_payment,
    vm_payment,
)
from app.billing.errors import PaymentNotFound, SubscriptionNotFound, VmNotFound
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput

_VM_PAYMENTS = AdminResource.PAYMENTS
_SUB_PAYMENTS = AdminResource.SUBSCRIPTION_PAYMENTS
_PAYMENT = "{payment_id}"


def _payment_id(request: web.Request, name: str = "payment_id") -> bytes:
    """Hex (either case); not hex → 400, hex of another length cannot exist → 404."""
    try:
        raw = bytes.fromhex(request.match_info[name])
    except ValueError:
        raise InvalidInput("Invalid payment ID format") from None
    if len(raw) != 32:
        raise PaymentNotFound("Payment not found")
    return raw


@require(_VM_PAYMENTS, AdminAction.VIEW)
async def list_vm_payments(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    vm_id = path_id(request)
    async with services(request).uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None:
            raise VmNotFound("VM not found")
        found = await uow.payments.list_by_vm(vm_id, page.limit, page.offset)
        currencies = await uow.lookups.base_currencies({p.subscription_id for p in found.items})
        items = [
            vm_payment_json(p, vm_id, currencies.get(p.subscription_id, "EUR")) for p in found.items
        ]
    return page_response(items, found.total, page)


@require(_VM_PAYMENTS, AdminAction.VIEW)
async def get_vm_payment(request: web.Request, admin: Admin) -> web.StreamResponse:
    vm_id, payment_id = path_id(request), _payment_id(request)
    async with services(request).uow_factory() as uow:
        payment = await vm_payment(uow, vm_id, payment_id)
        company = await base_currency(uow, payment.subscription_id)
    return data_response(vm_payment_json(payment, vm_id, company))


@require(_VM_PAYMENTS, AdminAction.UPDATE)
async def complete_vm_payment(request: web.Request, admin: Admin) -> web.StreamResponse:
    vm_id, payment_id = path_id(request), _payment_id(request)
    svc = services(request)
    payment = await svc.admin.complete_as_admin(
        payment_id=payment_id, vm_id=vm_id, admin_id=admin.user.id
    )
    async with svc.uow_factory() as uow:
        company = await base_currency(uow, payment.subscription_id)
    return data_response(vm_payment_json(payment, vm_id, company))


@require(_SUB_PAYMENTS, AdminAction.VIEW)
async def list_subscription_payments(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    sub_id = path_id(request, "subscription_id")
    async with services(request).uow_factory() as uow:
        if await uow.subscriptions.get(sub_id) is None:
            raise SubscriptionNotFound("Subscription not found")
        found = await uow.payments.list_by_subscription(sub_id, page.limit, page.offset)
        company = await base_currency(uow, sub_id)
    return page_response(
        [subscription_payment_json(p, company) for p in found.items], found.total, page
    )


@require(_SUB_PAYMENTS, AdminAction.VIEW)
async def get_subscription_payment(request: web.Request, admin: Admin) -> web.StreamResponse:
    async with services(request).uow_factory() as uow:
        payment = await subscription_payment(uow, _payment_id(request, "id"))
        company = await base_currency(uow, payment.subscription_id)
    return data_response(subscription_payment_json(payment, company))


@require(_SUB_PAYMENTS, AdminAction.UPDATE)
async def complete_subscription_payment(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    payment = await svc.admin.complete_as_admin(
        payment_id=_payment_id(request, "id"), admin_id=admin.user.id
    )
    async with svc.uow_factory() as uow:
        company = await base_currency(uow, payment.subscription_id)
    return data_response(subscription_payment_json(payment, company))


@require(_SUB_PAYMENTS, AdminAction.UPDATE)
async def bank_transfer_received(request: web.Request, admin: Admin) -> web.StreamResponse:
    """The transfer of `{reference}` arrived on the account: its payment is completed once."""
    svc = services(request)
    reference = request.match_info["reference"].strip().upper()
    payment = await svc.admin.complete_bank_transfer(reference=reference, admin_id=admin.user.id)
    async with svc.uow_factory() as uow:
        company = await base_currency(uow, payment.subscription_id)
    return data_response(subscription_payment_json(payment, company))


def add_admin_payment_routes(table: RouteTable) -> None:
    pay = f"/vms/{ID}/payments"
    add(
        table,
        "GET",
        pay,
        list_vm_payments,
        "Payments of a VM, newest first",
        response=sch.VM_PAYMENT,
        paginated=True,
    )
    add(
        table,
        "GET",
        f"{pay}/{_PAYMENT}",
        get_vm_payment,
        "One payment of a VM",
        response=sch.VM_PAYMENT,
    )
    add(
        table,
        "POST",
        f"{pay}/{_PAYMENT}/complete",
        complete_vm_payment,
        "Complete an unpaid VM payment exactly once (409 if already paid)",
        response=sch.VM_PAYMENT,
    )
    add(
        table,
        "GET",
        r"/subscriptions/{subscription_id:\d+}/payments",
        list_subscription_payments,
        "Payments of a subscription, newest first",
        response=sch.SUBSCRIPTION_PAYMENT,
        paginated=True,
    )
    add(
        table,
        "GET",
        "/subscription_payments/{id}",
        get_subscription_payment,
        "One subscription payment",
        response=sch.SUBSCRIPTION_PAYMENT,
    )
    add(
        table,
        "POST",
        "/subscription_payments/{id}/complete",
        complete_subscription_payment,
        "Complete an unpaid subscription payment exactly once (409 if already paid)",
        response=sch.SUBSCRIPTION_PAYMENT,
    )
    add(
        table,
        "POST",
        "/bank_transfers/{reference}/received",
        bank_transfer_received,
        "A bank transfer arrived: complete the payment of its reference exactly once "
        "(409 if already paid, 404 unknown reference)",
        response=sch.SUBSCRIPTION_PAYMENT,
    )
