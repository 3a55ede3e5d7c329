"""The admin use cases on people, money, subscriptions and VMs, with this process's ports given."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from app.admin import (
    audit,
    credit_refund,
    deletes,
    invoices,
    manual_refund,
    own_account,
    payment_methods,
    payments,
    reports,
    role_changes,
    roles,
    subscriptions,
    users,
    vm_removal,
    vms,
)
from app.admin.own_account import not_for_own
from app.billing import credit_balance, invoicing
from app.bound.inject import bind

if TYPE_CHECKING:
    from app.services import Services


class AdminUseCases:
    """Built once per process; names say what they change where a module name would not."""

    def __init__(self, svc: Services) -> None:
        uow_factory, clock, rails, rates = svc.uow_factory, svc.clock, svc.rails, svc.rates
        queue = svc.queue
        store = (uow_factory, clock)
        self.record_admin_change = bind(audit.record_admin_change, *store)
        self.list_audit = bind(audit.list_audit, uow_factory)
        # users and roles
        self.user_by_email = bind(users.user_by_email, uow_factory)
        self.list_roles = bind(roles.list_roles, uow_factory)
        self.get_role = bind(roles.get_role, uow_factory)
        self.roles_of_user = bind(roles.roles_of_user, uow_factory)
        self.check_name_free = bind(role_changes.check_name_free, uow_factory)
        self.delete_role = bind(role_changes.delete_role, uow_factory)
        self.list_users = bind(users.list_users, *store)
        self.create_role = bind(users.create_role, *store)
        self.assign_role = bind(users.assign_role, *store)
        self.revoke_role = bind(users.revoke_role, *store)
        self.update_role = bind(role_changes.update_role, *store)
        # a new country reprices on this process's rails; a new address is mailed its link
        self.update_user_and_role = partial(
            role_changes.update_user_and_role,
            *store,
            rails=rails,
            queue=queue,
            mail_limiter=svc.email_verify_limiter,
        )
        # money
        self.list_invoices = bind(invoices.list_invoices, uow_factory)
        self.every_invoice = bind(invoices.every_invoice, uow_factory)
        self.every_credit_note = bind(invoices.every_credit_note, uow_factory)
        self.invoice_with_notes = bind(invoices.invoice_with_notes, uow_factory)
        self.balances_of = bind(credit_balance.balances_of, uow_factory)
        self.balance_parts_of = bind(credit_balance.balance_parts_of, uow_factory)
        self.ledger_page = bind(credit_balance.ledger_page, uow_factory)
        self.revenue = bind(reports.revenue, uow_factory)
        self.report_credit_notes = bind(reports.credit_notes, uow_factory)
        self.referral_usage = bind(reports.referral_usage, uow_factory)
        self.list_payment_methods = bind(payment_methods.list_configs, uow_factory)
        # a config's pending payments are cancelled at this process's rails
        self.delete_payment_method = bind(deletes.delete_payment_method, *store, rails)
        # money moved or time given: never to the acting admin's own account (own_account)
        # `admin_id` by keyword, required: nobody issues a note on their own invoice, which
        # the issue judges under the invoice's lock
        self.issue_credit_note = bind(invoicing.issue_admin_credit_note, *store)
        self.adjust_credit = not_for_own(
            bind(credit_balance.adjust_credit, *store),
            uow_factory,
            own_account.of_user,
            "adjust credit",
        )
        # a refund's cut ends the upgrade quotes priced to the old expiry, on these rails
        self.refund_to_credit = not_for_own(
            partial(credit_refund.refund_to_credit, *store, rates, rails=rails),
            uow_factory,
            own_account.of_vm,
            "refund a VM",
        )
        self.complete_as_admin = not_for_own(
            bind(payments.complete_as_admin, *store, rails, queue),
            uow_factory,
            own_account.of_payment,
            "complete a payment",
        )
        self.complete_bank_transfer = not_for_own(
            bind(payments.complete_bank_transfer, *store, rails, queue),
            uow_factory,
            own_account.of_transfer,
            "complete a payment",
        )
        self.create_payment_method = bind(payment_methods.create_config, *store)
        self.update_payment_method = bind(payment_methods.update_config, *store, rails)
        self.refund_amount = bind(vm_removal.refund_amount, uow_factory, rates, clock)
        self.refund_by_hand = not_for_own(
            partial(manual_refund.refund_by_hand, uow_factory, rates, clock, queue, rails=rails),
            uow_factory,
            own_account.of_vm,
            "refund a VM",
        )
        # subscriptions and VMs; `admin_id` by keyword, required: nobody creates their own
        # subscription (it sets a price and may give paid time)
        self.create_subscription = bind(subscriptions.create_subscription, *store)
        # `admin_id` by keyword, required: who moved a subscription's expiry or changed a price is
        # written to its VM's history; nobody moves their own paid time or changes their own
        # price, which these two judge on the row they lock (`domain.own_account`)
        self.update_subscription = partial(
            subscriptions.update_subscription, uow_factory, clock=clock, rails=rails
        )
        self.update_line_item = partial(
            subscriptions.update_line_item, uow_factory, clock=clock, rails=rails
        )
        self.delete_subscription = bind(deletes.delete_subscription, uow_factory)
        # `admin_id` by keyword, required: nobody deletes an item of their own subscription,
        # which the delete judges on the subscription it locks
        self.delete_line_item = bind(deletes.delete_line_item, *store)
        # an extend ends the upgrade quotes priced to the old expiry, on this process's rails
        self.extend_vm = not_for_own(
            partial(vms.extend_vm, *store, queue, rails=rails),
            uow_factory,
            own_account.of_vm,
            "extend a VM",
        )
        self.power_vm = bind(vms.power_vm, uow_factory, queue)
        self.delete_vm = bind(vm_removal.delete_vm, uow_factory, queue, clock)
