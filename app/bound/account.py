"""The user-side use cases a driving adapter calls: profile, SSH keys, orders, VM status."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from app.account import profile, ssh_keys
from app.billing import credit_balance, ip_purchase, ordering
from app.bound.inject import bind
from app.metrics_cache import MetricsCache
from app.queries.vms import user_vm_status
from app.vm_metrics import vm_time_series

if TYPE_CHECKING:
    from app.services import Services


class AccountUseCases:
    """Built once per process from the ports and the public URL."""

    def __init__(self, svc: Services) -> None:
        uow_factory, clock, queue = svc.uow_factory, svc.clock, svc.queue
        # with this server's public URL and payment rails
        self.update_account = partial(
            profile.update_account,
            uow_factory,
            clock,
            queue,
            public_url=svc.public_url,
            rails=svc.rails,
            nwc_relays=svc.nwc_relays,
            mail_limiter=svc.email_verify_limiter,
        )
        self.verify_email = bind(profile.verify_email, uow_factory)
        self.list_ssh_keys = bind(ssh_keys.list_ssh_keys, uow_factory)
        self.add_ssh_key_by_owner = bind(ssh_keys.add_ssh_key_by_owner, uow_factory, clock)
        self.balances_of = bind(credit_balance.balances_of, uow_factory)
        self.balance_parts_of = bind(credit_balance.balance_parts_of, uow_factory)
        self.ledger_page = bind(credit_balance.ledger_page, uow_factory)
        self.order_vm = bind(ordering.order_vm, uow_factory, clock)
        self.order_custom_vm = bind(ordering.order_custom_vm, uow_factory, clock)
        self.create_subscription = bind(ip_purchase.create_subscription, uow_factory, clock)
        self.vm_status = bind(user_vm_status, uow_factory, svc.vm_states)
        self.vm_time_series = bind(vm_time_series, uow_factory, svc.hosts, MetricsCache())
