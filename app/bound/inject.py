"""`bind` and `repricing`: a use case with its ports given once, its own arguments kept typed."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar, overload

from app.billing.rails import PaymentRails
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
F = TypeVar("F", contravariant=True)
T = TypeVar("T", covariant=True)
F2 = TypeVar("F2")
T2 = TypeVar("T2")


@overload
def bind(fn: Callable[Concatenate[A, P], R], a: A, /) -> Callable[P, R]: ...
@overload
def bind(fn: Callable[Concatenate[A, B, P], R], a: A, b: B, /) -> Callable[P, R]: ...
@overload
def bind(fn: Callable[Concatenate[A, B, C, P], R], a: A, b: B, c: C, /) -> Callable[P, R]: ...
@overload
def bind(
    fn: Callable[Concatenate[A, B, C, D, P], R], a: A, b: B, c: C, d: D, /
) -> Callable[P, R]: ...
@overload
def bind(
    fn: Callable[Concatenate[A, B, C, D, E, P], R], a: A, b: B, c: C, d: D, e: E, /
) -> Callable[P, R]: ...
def bind(fn: Callable[..., R], /, *deps: object) -> Callable[..., R]:
    """`fn` with its first `len(deps)` positional arguments fixed; the rest are the caller's."""

    @functools.wraps(fn)
    def call(*args: object, **kwargs: object) -> R:
        return fn(*deps, *args, **kwargs)

    return call


class RepricingUpdate(Protocol[F, T]):
    """An admin update that may reprice pending payments (`clock`, `rails` by keyword)."""

    def __call__(
        self,
        uow_factory: UnitOfWorkFactory,
        item_id: int,
        fields: F,
        /,
        *,
        clock: Clock,
        rails: PaymentRails | None,
    ) -> Awaitable[T]: ...


def repricing(
    fn: RepricingUpdate[F2, T2],
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
) -> Callable[[int, F2], Awaitable[T2]]:
    """`fn(item_id, fields)` with the ports given; pending payments are repriced on the rails."""

    def call(item_id: int, fields: F2) -> Awaitable[T2]:
        return fn(uow_factory, item_id, fields, clock=clock, rails=rails)

    return call
