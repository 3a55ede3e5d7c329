"""Shared rules of the admin catalogue use cases: patches, text and currency checks, usage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from app.billing.errors import NotFound
from domain.errors import DomainError, InvalidInput
from domain.model import ResourceLimits
from domain.money import Currency
from ports.storage import UnitOfWork, UnitOfWorkFactory

R = TypeVar("R")
V = TypeVar("V")
R_co = TypeVar("R_co", covariant=True)

#: a create body or a PATCH: field name → parsed value; a PATCH holds only the fields sent
#: (None = JSON null, for the nullable-patch fields).
Fields = Mapping[str, Any]

#: currencies a price may be in (the reference's `Currency` enum).
CURRENCIES = tuple(c.value for c in Currency)


class InUse(DomainError):
    """A delete refused because other rows still use the record (422)."""

    kind = "unprocessable"


class Duplicate(DomainError):
    """A second row with the same unique key (409)."""

    kind = "conflict"


class UnknownReference(DomainError):
    """A body names a row that does not exist (422: the request is well formed)."""

    kind = "unprocessable"


def matching(rows: Iterable[R], **wanted: object) -> list[R]:
    """The rows whose named fields equal every filter given; a filter of None matches all."""
    return [r for r in rows if all(v is None or getattr(r, k) == v for k, v in wanted.items())]


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} not found")


class ById(Protocol[R_co]):
    """A repository that looks a record up by its id."""

    async def get(self, record_id: int, /) -> R_co | None: ...


async def existing(records: ById[R_co], record_id: int, what: str) -> R_co:
    """The record with that id; a 404 (`{what} not found`) where there is none."""
    record = await records.get(record_id)
    if record is None:
        raise not_found(what)
    return record


async def info_of(
    uow_factory: UnitOfWorkFactory,
    record: Callable[[UnitOfWork, int], Awaitable[R]],
    record_id: int,
    infos: Callable[[UnitOfWork, list[R]], Awaitable[list[V]]],
) -> V:
    """One record as its listing shows it: `record` (a 404 where there is none) through the
    listing's own `infos`."""
    async with uow_factory() as uow:
        return (await infos(uow, [await record(uow, record_id)]))[0]


async def committed(
    uow: UnitOfWork, row: R, infos: Callable[[UnitOfWork, list[R]], Awaitable[list[V]]]
) -> V:
    """`row` as its listing shows it (read in the transaction), then the transaction committed."""
    info = (await infos(uow, [row]))[0]
    await uow.commit()
    return info


async def check_reference(records: ById[object], record_id: int, what: str) -> None:
    """A body's reference to another row; a 422 (`{what} {id} not found`) where there is none."""
    if await records.get(record_id) is None:
        raise UnknownReference(f"{what} {record_id} not found")


def trimmed(value: Any, message: str) -> str:
    """The text trimmed; empty after trimming is a 400 with `message`."""
    text = str(value).strip()
    if not text:
        raise InvalidInput(message)
    return text


def blank_to_none(value: Any) -> str | None:
    """Optional text: trimmed, blank → None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def price_currency(value: Any, message: str = "Currency cannot be empty") -> str:
    """A price's currency, trimmed and upper-cased; only supported currencies (a plan in an
    unknown currency could never be charged)."""
    code = trimmed(value, message).upper()
    if code not in CURRENCIES:
        raise InvalidInput(f"Unsupported currency: {code}. Supported: {', '.join(CURRENCIES)}")
    return code


#: resource caps of templates and pricings (nullable-patch: null removes the cap)
LIMIT_FIELDS = tuple(f.name for f in attrs.fields(ResourceLimits))


def evolve(record: Any, changes: Fields) -> Any:
    """The record with `changes`; cap fields among them go into its `limits`."""
    caps = {k: v for k, v in changes.items() if k in LIMIT_FIELDS}
    rest = {k: v for k, v in changes.items() if k not in LIMIT_FIELDS}
    if caps:
        rest["limits"] = attrs.evolve(record.limits, **caps)
    return attrs.evolve(record, **rest)


@attrs.frozen
class Usage:
    """Live (not deleted) VMs per template, image, host, custom pricing; templates per plan."""

    vms_by_template: Mapping[int, int]
    vms_by_image: Mapping[int, int]
    vms_by_host: Mapping[int, int]
    templates_by_plan: Mapping[int, int]
    enabled_templates_by_plan: Mapping[int, int]


async def usage(uow: UnitOfWork) -> Usage:
    """Counts the admin views show; one pass over the live VMs and the templates."""
    vms = await uow.vms.list_active()
    templates = await uow.templates.list_all()
    return Usage(
        vms_by_template=Counter(v.template_id for v in vms if v.template_id is not None),
        vms_by_image=Counter(v.image_id for v in vms),
        vms_by_host=Counter(v.host_id for v in vms),
        templates_by_plan=Counter(t.cost_plan_id for t in templates),
        enabled_templates_by_plan=Counter(t.cost_plan_id for t in templates if t.enabled),
    )
