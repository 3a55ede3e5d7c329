"""D25's room limits on never-paid orders: the per-user budget and the per-host share."""

from __future__ import annotations

from fractions import Fraction

import pytest

from domain.model import GIB
from domain.unpaid_room import (
    DEFAULT_UNPAID_ROOM,
    NO_UNPAID_ROOM_LIMITS,
    Held,
    UnpaidRoom,
    UnpaidRoomExceeded,
    check_unpaid_budget,
    within_host_share,
)

LIMITS = UnpaidRoom(cpu=8, memory=32 * GIB, disk=500 * GIB)


def test_an_order_that_fills_the_budget_exactly_passes() -> None:
    held = Held(cpu=6, memory=24 * GIB, disk=400 * GIB)
    check_unpaid_budget(LIMITS, held, Held(cpu=2, memory=8 * GIB, disk=100 * GIB))


@pytest.mark.parametrize(
    ("wanted", "said"),
    [
        (Held(3, 8 * GIB, 100 * GIB), "9 vCPUs (at most 8)"),
        (Held(2, 8 * GIB + GIB, 100 * GIB), "33 GiB memory (at most 32 GiB)"),
        (Held(2, 8 * GIB, 100 * GIB + 1), "500.1 GiB disk (at most 500 GiB)"),
        (Held(2, 8 * GIB, 101 * GIB + GIB // 2), "501.5 GiB disk (at most 500 GiB)"),
    ],
)
def test_one_unit_past_any_limit_is_refused_naming_it(wanted: Held, said: str) -> None:
    held = Held(cpu=6, memory=24 * GIB, disk=400 * GIB)
    with pytest.raises(UnpaidRoomExceeded) as err:
        check_unpaid_budget(LIMITS, held, wanted)
    assert err.value.kind == "unprocessable"  # 422, as D25's other caps
    assert err.value.message.startswith(f"Your unpaid orders would hold {said}:")
    assert "pay for an order" in err.value.message


def test_every_limit_passed_is_named() -> None:
    with pytest.raises(UnpaidRoomExceeded) as err:
        check_unpaid_budget(LIMITS, Held(), Held(9, 33 * GIB, 501 * GIB))
    assert err.value.message.startswith(
        "Your unpaid orders would hold 9 vCPUs (at most 8), 33 GiB memory (at most 32 GiB),"
        " 501 GiB disk (at most 500 GiB):"
    )


def test_a_limit_that_is_off_never_refuses() -> None:
    huge = Held(cpu=10**6, memory=10**15, disk=10**15)
    check_unpaid_budget(NO_UNPAID_ROOM_LIMITS, huge, huge)
    only_cpu = UnpaidRoom(cpu=4, memory=None, disk=None)
    check_unpaid_budget(only_cpu, Held(2, 10**15, 10**15), Held(2, 10**15, 10**15))
    with pytest.raises(UnpaidRoomExceeded):
        check_unpaid_budget(only_cpu, Held(2, 0, 0), Held(3, 0, 0))
    assert only_cpu.budgeted and not UnpaidRoom(cpu=None, memory=None, disk=None).budgeted


def test_the_default_budget_is_one_large_vps_and_half_of_each_host() -> None:
    default = DEFAULT_UNPAID_ROOM
    assert (default.cpu, default.memory, default.disk) == (16, 64 * GIB, 1024 * GIB)
    assert default.host_share == Fraction(1, 2)


def test_the_host_share_bounds_the_never_paid_orders_together() -> None:
    half = Fraction(1, 2)
    assert within_host_share(6, 2, Fraction(16), half)  # 8 of 16: exactly half
    assert not within_host_share(6, 3, Fraction(16), half)
    assert not within_host_share(0, 16, Fraction(16), half)  # one order sized like the host
    # a load factor makes the capacity fractional: 13 × 1.5 = 19.5, half of it 9.75
    assert within_host_share(0, 9, Fraction(39, 2), half)
    assert not within_host_share(0, 10, Fraction(39, 2), half)


def test_without_a_share_only_capacity_judges() -> None:
    assert within_host_share(16, 16, Fraction(16), None)  # a paid placement: no share
