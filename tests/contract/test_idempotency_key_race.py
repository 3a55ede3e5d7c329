"""D11 across API nodes: the same Idempotency-Key and body sent twice at once get the same
payment, not a 409, whether a pending renewal is reused (review r14: every such race answered
409 on MariaDB) or a new one is stored; another body with the key is still 409."""

from __future__ import annotations

import asyncio

import pytest

from app.billing.errors import IdempotencyKeyReused
from domain.model import SubscriptionPayment, Vm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing import test_renewal as renewal_tests
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def _idem(shop: Shop, vm: Vm, key: str, body: bytes = b"body") -> SubscriptionPayment:
    return await renewal_tests._idem(shop, vm, key, body)


async def test_one_key_and_body_at_once_on_a_reused_payment_gets_it(shop: Shop) -> None:
    vm = await shop.order()
    pending = await shop.renew(vm)  # a plain renewal earlier: reused (D10)
    for n in range(10):
        got = await asyncio.gather(*(_idem(shop, vm, f"k{n}") for _ in range(2)))
        assert [p.id for p in got] == [pending.id, pending.id]


async def test_one_key_and_body_at_once_with_nothing_pending_gets_one_payment(
    shop: Shop,
) -> None:
    vm = await shop.order()
    for n in range(5):
        got = await asyncio.gather(*(_idem(shop, vm, f"n{n}") for _ in range(2)))
        assert got[0].id == got[1].id
        await shop.complete(got[0])


async def test_the_key_with_another_body_is_still_refused(shop: Shop) -> None:
    vm = await shop.order()
    await shop.renew(vm)
    first = await _idem(shop, vm, "k")
    assert (await _idem(shop, vm, "k")).id == first.id
    with pytest.raises(IdempotencyKeyReused, match="already used with another request"):
        await _idem(shop, vm, "k", body=b"other")
