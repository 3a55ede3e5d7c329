"""The automatic renewal's claim on its wallet's invoice (pure rules): one period, bought once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from domain.wallet_claim import (
    CLAIM_KEY,
    claim_is_for,
    claim_overtaken,
    claimed,
    claimed_period_of,
)
from tests.unit.test_subscription_rules import payment, subscription

PERIOD = datetime(2026, 3, 31, 12, 0, 0, 250_000, tzinfo=UTC)


def test_a_claim_keeps_the_metadata_and_names_its_period_in_whole_seconds() -> None:
    found = claimed(payment(metadata={"intervals": 1}), PERIOD)
    assert found is not None
    assert found.metadata == {"intervals": 1, CLAIM_KEY: "2026-03-31T12:00:00+00:00"}
    assert claimed_period_of(found.metadata) == PERIOD.replace(microsecond=0)
    assert claim_is_for(found.metadata, PERIOD)  # the stored expiry's second is the period's


@pytest.mark.parametrize("metadata", [None, {}, "{}", '{"intervals": 1}'])
def test_metadata_that_is_an_object_or_nothing_can_carry_a_claim(metadata: Any) -> None:
    found = claimed(payment(metadata=metadata), PERIOD)
    assert found is not None and claimed_period_of(found.metadata) is not None


@pytest.mark.parametrize("metadata", [[1], "[1]", 3, "not json"])
def test_metadata_that_is_not_an_object_cannot_carry_a_claim(metadata: Any) -> None:
    assert claimed(payment(metadata=metadata), PERIOD) is None


def test_a_claim_is_overtaken_once_the_subscription_ends_at_another_second() -> None:
    paying = claimed(payment(metadata={"intervals": 1}), PERIOD)
    assert paying is not None
    sub = subscription(expires=PERIOD.replace(microsecond=0), is_active=True, is_setup=True)
    assert claim_overtaken(paying, sub) is None
    later = attrs.evolve(sub, expires=PERIOD + timedelta(days=30))
    assert claim_overtaken(paying, later) == PERIOD.replace(microsecond=0)
    assert claim_overtaken(paying, attrs.evolve(sub, expires=None)) is not None


def test_an_unclaimed_payment_is_never_overtaken_and_always_for_the_period() -> None:
    plain = payment(metadata={"intervals": 1})
    later = subscription(expires=PERIOD + timedelta(days=30), is_active=True, is_setup=True)
    assert claim_overtaken(plain, later) is None
    assert claim_is_for(plain.metadata, None) and claim_is_for({CLAIM_KEY: "garbage"}, None)
