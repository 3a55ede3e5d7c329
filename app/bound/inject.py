"""`bind`: a use case with its leading port arguments given once, the rest kept typed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")


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
