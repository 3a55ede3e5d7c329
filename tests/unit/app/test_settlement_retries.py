"""Which failures of a settlement's completion are outages, refusals for good, or strikes."""

from __future__ import annotations

import aiohttp
import pytest
import sqlalchemy.exc

from app.billing.credit_quote import CreditChanged
from app.billing.errors import PaymentProviderUnavailable, ShortSettlement
from app.settlement_retries import Strikes, passing, refused_by_rule, refused_for_good
from domain.errors import DuplicateKey, NoExchangeRate
from ports.fiat import FiatUnavailable
from ports.lightning import LightningUnavailable
from ports.storage import StorageBusy


def _dbapi(kind: type[sqlalchemy.exc.DBAPIError], invalidated: bool = False) -> Exception:
    return kind("SELECT 1", {}, ConnectionResetError("gone"), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "err",
    [
        StorageBusy(),
        OSError("no route to host"),
        ConnectionResetError("reset"),
        TimeoutError(),
        NoExchangeRate("no rate"),
        PaymentProviderUnavailable("node down"),
        LightningUnavailable("LND restarting"),
        FiatUnavailable("Revolut down"),
        _dbapi(sqlalchemy.exc.OperationalError),
        _dbapi(sqlalchemy.exc.InterfaceError),
        _dbapi(sqlalchemy.exc.ProgrammingError, invalidated=True),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        sqlalchemy.exc.DisconnectionError("gone"),
        aiohttp.ClientConnectionError("reset"),
        aiohttp.ClientPayloadError("cut short"),
    ],
)
def test_outages_are_passing(err: Exception) -> None:
    assert passing(err)
    assert not refused_for_good(err)


@pytest.mark.parametrize(
    "err",
    [
        KeyError("vm_id"),
        TypeError("bad operand"),
        ValueError("broken row"),
        LookupError("payment has no subscription"),
        _dbapi(sqlalchemy.exc.IntegrityError),
        _dbapi(sqlalchemy.exc.DataError),
        _dbapi(sqlalchemy.exc.ProgrammingError),
        CreditChanged("the balance changed"),
        DuplicateKey("An invoice with this payment or number exists"),
    ],
)
def test_bugs_and_conflicts_are_strikes(err: Exception) -> None:
    assert not passing(err)
    assert not refused_for_good(err)


def test_a_rule_of_the_domain_is_refused_for_good() -> None:
    err = ShortSettlement("too little")
    assert refused_for_good(err) and refused_by_rule(err) and not passing(err)


def test_a_conflict_is_refused_by_a_rule_but_not_for_good() -> None:
    err = CreditChanged("the balance changed")
    assert refused_by_rule(err) and not refused_for_good(err)


def test_strikes_count_per_settlement_until_cleared() -> None:
    strikes = Strikes(limit=2)
    assert strikes.add(b"a") == 1 and not strikes.out(1)
    assert strikes.add(b"b") == 1
    assert strikes.add(b"a") == 2 and strikes.out(2)
    strikes.clear(b"a")
    assert strikes.add(b"a") == 1
    with pytest.raises(ValueError):
        Strikes(limit=0)
