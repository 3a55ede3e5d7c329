"""Admin storage on memory, SQLite and MariaDB: audit records, role edits/deletes, config delete."""

from __future__ import annotations

from typing import Any

from domain.enums import AdminAction, AdminResource, PaymentMethod, SubscriptionType
from domain.model import (
    AdminAudit,
    AdminRole,
    Company,
    LineItem,
    PaymentMethodConfig,
    RoleAssignment,
    User,
)
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at, new_subscription

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

R, A = AdminResource, AdminAction


def _entry(user_id: int, n: int, **fields: Any) -> AdminAudit:
    values: dict[str, Any] = dict(
        id=0,
        user_id=user_id,
        at=at(n),
        method="PATCH",
        path=f"/api/admin/v1/roles/{n}",
        resource="roles",
        resource_id=str(n),
        summary={"body": {"name": "x" * n}},
        status=200,
    )
    values.update(fields)
    return AdminAudit(**values)


async def test_audit_records_read_back_newest_first_and_per_admin(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        for n in range(1, 4):
            await uow.admin_audit.add(_entry(7, n))
        stored = await uow.admin_audit.add(_entry(8, 4, resource_id=None, summary=None, status=422))
        await uow.commit()
    async with uow_factory() as uow:
        page = await uow.admin_audit.list_page(2, 0)
        assert page.total == 4 and [e.id for e in page.items] == [stored.id, stored.id - 1]
        assert page.items[0] == stored
        mine = await uow.admin_audit.list_page(10, 1, user_id=7)
        assert mine.total == 3 and [e.at for e in mine.items] == [at(2), at(1)]
        assert mine.items[0].summary == {"body": {"name": "xx"}}


async def test_audit_record_is_rolled_back_with_its_transaction(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.admin_audit.add(_entry(7, 1))
    async with uow_factory() as uow:
        assert (await uow.admin_audit.list_page(10, 0)).total == 0


async def test_role_update_replaces_fields_and_permissions_delete_removes_all(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        role = await uow.roles.add_role(
            AdminRole(id=0, name="ops", created_at=at(1), updated_at=at(1))
        )
        other = await uow.roles.add_role(
            AdminRole(id=0, name="other", created_at=at(1), updated_at=at(1))
        )
        user = await uow.users.add(User(id=0, pubkey=b"\x05" * 32, created=at(1)))
        await uow.roles.set_permissions(role.id, [(R.USERS, A.VIEW)], at(1))
        await uow.roles.set_permissions(other.id, [(R.HOSTS, A.VIEW)], at(1))
        await uow.roles.assign(
            RoleAssignment(id=0, user_id=user.id, role_id=role.id, assigned_at=at(1))
        )
        await uow.commit()
    async with uow_factory() as uow:
        await uow.roles.update_role(
            AdminRole(id=role.id, name="ops2", description="d", created_at=at(1), updated_at=at(3))
        )
        await uow.roles.set_permissions(
            role.id, [(R.VM_TEMPLATE, A.UPDATE), (R.USERS, A.DELETE), (R.USERS, A.DELETE)], at(3)
        )
        await uow.commit()
    async with uow_factory() as uow:
        got = await uow.roles.get_role(role.id)
        assert got is not None and (got.name, got.description, got.updated_at) == (
            "ops2",
            "d",
            at(3),
        )
        perms = [(p.resource, p.action) for p in await uow.roles.permissions_of_role(role.id)]
        assert perms == [(R.USERS, A.DELETE), (R.VM_TEMPLATE, A.UPDATE)]
        assert await uow.roles.permissions_of(user.id, at(4)) == frozenset(perms)
        assert await uow.roles.delete_role(role.id) is True
        assert await uow.roles.delete_role(role.id) is False
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.roles.get_role(role.id) is None
        assert await uow.roles.permissions_of_role(role.id) == []
        assert await uow.roles.assignments_of(user.id) == []
        other_perms = await uow.roles.permissions_of_role(other.id)
        assert [(p.resource, p.action) for p in other_perms] == [(R.HOSTS, A.VIEW)]


async def test_payment_method_config_delete(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        company = await uow.companies.add(Company(id=0, created=at(1), name="C"))
        config = await uow.payment_methods.add(
            PaymentMethodConfig(
                id=0,
                company_id=company.id,
                payment_method=PaymentMethod.LIGHTNING,
                name="ln",
                enabled=True,
                provider_type="lnd",
                config={"type": "lnd"},
                created=at(1),
                modified=at(1),
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payment_methods.delete(config.id) is True
        assert await uow.payment_methods.delete(config.id) is False
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payment_methods.get(config.id) is None


async def test_subscription_delete_takes_its_line_items(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        company = await uow.companies.add(Company(id=0, created=at(1), name="C"))
        user = await uow.users.add(User(id=0, pubkey=b"\x06" * 32, created=at(1)))
        items = [
            LineItem(
                id=0,
                subscription_id=0,
                name=n,
                amount=1,
                subscription_type=SubscriptionType.DNS_HOSTING,
            )
            for n in ("a", "b")
        ]
        sub, (a, b) = await uow.subscriptions.add_with_line_items(
            new_subscription(user.id, company.id), items
        )
        keep, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(user.id, company.id), items[:1]
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.line_items.delete(a.id) is True
        assert await uow.line_items.delete(a.id) is False
        await uow.commit()
    async with uow_factory() as uow:
        assert [i.id for i in await uow.line_items.list_by_subscription(sub.id)] == [b.id]
        assert await uow.subscriptions.delete(sub.id) is True
        assert await uow.subscriptions.delete(sub.id) is False
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.subscriptions.get(sub.id) is None
        assert await uow.line_items.get(b.id) is None
        assert len(await uow.line_items.list_by_subscription(keep.id)) == 1


async def test_user_by_email_hash(uow_factory: UnitOfWorkFactory) -> None:
    digest = bytes(range(32))
    async with uow_factory() as uow:
        user = await uow.users.add(
            User(id=0, pubkey=b"\x07" * 32, created=at(1), email="a@b.c", email_hash=digest)
        )
        await uow.users.add(User(id=0, pubkey=b"\x08" * 32, created=at(1)))
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.users.get_by_email_hash(digest)
        assert found is not None and found.id == user.id
        assert await uow.users.get_by_email_hash(b"\x00" * 32) is None


async def test_user_by_email_hash_prefers_the_account_that_verified_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Anyone may type someone else's address: the owner who proved it wins, then the oldest."""
    digest = bytes(range(32))
    async with uow_factory() as uow:
        for n in (1, 2):
            await uow.users.add(
                User(id=0, pubkey=bytes([n]) * 32, created=at(1), email="a@b.c", email_hash=digest)
            )
        owner = await uow.users.add(
            User(
                id=0,
                pubkey=b"\x03" * 32,
                created=at(1),
                email="a@b.c",
                email_hash=digest,
                email_verified=True,
            )
        )
        await uow.users.add(
            User(
                id=0,
                pubkey=b"\x04" * 32,
                created=at(1),
                email="a@b.c",
                email_hash=digest,
                email_verified=True,
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.users.get_by_email_hash(digest)
        assert found is not None and found.id == owner.id
