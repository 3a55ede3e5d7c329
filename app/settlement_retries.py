"""How the Lightning intake judges a failed completion: retried for as long as it takes,
recorded at once, or retried a few times and then recorded."""

from __future__ import annotations

from domain.errors import DomainError
from ports.failures import RetryableError
from ports.fiat import FiatUnavailable
from ports.lightning import LightningUnavailable
from ports.payment_rail import RailUnavailable
from ports.rates import RateSourceUnavailable

#: how many times in a row completing one settlement may fail with a conflict or an
#: unexpected error (a bug) before it is recorded as a settlement problem and passed over
MAX_STRIKES = 5

#: errors of the libraries `app` may not import, known by module and class name anywhere in
#: an exception's class hierarchy: SQLAlchemy's for a database that cannot be reached or
#: talked to now (a lost connection, the server gone or restarting, no pooled connection
#: free in time), and aiohttp's client errors (the network). SQLAlchemy's other errors
#: (IntegrityError, DataError, ProgrammingError …) fail the same way at every try, so they
#: count as strikes like any other bug.
_OUTAGE_CLASSES = frozenset(
    {
        ("sqlalchemy.exc", "OperationalError"),
        ("sqlalchemy.exc", "InterfaceError"),
        ("sqlalchemy.exc", "DisconnectionError"),
        ("sqlalchemy.exc", "TimeoutError"),
        ("aiohttp.client_exceptions", "ClientError"),
    }
)

#: the network's errors, and the ports' own outage errors (a node, provider or rate source
#: that cannot be reached)
_OUTAGES = (OSError, LightningUnavailable, RailUnavailable, FiatUnavailable, RateSourceUnavailable)


def passing(err: BaseException) -> bool:
    """An outage that goes by by itself: storage busy or down, the node, a provider or the
    network gone (`OSError`, which `TimeoutError` and so `asyncio.TimeoutError` are), no
    exchange rate for now (a `DomainError` of kind "unavailable"). The intake stops at that
    settlement and tries it again later, however long it takes: it is never skipped."""
    if isinstance(err, DomainError):
        return err.kind == "unavailable"
    if isinstance(err, RetryableError):
        return err.transient
    if isinstance(err, _OUTAGES):
        return True
    if getattr(err, "connection_invalidated", False) is True:  # a DBAPI error that lost it
        return True
    return any((cls.__module__, cls.__name__) in _OUTAGE_CLASSES for cls in type(err).__mro__)


def refused_by_rule(err: BaseException) -> bool:
    """A rule of the domain refused it: any `DomainError` but an "unavailable" one."""
    return isinstance(err, DomainError) and err.kind != "unavailable"


def refused_for_good(err: BaseException) -> bool:
    """Completing a settled payment failed in a way no retry cures: a rule of the domain
    refused it (an offer withdrawn meanwhile, less received than invoiced …). A "conflict"
    is not: what clashed (a concurrent change of the account credit, a lock, a row written
    by a rival at the same moment) may well be gone at the next try."""
    return isinstance(err, DomainError) and err.kind not in ("unavailable", "conflict")


class Strikes:
    """Failures in a row of each settlement (by payment hash) that are neither passing nor
    refused for good: a conflict, or an unexpected error (a bug, a broken row). Retried
    like an outage, but after `limit` of them the settlement is recorded for the operator,
    so one settlement that can never complete does not stop the intake for everyone. (The
    lapsed-order sweep keeps one per payment id too, with `add` and `out` only, for the
    passes a cancel failed in, however it failed.)

    Kept in memory, in the worker that runs the intake: a restart starts counting again,
    which only delays the record by another `limit` tries and never skips a settlement.
    """

    def __init__(self, limit: int = MAX_STRIKES) -> None:
        if limit < 1:
            raise ValueError(f"a strike limit must be at least 1, got {limit}")
        self.limit = limit
        self._counts: dict[bytes, int] = {}

    def add(self, key: bytes) -> int:
        """Count one more failure of that settlement; how many in a row it has now."""
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    def out(self, count: int) -> bool:
        """Whether `count` failures in a row are enough to record the settlement."""
        return count >= self.limit

    def judge(self, key: bytes, err: BaseException) -> tuple[bool, int]:
        """(give up now, failures in a row) for this failure of `key`: never for an outage
        (`passing`: not counted, retried for as long as it takes), at once for a refusal
        for good (`refused_for_good`), after `limit` in a row for anything else."""
        if passing(err):
            return False, 0
        if refused_for_good(err):
            return True, 1
        count = self.add(key)
        return self.out(count), count

    def clear(self, key: bytes) -> None:
        """The settlement is dealt with (completed, passed over or recorded)."""
        self._counts.pop(key, None)
