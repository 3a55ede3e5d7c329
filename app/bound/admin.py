"""The admin use cases a driving adapter calls, each with this process's ports given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from app.admin import (
    audit,
    companies,
    cost_plans,
    credit_refund,
    custom_pricing,
    deletes,
    hosts,
    ip_space,
    os_images,
    payment_methods,
    payments,
    role_changes,
    subscriptions,
    users,
    vm_removal,
    vm_templates,
    vms,
)
from app.billing import credit_balance, invoicing
from app.billing.rails import PaymentRails
from app.bound.inject import bind
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory

F = TypeVar("F", contravariant=True)
R = TypeVar("R", covariant=True)
F2 = TypeVar("F2")
R2 = TypeVar("R2")


class _RepricingUpdate(Protocol[F, R]):
    """An admin update that may reprice pending payments (`clock`, `rails` by keyword)."""

    def __call__(
        self, uow_factory: UnitOfWorkFactory, item_id: int, fields: F, /, *, clock: Clock,
        rails: PaymentRails | None,
    ) -> Awaitable[R]: ...


def _repricing(
    fn: _RepricingUpdate[F2, R2], uow_factory: UnitOfWorkFactory, clock: Clock,
    rails: PaymentRails,
) -> Callable[[int, F2], Awaitable[R2]]:
    """`fn(item_id, fields)` with the ports given; pending payments are repriced on the rails."""

    def call(item_id: int, fields: F2) -> Awaitable[R2]:
        return fn(uow_factory, item_id, fields, clock=clock, rails=rails)

    return call


class AdminUseCases:
    """Built once per process; names say what they change where a module name would not."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        rails: PaymentRails,
        rates: RateStore,
        queue: WorkQueue,
    ) -> None:
        store = (uow_factory, clock)
        self.record_admin_change = bind(audit.record_admin_change, *store)
        # users and roles
        self.list_users = bind(users.list_users, *store)
        self.create_role = bind(users.create_role, *store)
        self.assign_role = bind(users.assign_role, *store)
        self.update_role = bind(role_changes.update_role, *store)
        self.update_user_and_role = bind(role_changes.update_user_and_role, *store)
        # money
        self.issue_credit_note = bind(invoicing.issue_credit_note, *store)
        self.adjust_credit = bind(credit_balance.adjust_credit, *store)
        self.refund_to_credit = bind(credit_refund.refund_to_credit, *store)
        self.complete_as_admin = bind(payments.complete_as_admin, *store, rails, queue)
        self.complete_bank_transfer = bind(payments.complete_bank_transfer, *store, rails, queue)
        self.create_payment_method = bind(payment_methods.create_config, *store)
        self.update_payment_method = bind(payment_methods.update_config, *store)
        self.refund_amount = bind(vm_removal.refund_amount, uow_factory, rates, clock)
        self.request_refund = bind(vm_removal.request_refund, queue)
        # subscriptions and VMs
        self.create_subscription = bind(subscriptions.create_subscription, *store)
        self.update_subscription = _repricing(
            subscriptions.update_subscription, uow_factory, clock, rails
        )
        self.update_line_item = _repricing(
            subscriptions.update_line_item, uow_factory, clock, rails
        )
        self.delete_line_item = bind(deletes.delete_line_item, *store)
        self.extend_vm = bind(vms.extend_vm, *store, queue)
        self.power_vm = bind(vms.power_vm, uow_factory, queue)
        self.delete_vm = bind(vm_removal.delete_vm, uow_factory, queue)
        # catalogue and infrastructure
        self.list_hosts = bind(hosts.list_hosts, *store)
        self.get_host = bind(hosts.get_host, *store)
        self.create_host = bind(hosts.create_host, *store)
        self.update_host = bind(hosts.update_host, *store)
        self.request_image_download = bind(os_images.request_download, uow_factory, queue)
        self.create_custom_pricing = bind(custom_pricing.create_pricing, *store)
        self.copy_custom_pricing = bind(custom_pricing.copy_pricing, *store)
        self.update_custom_pricing = _repricing(
            custom_pricing.update_pricing, uow_factory, clock, rails
        )
        self.create_template = bind(vm_templates.create_template, *store)
        self.update_template = _repricing(vm_templates.update_template, uow_factory, clock, rails)
        self.create_ip_space = bind(ip_space.create_space, *store)
        self.update_ip_space = bind(ip_space.update_space, *store)
        self.create_ip_pricing = bind(ip_space.create_pricing, *store)
        self.update_ip_pricing = bind(ip_space.update_pricing, *store)
        self.create_company = bind(companies.create_company, *store)
        self.create_cost_plan = bind(cost_plans.create_cost_plan, *store)
        self.update_cost_plan = _repricing(cost_plans.update_cost_plan, uow_factory, clock, rails)
