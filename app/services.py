"""The ports and settings the driving adapters hand to use cases, built by the composition root."""

from __future__ import annotations

import attrs

from app.billing.rails import PaymentRails
from app.bound.account import AccountUseCases
from app.bound.admin import AdminUseCases
from app.bound.billing import BillingUseCases
from app.bound.infra import InfraUseCases
from domain.credit import MAX_LIVE_QUOTES
from domain.nwc_uri import PUBLIC_TLS_RELAYS, RelayPolicy
from domain.tax import NO_TAX, TaxRates
from domain.unpaid_ip_room import DEFAULT_UNPAID_IP_ROOM, UnpaidIpRoom
from domain.unpaid_room import DEFAULT_UNPAID_ROOM, UnpaidRoom
from ports.cache import CatalogueCache
from ports.clock import Clock
from ports.nwc import NwcWallet
from ports.queue import WorkQueue
from ports.ratelimit import RateLimiter
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory
from ports.vm_state import VmStateCache
from ports.vmhost import HostProber, VmHostResolver


@attrs.frozen(kw_only=True)
class Services:
    """One bundle per process: the ports, and the use cases built once with them injected
    (`svc.billing.renew(user_id=…)`); the plain functions in `app` stay for tests and jobs."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    rails: PaymentRails
    rates: RateStore
    queue: WorkQueue
    hosts: VmHostResolver
    tax_rates: TaxRates = NO_TAX
    #: D22: the e-mail gate applies only when SMTP is configured.
    require_verified_email: bool = False
    #: base URL the API is reachable at (LNURL callbacks, invoice links).
    public_url: str = "http://127.0.0.1:8000"
    #: days of grace after expiry before deletion, beyond the age tiers (D16).
    delete_after_days: int = 3
    #: last known host state per VM, written by the worker (None: the API derives one).
    vm_states: VmStateCache | None = None
    #: pays `method=nwc` renewals from the user's wallet (None: `nwc` means plain Lightning)
    nwc_wallet: NwcWallet | None = None
    #: which relays a stored wallet string may name (production: public `wss://` only)
    nwc_relays: RelayPolicy = PUBLIC_TLS_RELAYS
    #: D25: never-paid VMs one user may hold at once (`max-unpaid-vms`)
    max_unpaid_vms: int = 3
    #: D25: the room never-paid VM orders may hold, per user and per host
    #: (`max-unpaid-room`, `unpaid-host-share`)
    unpaid_room: UnpaidRoom = DEFAULT_UNPAID_ROOM
    #: never-paid IP-range subscriptions one user may hold at once (`max-unpaid-subscriptions`)
    max_unpaid_subscriptions: int = 3
    #: D25: the addresses never-paid IP-range orders may hold, per user and per IP space
    #: (`max-unpaid-ip-room`, `unpaid-ip-space-share`)
    unpaid_ip_room: UnpaidIpRoom = DEFAULT_UNPAID_IP_ROOM
    #: live renewal and upgrade quotes one subscription may hold at once (`max-live-quotes`)
    max_live_quotes: int = MAX_LIVE_QUOTES
    #: D25: per-client-address limit of the LNURL endpoints (None: not limited)
    lnurl_limiter: RateLimiter | None = None
    #: D25: per-client-address limit of the order routes (None: not limited)
    order_limiter: RateLimiter | None = None
    #: per-user limit of the VM actions, each a hypervisor call (None: not limited)
    vm_action_limiter: RateLimiter | None = None
    #: e-mail verification mails per user and per target address (None: not limited)
    email_verify_limiter: RateLimiter | None = None
    #: key the per-address limits by the last `X-Forwarded-For` address (behind a reverse proxy)
    trust_forwarded_for: bool = False
    #: tests a host row's connection before the admin API saves it (None: saved untested)
    host_prober: HostProber | None = None
    #: catalogue listings (offers with capacity, images, payment methods); None: not cached
    catalogue_cache: CatalogueCache | None = None

    #: payment use cases with the ports given (renewals settle from credit)
    billing: BillingUseCases = attrs.field(
        init=False, default=attrs.Factory(BillingUseCases, takes_self=True)
    )
    #: user-side use cases with the ports given
    account: AccountUseCases = attrs.field(
        init=False, default=attrs.Factory(AccountUseCases, takes_self=True)
    )
    #: admin use cases with the ports given
    admin: AdminUseCases = attrs.field(
        init=False, default=attrs.Factory(AdminUseCases, takes_self=True)
    )
    #: admin use cases on hosts, regions, images, templates, pricing, companies, cost plans
    infra: InfraUseCases = attrs.field(
        init=False, default=attrs.Factory(InfraUseCases, takes_self=True)
    )
