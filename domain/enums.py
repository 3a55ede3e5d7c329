"""Integer-coded enums exactly as LNVPS stores them (schema.md §1)."""

from __future__ import annotations

from enum import IntEnum

from domain.errors import InvalidInput


class _Wire(IntEnum):
    """An enum the API names by its member name in lower case (`lightning`, `bank_transfer`)."""

    @property
    def api_name(self) -> str:
        """The wire name: the member name in lower case."""
        return self.name.lower()


class IntervalType(_Wire):
    """Unit of a billing interval."""

    DAY = 0
    MONTH = 1
    YEAR = 2

    @classmethod
    def parse(cls, text: str) -> IntervalType:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InvalidInput(f"Unknown interval type: {text}") from None


class PaymentMethod(_Wire):
    """How a payment is made."""

    LIGHTNING = 0
    REVOLUT = 1
    PAYPAL = 2
    STRIPE = 3
    #: a manual bank transfer, confirmed by an operator through the admin API
    BANK_TRANSFER = 4

    @property
    def display_name(self) -> str:
        return _PAYMENT_METHOD_DISPLAY.get(self.name, self.name.replace("_", " ").capitalize())

    @classmethod
    def parse(cls, text: str) -> PaymentMethod:
        """Parse the exact lower-case wire form (`lightning`, `revolut`, `paypal`, …)."""
        for member in cls:
            if member.api_name == text:
                return member
        raise InvalidInput(f"Unknown payment method: {text}")

    @classmethod
    def wire_names(cls, *extra: str) -> list[str]:
        """Every method's wire name in code order, then `extra` (e.g. `NWC`, `LNURL`): the one
        source of every payment-method list and JSON-schema enum."""
        return [member.api_name for member in cls] + list(extra)


#: display names that are not the member name capitalised
_PAYMENT_METHOD_DISPLAY = {"PAYPAL": "PayPal"}
#: Lightning paid from the user's own NWC wallet (a `method=` on VM renewal, and a listed way
#: to pay); not a stored method: the payment is a Lightning one.
NWC = "nwc"
#: Lightning paid through LNURL-pay (listed among the ways to pay; stored as Lightning).
LNURL = "lnurl"


class SubscriptionPaymentType(_Wire):
    """Why a subscription payment was made."""

    PURCHASE = 0
    RENEWAL = 1
    UPGRADE = 2


class LegacyPaymentType(IntEnum):
    """`vm_payment.payment_type` before subscriptions existed."""

    RENEWAL = 0
    UPGRADE = 1


class SubscriptionType(IntEnum):
    """Product a subscription line item sells."""

    IP_RANGE = 0
    ASN_SPONSORING = 1
    DNS_HOSTING = 2
    VPS = 3


class DiskType(IntEnum):
    HDD = 0
    SSD = 1


class DiskInterface(IntEnum):
    SATA = 0
    SCSI = 1
    PCIE = 2

    @property
    def display_name(self) -> str:
        return {0: "SATA", 1: "SCSI", 2: "PCIe"}[self.value]


class CpuMfg(IntEnum):
    UNKNOWN = 0
    INTEL = 1
    AMD = 2
    APPLE = 3
    NVIDIA = 4
    ARM = 5


class CpuArch(IntEnum):
    UNKNOWN = 0
    X86_64 = 1
    ARM64 = 2


class OsDistribution(IntEnum):
    UBUNTU = 0
    DEBIAN = 1
    CENTOS = 2
    FEDORA = 3
    FREEBSD = 4
    OPENSUSE = 5
    ARCHLINUX = 6
    REDHAT_ENTERPRISE = 7


class VmHostKind(IntEnum):
    PROXMOX = 0
    LIBVIRT = 1
    DUMMY = 65535


class IpRangeAllocationMode(IntEnum):
    RANDOM = 0
    SEQUENTIAL = 1
    SLAAC_EUI64 = 2


class InternetRegistry(IntEnum):
    ARIN = 0
    RIPE = 1
    APNIC = 2
    LACNIC = 3
    AFRINIC = 4


class VmHistoryActionType(_Wire):
    CREATED = 0
    STARTED = 1
    STOPPED = 2
    RESTARTED = 3
    DELETED = 4
    EXPIRED = 5
    RENEWED = 6
    REINSTALLED = 7
    STATE_CHANGED = 8
    PAYMENT_RECEIVED = 9
    CONFIGURATION_CHANGED = 10


class SwitchedOff(IntEnum):
    """`subscription.switched_off` (ours, NULL: not switched off): an admin switched an active
    subscription off (`is_active` true → false). It is never renewed again, and its paid time
    runs out as an unpaid one's does (`domain.switch_off`)."""

    #: switched off; the lifecycle still ends it at its expiry and after its grace period
    WINDING_DOWN = 1
    #: switched off and ended (deleted after the grace period, or its VM deleted)
    ENDED = 2


class AdminResource(IntEnum):
    USERS = 0
    VIRTUAL_MACHINES = 1
    HOSTS = 2
    PAYMENTS = 3
    ANALYTICS = 4
    SYSTEM = 5
    ROLES = 6
    AUDIT = 7
    ACCESS_POLICY = 8
    COMPANY = 9
    IP_RANGE = 10
    ROUTER = 11
    VM_CUSTOM_PRICING = 12
    HOST_REGION = 13
    VM_OS_IMAGE = 14
    VM_PAYMENT = 15
    VM_TEMPLATE = 16
    SUBSCRIPTIONS = 17
    SUBSCRIPTION_LINE_ITEMS = 18
    SUBSCRIPTION_PAYMENTS = 19
    IP_SPACE = 20
    PAYMENT_METHOD_CONFIG = 21


class AdminAction(IntEnum):
    CREATE = 0
    VIEW = 1
    UPDATE = 2
    DELETE = 3
