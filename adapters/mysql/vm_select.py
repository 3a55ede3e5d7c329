"""The VM select both read models share: the joined tables and the filter shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, false, func, select

from adapters.mysql import tables as t
from ports.storage.reads import VmFilter

_KEY = t.user_ssh_key.c
Row = TypeVar("Row", bound=Sequence[Any])


FilterShape = tuple[bool, bool, int, bool]


def filter_shape(which: VmFilter) -> tuple[FilterShape, dict[str, Any]] | None:
    """The shape of a filter (by user, by owner's key, 0/1/many ids, deleted too) and its
    bound values; None when it selects nothing (an empty `vm_ids`)."""
    vm_ids = which.vm_ids
    if vm_ids is not None and not vm_ids:
        return None
    params: dict[str, Any] = {}
    if which.user_id is not None:
        params["user_id"] = which.user_id
    if which.owner_pubkey is not None:
        params["pubkey"] = which.owner_pubkey
    ids = 0
    if vm_ids is not None:
        wanted = sorted(set(vm_ids))
        ids = 1 if len(wanted) == 1 else 2
        if ids == 1:
            params["vm_id"] = wanted[0]
        else:
            params["vm_ids"] = wanted
    shape = (which.user_id is not None, which.owner_pubkey is not None, ids, which.deleted)
    return shape, params


class ShapedSelect:
    """A select over `vm` filtered per shape, each shape built once with bound parameters so
    that a call costs no statement building and no cache-key walk (issue 10): by user
    `vm.user_id = :user_id`; by the owner's key `users.pubkey = :pubkey` (a unique index, so
    the caller needs no user look-up first); 1 id `vm.id = :vm_id`, many `vm.id IN :vm_ids`
    (expanding), 0 none; without `deleted` only rows not deleted."""

    def __init__(self, base: Select[Any]) -> None:
        self._base = base
        self._built: dict[FilterShape, Select[Any]] = {}

    def select(self, shape: FilterShape) -> Select[Any]:
        found = self._built.get(shape)
        if found is not None:
            return found
        by_user, by_pubkey, ids, deleted = shape
        vm = t.vm.c
        where: list[ColumnElement[bool]] = []
        if by_user:
            where.append(vm.user_id == bindparam("user_id"))
        if by_pubkey:
            owner = select(t.users.c.id).where(t.users.c.pubkey == bindparam("pubkey"))
            where.append(vm.user_id == owner.scalar_subquery())
        if ids == 1:
            where.append(vm.id == bindparam("vm_id"))
        elif ids:
            where.append(vm.id.in_(bindparam("vm_ids", expanding=True)))
        if not deleted:
            where.append(vm.deleted == false())  # a literal: no parameter to bind per call
        built = self._built[shape] = self._base.where(*where)
        return built


def status_select(columns: Sequence[Any]) -> Select[Any]:
    """`columns` of VM ⋈ line item ⋈ subscription, image, SSH key, template ⋈ cost plan or
    custom template ⋈ pricing, the offer's region, live addresses ⋈ their ranges (all outer
    joins), one row per address, in no set order: `in_vm_order` sorts them (an ORDER BY
    across the joined tables made MariaDB copy the rows into a temporary table and sort them
    there, ~20 % of the read's time on the server)."""
    vm, li, sub = t.vm, t.subscription_line_item, t.subscription
    template, custom, pricing = t.vm_template, t.vm_custom_template, t.vm_custom_pricing
    ip, ip_range = t.vm_ip_assignment, t.ip_range
    joined = (
        vm.outerjoin(li, li.c.id == vm.c.subscription_line_item_id)
        .outerjoin(sub, sub.c.id == li.c.subscription_id)
        .outerjoin(t.vm_os_image, t.vm_os_image.c.id == vm.c.image_id)
        .outerjoin(t.user_ssh_key, _KEY.id == vm.c.ssh_key_id)
        .outerjoin(template, template.c.id == vm.c.template_id)
        .outerjoin(t.vm_cost_plan, t.vm_cost_plan.c.id == template.c.cost_plan_id)
        .outerjoin(custom, custom.c.id == vm.c.custom_template_id)
        .outerjoin(pricing, pricing.c.id == custom.c.pricing_id)
        .outerjoin(
            t.vm_host_region,
            t.vm_host_region.c.id == func.coalesce(template.c.region_id, pricing.c.region_id),
        )
        .outerjoin(ip, and_(ip.c.vm_id == vm.c.id, ip.c.deleted == false()))
        .outerjoin(ip_range, ip_range.c.id == ip.c.ip_range_id)
    )
    return select(*columns).select_from(joined)


def in_vm_order(rows: Sequence[Row], vm_id_at: int, ip_id_at: int) -> list[Row]:
    """`status_select`'s rows by VM id, then address id (a VM without addresses: one row)."""
    return sorted(rows, key=lambda row: (row[vm_id_at], row[ip_id_at] or 0))
