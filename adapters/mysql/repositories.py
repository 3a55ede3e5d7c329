"""SQLAlchemy Core repositories: shared base plus identity and catalogue tables."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from adapters.mysql import tables as t
from adapters.mysql.compiled_cache import keep
from adapters.mysql.connection import SqlConnection
from adapters.mysql.in_lists import id_chunks
from adapters.mysql.mapping import Mapper, evolve
from adapters.mysql.sqlite_loop import LoopConnection
from domain.enums import DiskInterface, DiskType
from domain.errors import IMAGE_EXISTS, DuplicateKey, RoleNameTaken
from domain.model import (
    AdminRole,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    Host,
    HostDisk,
    IpAssignment,
    IpRange,
    OsImage,
    Region,
    RoleAssignment,
    RolePermission,
    SshKey,
    User,
    VmTemplate,
)
from domain.model import Company as CompanyRecord
from ports.storage import AddressUse, Page, Permission

R = TypeVar("R")
S = TypeVar("S")
Connect = Callable[[], SqlConnection]


_MYSQL_DUPLICATE_KEY = 1062
#: statements built once per process and run with parameters: no statement building and no
#: cache-key walk per call (issue 10); keyed by what they are built from
_PREBUILT: dict[tuple[Any, ...], Any] = {}


def prebuilt(key: tuple[Any, ...], build: Callable[[], S]) -> S:
    """The statement `build()` made the first time `key` was asked for."""
    statement: S | None = _PREBUILT.get(key)
    if statement is None:
        statement = _PREBUILT[key] = build()
        keep(statement)  # its compiled form found without hashing its cache key
    return statement


def _owner_counting_keys() -> Select[Any]:
    """The id of the user with the pubkey `:pubkey` and how many keys they hold."""
    users, keys = t.users.c, t.user_ssh_key.c
    held = select(func.count()).where(keys.user_id == users.id).scalar_subquery()
    return select(users.id, held).where(users.pubkey == bindparam("pubkey"))


def _owner_counting_keys_locked() -> Select[Any]:
    return _owner_counting_keys().with_for_update()


#: SQLite's async engine: a no-op write on the owner's row takes the database write lock
_TOUCH_OWNER = (
    update(t.users).where(t.users.c.pubkey == bindparam("pubkey")).values(id=t.users.c.id)
)


def is_duplicate_key(error: IntegrityError) -> bool:
    """A unique-key violation (MariaDB error 1062, SQLite "UNIQUE constraint failed")."""
    args = getattr(error.orig, "args", ())
    if args and args[0] == _MYSQL_DUPLICATE_KEY:
        return True
    return "UNIQUE constraint failed" in str(error.orig)


class SqlRepo:
    """Base of every SQL repository: runs statements on the unit of work's connection."""

    def __init__(self, connection: Connect) -> None:
        self._connection = connection

    @property
    def conn(self) -> SqlConnection:
        return self._connection()

    @property
    def locks_rows(self) -> bool:
        """`SELECT … FOR UPDATE` is meaningful (MariaDB/MySQL, not SQLite)."""
        return self.conn.dialect.name in ("mysql", "mariadb")

    async def _begin_write(self) -> bool:
        """On a SQLite file's units of work, begin the write transaction now, which locks
        everything a row lock would (`LoopConnection.begin_write`), and say so; False
        elsewhere: MariaDB locks rows, SQLite's async engine takes a no-op write instead."""
        conn = self.conn
        if not isinstance(conn, LoopConnection):
            return False
        await conn.begin_write()
        return True

    async def _lock_by_id(
        self, table: Table, record_id: int, mapper: Mapper[R] | None = None
    ) -> R | None:
        """Hold the write lock of `table`'s row `record_id` to the end of the transaction and,
        given `mapper`, read the row (None when there is none): MariaDB reads it
        `SELECT … FOR UPDATE`, which sees the row as last committed, not the transaction's
        snapshot; a SQLite file's unit of work begins its write transaction
        (`_begin_write`); SQLite's async engine takes the database write lock with a no-op
        write. Without `mapper` nothing is read on SQLite and None is returned."""
        by_id = table.c.id == record_id
        if self.locks_rows:
            if mapper is None:
                await self.conn.execute(select(table.c.id).where(by_id).with_for_update())
                return None
            return await self._one(mapper, select(*mapper.columns).where(by_id).with_for_update())
        if not await self._begin_write():
            # SQLite's async engine: a no-op write takes the database write lock
            await self.conn.execute(update(table).where(by_id).values(id=table.c.id))
        if mapper is None:
            return None
        return await self._one(mapper, select(*mapper.columns).where(by_id))

    def _prepared(self, name: str, mapper: object, build: Callable[[], S]) -> S:
        """The statement `name` of this repository class and mapper, built once per process
        with bound parameters: running it costs no statement building and no cache-key walk
        (a third of a simple read's CPU, issue 10)."""
        return prebuilt((type(self), name, id(mapper)), build)

    async def _one(self, mapper: Mapper[R], query: Select[Any]) -> R | None:
        row = (await self.conn.execute(query.limit(1))).mappings().first()
        return None if row is None else mapper.from_row(row)

    async def _all(self, mapper: Mapper[R], query: Select[Any]) -> list[R]:
        rows = (await self.conn.execute(query)).mappings().all()
        return [mapper.from_row(row) for row in rows]

    async def _first_with(
        self, mapper: Mapper[R], statement: Select[Any], params: dict[str, Any]
    ) -> R | None:
        """The first row of a prebuilt statement (which carries its own LIMIT)."""
        row = (await self.conn.execute(statement, params)).mappings().first()
        return None if row is None else mapper.from_row(row)

    async def _all_with(
        self, mapper: Mapper[R], statement: Select[Any], params: dict[str, Any]
    ) -> list[R]:
        rows = (await self.conn.execute(statement, params)).mappings().all()
        return [mapper.from_row(row) for row in rows]

    async def _page(
        self,
        mapper: Mapper[R],
        where: ColumnElement[bool],
        order: Sequence[ColumnElement[Any]],
        limit: int,
        offset: int,
    ) -> Page[R]:
        """COUNT(*) with the same WHERE, then ORDER BY … LIMIT/OFFSET (schema.md §10)."""
        count = select(func.count()).select_from(mapper.table).where(where)
        total = (await self.conn.execute(count)).scalar_one()
        query = select(*mapper.columns).where(where).order_by(*order).limit(limit).offset(offset)
        return Page(await self._all(mapper, query), int(total))


class SqlRecords(SqlRepo, Generic[R]):
    """add/get/update/list_all of one record class over its table (integer ids)."""

    #: columns `update` leaves alone besides id
    frozen_columns: tuple[str, ...] = ()

    def __init__(self, connection: Connect, mapper: Mapper[R]) -> None:
        super().__init__(connection)
        self.mapper = mapper
        self.table = mapper.table

    #: set where the table has a unique key besides `id`: what its DuplicateKey (409) says
    duplicate_message = ""

    async def add(self, record: R) -> R:
        # the row goes as parameters of one `INSERT` per table: no per-call statement building
        # and cache-key walk over the values (a tenth of a simple write's CPU, issue 10)
        table = self.table
        statement = prebuilt(("insert", id(table)), lambda: insert(table))
        result = await self._execute(statement, self.mapper.to_row(record))
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError(f"{self.table.name}: insert returned no id")
        return evolve(record, id=int(key[0]))

    async def get(self, record_id: int) -> R | None:
        statement = self._prepared("by id", self.mapper, self._by_id)
        row = (await self.conn.execute(statement, {"record_id": record_id})).mappings().first()
        return None if row is None else self.mapper.from_row(row)

    def _by_id(self) -> Select[Any]:
        return self._select().where(self.table.c.id == bindparam("record_id")).limit(1)

    async def get_many(self, record_ids: Collection[int]) -> dict[int, R]:
        """The rows with these ids, by id (one statement per `IN_LIST_SIZE` ids)."""
        statement = self._prepared("by ids", self.mapper, self._by_ids)
        out: dict[int, R] = {}
        for ids in id_chunks(record_ids):
            for row in (await self.conn.execute(statement, {"record_ids": ids})).mappings():
                out[int(row["id"])] = self.mapper.from_row(row)
        return out

    def _by_ids(self) -> Select[Any]:
        return self._select().where(self.table.c.id.in_(bindparam("record_ids", expanding=True)))

    async def update(self, record: R) -> None:
        values = self.mapper.to_row(record, exclude=("id", *self.frozen_columns))
        record_id = getattr(record, "id")  # noqa: B009 - records share an `id` field
        await self._execute(update(self.table).where(self.table.c.id == record_id).values(values))

    async def _execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        """Run an insert/update; a unique-key violation is DuplicateKey where the table has a
        `duplicate_message` (a concurrent writer won), else it propagates."""
        try:
            return await self.conn.execute(statement, parameters)
        except IntegrityError as error:  # only the statement is undone; the transaction goes on
            if not self.duplicate_message or not is_duplicate_key(error):
                raise
        raise DuplicateKey(self.duplicate_message)

    async def list_all(self) -> list[R]:
        return await self._all(self.mapper, self._select().order_by(self.table.c.id))

    async def remove(self, record_id: int) -> bool:
        result = await self.conn.execute(delete(self.table).where(self.table.c.id == record_id))
        return result.rowcount > 0

    async def _set(self, record_id: int, live_only: bool = False, **values: Any) -> bool:
        """`UPDATE … SET` only these columns of the row (a narrow write: what another
        transaction wrote to the other columns since this row was read is kept); False when
        there is no such row or, with `live_only`, it is soft-deleted (rows matched, not
        rows changed: the dialect counts found rows)."""
        where = [self.table.c.id == record_id]
        if live_only:
            where.append(self.table.c.deleted == False)  # noqa: E712
        result = await self.conn.execute(update(self.table).where(*where).values(**values))
        return bool(result.rowcount)

    async def _lock_row(self, record_id: int) -> None:
        """Hold the row's write lock to the end of the transaction (`SELECT … FOR UPDATE`)."""
        await self._lock_by_id(self.table, record_id)

    async def _where(self, *conditions: ColumnElement[bool]) -> list[R]:
        return await self._all(
            self.mapper, self._select().where(*conditions).order_by(self.table.c.id)
        )

    def _select(self) -> Select[Any]:
        return select(*self.mapper.columns)


class SqlUsers(SqlRecords[User]):
    async def get_by_pubkey(self, pubkey: bytes) -> User | None:
        statement = self._prepared(  # every authenticated request runs it
            "by_pubkey",
            self.mapper,
            lambda: self._select().where(t.users.c.pubkey == bindparam("pubkey")).limit(1),
        )
        row = (await self.conn.execute(statement, {"pubkey": pubkey})).mappings().first()
        return None if row is None else self.mapper.from_row(row)

    async def get_by_email_hash(self, digest: bytes) -> User | None:
        return await self._one(
            self.mapper,
            self._select()
            .where(t.users.c.email_hash == digest)
            .order_by(t.users.c.email_verified.desc(), t.users.c.id),
        )

    async def list_page(self, limit: int, offset: int) -> Page[User]:
        return await self._page(self.mapper, true(), [t.users.c.id], limit, offset)

    async def get_or_create_by_pubkey(self, pubkey: bytes, now: datetime) -> User:
        existing = await self.get_by_pubkey(pubkey)
        if existing is not None:
            return existing
        try:
            return await self.add(User(id=0, pubkey=pubkey, created=now))
        except IntegrityError as error:  # a concurrent first login inserted it meanwhile
            if not is_duplicate_key(error):
                raise
        query = self._select().where(t.users.c.pubkey == pubkey)
        if self.locks_rows:  # a locking read sees the other transaction's committed row;
            query = query.with_for_update(read=True)  # shared, as the failed insert's lock is
        created = await self._one(self.mapper, query)
        if created is None:
            raise LookupError("user vanished after a duplicate-key insert")
        return created

    async def lock(self, user_id: int) -> None:
        await self._lock_row(user_id)

    async def get_for_update(self, user_id: int) -> User | None:
        return await self._lock_by_id(self.table, user_id, self.mapper)


class SqlSshKeys(SqlRecords[SshKey]):
    async def lock_owner(self, owner_key: bytes) -> tuple[int, int] | None:
        # MariaDB: the user's row locked (`FOR UPDATE`) as its keys are counted, read after
        # the lock: a concurrent add of the same user's key waits here for the first to end,
        # then counts its key. SQLite: the write transaction begun first serialises the same
        # way (BEGIN IMMEDIATE, no statement of its own), else a no-op write takes its lock.
        if self.locks_rows:
            statement = prebuilt(("lock owner counting keys",), _owner_counting_keys_locked)
        else:
            if not await self._begin_write():
                await self.conn.execute(_TOUCH_OWNER, {"pubkey": owner_key})
            statement = prebuilt(("owner counting keys",), _owner_counting_keys)
        row = (await self.conn.execute(statement, {"pubkey": owner_key})).first()
        return None if row is None else (int(row[0]), int(row[1]))

    async def list_by_user(self, user_id: int) -> list[SshKey]:
        return await self._where(t.user_ssh_key.c.user_id == user_id)

    async def delete(self, key_id: int) -> bool:
        return await self.remove(key_id)


class SqlCompanies(SqlRecords[CompanyRecord]):
    pass


class SqlRegions(SqlRecords[Region]):
    async def lock(self, region_id: int) -> None:
        await self._lock_row(region_id)


class SqlHosts(SqlRecords[Host]):
    async def list_by_region(self, region_id: int) -> list[Host]:
        return await self._where(t.vm_host.c.region_id == region_id)


class SqlHostDisks(SqlRecords[HostDisk]):
    async def list_by_host(self, host_id: int) -> list[HostDisk]:
        return await self._where(t.vm_host_disk.c.host_id == host_id)


class SqlImages(SqlRecords[OsImage]):
    duplicate_message = IMAGE_EXISTS


class SqlIpRanges(SqlRecords[IpRange]):
    async def list_by_region(self, region_id: int) -> list[IpRange]:
        return await self._where(t.ip_range.c.region_id == region_id)


class SqlIpAssignments(SqlRecords[IpAssignment]):
    """`update` leaves `deleted` alone: only `delete` changes it."""

    frozen_columns = ("deleted",)

    async def address_use(
        self, host_ids: Collection[int], range_ids: Collection[int]
    ) -> AddressUse:
        """Two statements (one more per 1 000 hosts or ranges): the unaddressed VMs by the
        VM host index, then the distinct addresses held counted by the database."""
        a, vm = t.vm_ip_assignment.c, t.vm.c
        live_vm = vm.deleted == False  # noqa: E712
        addressed = select(a.id).where(a.vm_id == vm.id, a.deleted == False)  # noqa: E712
        unaddressed: set[int] = set()
        for ids in id_chunks(host_ids):
            query = select(vm.id).where(vm.host_id.in_(ids), live_vm, ~addressed.exists())
            unaddressed.update(row[0] for row in await self.conn.execute(query))
        held = 0
        for ids in id_chunks(range_ids):  # a region has a few ranges: one list in practice
            query = (
                select(func.count(a.ip.distinct()))
                .select_from(t.vm_ip_assignment.join(t.vm, vm.id == a.vm_id))
                .where(a.ip_range_id.in_(ids), a.deleted == False, live_vm)  # noqa: E712
            )
            held += int((await self.conn.execute(query)).scalar_one())
        return AddressUse(frozenset(unaddressed), held)

    async def list_live(self) -> list[IpAssignment]:
        return await self._where(t.vm_ip_assignment.c.deleted == False)  # noqa: E712

    async def list_by_vm(self, vm_id: int) -> list[IpAssignment]:
        c = t.vm_ip_assignment.c
        return await self._where(c.vm_id == vm_id, c.deleted == False)  # noqa: E712

    async def set_dns_reverse(self, vm_id: int, name: str | None) -> int:
        c = t.vm_ip_assignment.c
        live = (c.vm_id == vm_id) & (c.deleted == False)  # noqa: E712
        result = await self.conn.execute(
            update(t.vm_ip_assignment).where(live).values(dns_reverse=name)
        )
        return int(result.rowcount)

    async def delete(self, assignment_id: int) -> None:
        c = t.vm_ip_assignment.c
        await self.conn.execute(
            update(t.vm_ip_assignment).where(c.id == assignment_id).values(deleted=True)
        )


class SqlCostPlans(SqlRecords[CostPlan]):
    pass


class SqlTemplates(SqlRecords[VmTemplate]):
    pass


class SqlCustomPricings(SqlRecords[CustomPricing]):
    def __init__(
        self, connection: Connect, mapper: Mapper[CustomPricing], disks: Mapper[CustomPricingDisk]
    ) -> None:
        super().__init__(connection, mapper)
        self.disks = SqlRecords(connection, disks)

    async def list_by_region(self, region_id: int) -> list[CustomPricing]:
        return await self._where(t.vm_custom_pricing.c.region_id == region_id)

    async def add_disk(self, disk: CustomPricingDisk) -> CustomPricingDisk:
        return await self.disks.add(disk)

    async def list_disks(self, pricing_id: int) -> list[CustomPricingDisk]:
        return await self.disks._where(t.vm_custom_pricing_disk.c.pricing_id == pricing_id)

    async def remove_disks(self, pricing_id: int) -> int:
        table = t.vm_custom_pricing_disk
        result = await self.conn.execute(delete(table).where(table.c.pricing_id == pricing_id))
        return int(result.rowcount)


class SqlCustomTemplates(SqlRecords[CustomTemplate]):
    async def count_by_pricing(self) -> dict[int, int]:
        c = t.vm_custom_template.c
        query = select(c.pricing_id, func.count()).group_by(c.pricing_id)
        return {int(pid): int(n) for pid, n in await self.conn.execute(query)}

    async def disks_in_use(self, pricing_id: int) -> dict[tuple[DiskType, DiskInterface], int]:
        c, vm = t.vm_custom_template.c, t.vm.c
        templates = select(c.id, c.disk_type, c.disk_interface).where(c.pricing_id == pricing_id)
        if self.locks_rows:  # as last committed, and no committed change until this one ends
            templates = templates.with_for_update(read=True)
        rows = list(await self.conn.execute(templates))
        used: dict[int, bool] = {}  # template id → whether a VM not deleted uses it
        for chunk in id_chunks([int(row[0]) for row in rows]):
            query = select(vm.custom_template_id, vm.deleted).where(
                vm.custom_template_id.in_(chunk)
            )
            for template_id, deleted in await self.conn.execute(query):
                used[int(template_id)] = used.get(int(template_id), False) or not deleted
        counts: dict[tuple[DiskType, DiskInterface], int] = {}
        for template_id, disk_type, disk_interface in rows:
            if used.get(int(template_id), True):  # no VM seen: an order's, just committed
                key = (disk_type, disk_interface)
                counts[key] = counts.get(key, 0) + 1
        return counts


class SqlRoles(SqlRepo):
    def __init__(
        self,
        connection: Connect,
        roles: Mapper[AdminRole],
        permissions: Mapper[RolePermission],
        assignments: Mapper[RoleAssignment],
    ) -> None:
        super().__init__(connection)
        self._roles = SqlRecords(connection, roles)
        self._permissions = SqlRecords(connection, permissions)
        self._assignments = SqlRecords(connection, assignments)

    async def add_role(self, role: AdminRole) -> AdminRole:
        try:
            return await self._roles.add(role)
        except IntegrityError as error:  # only the statement is undone; the transaction goes on
            if not is_duplicate_key(error):
                raise
        raise RoleNameTaken(f"A role named {role.name!r} exists already")

    async def add_permission(self, permission: RolePermission) -> RolePermission:
        return await self._permissions.add(permission)

    async def assign(self, assignment: RoleAssignment) -> RoleAssignment:
        c = t.admin_role_assignments.c
        same = (c.user_id == assignment.user_id) & (c.role_id == assignment.role_id)
        existing = await self._assignments._where(same)
        if not existing:
            return await self._assignments.add(assignment)
        await self.conn.execute(
            update(t.admin_role_assignments).where(same).values(expires_at=assignment.expires_at)
        )
        return evolve(existing[0], expires_at=assignment.expires_at)

    async def revoke(self, user_id: int, role_id: int) -> bool:
        c = t.admin_role_assignments.c
        query = delete(t.admin_role_assignments).where(c.user_id == user_id, c.role_id == role_id)
        return (await self.conn.execute(query)).rowcount > 0

    async def lock_holders(self, role_id: int, now: datetime) -> dict[int, datetime | None]:
        await self._roles._lock_row(role_id)
        a = t.admin_role_assignments.c
        query = select(a.user_id, a.expires_at).where(
            a.role_id == role_id, (a.expires_at.is_(None)) | (a.expires_at > now)
        )
        if self.locks_rows:
            # MariaDB's REPEATABLE READ snapshot may predate a rival's committed revoke; a
            # locking read sees the rows as last committed
            query = query.with_for_update(read=True)
        return {int(user): ends for user, ends in (await self.conn.execute(query)).all()}

    async def permissions_of(self, user_id: int, now: datetime) -> frozenset[Permission]:
        a, p = t.admin_role_assignments.c, t.admin_role_permissions.c
        query = (
            select(p.resource, p.action)
            .distinct()
            .select_from(
                t.admin_role_assignments.join(t.admin_role_permissions, a.role_id == p.role_id)
            )
            .where(a.user_id == user_id, (a.expires_at.is_(None)) | (a.expires_at > now))
        )
        return frozenset((r.resource, r.action) for r in await self.conn.execute(query))

    async def is_admin(self, user_id: int, now: datetime) -> bool:
        a = t.admin_role_assignments.c
        query = select(func.count()).where(
            a.user_id == user_id, (a.expires_at.is_(None)) | (a.expires_at > now)
        )
        return bool((await self.conn.execute(query)).scalar_one())

    async def list_roles(self, limit: int, offset: int) -> Page[AdminRole]:
        c = t.admin_roles.c
        system_first = func.coalesce(c.is_system_role, False).desc()
        return await self._page(
            self._roles.mapper, true(), [system_first, c.name, c.id], limit, offset
        )

    async def get_role(self, role_id: int) -> AdminRole | None:
        return await self._roles.get(role_id)

    async def permissions_of_role(self, role_id: int) -> list[RolePermission]:
        p = t.admin_role_permissions.c
        query = self._permissions._select().where(p.role_id == role_id)
        return await self._all(self._permissions.mapper, query.order_by(p.resource, p.action, p.id))

    async def assignments_of(self, user_id: int) -> list[RoleAssignment]:
        return await self._assignments._where(t.admin_role_assignments.c.user_id == user_id)

    async def all_assignments(self) -> list[RoleAssignment]:
        return await self._assignments._where(true())

    async def user_count(self, role_id: int) -> int:
        a = t.admin_role_assignments.c
        query = select(func.count()).where(a.role_id == role_id)
        return int((await self.conn.execute(query)).scalar_one())

    async def update_role(self, role: AdminRole) -> None:
        await self._roles.update(role)

    async def set_permissions(
        self, role_id: int, permissions: Sequence[Permission], now: datetime
    ) -> None:
        p = t.admin_role_permissions.c
        await self.conn.execute(delete(t.admin_role_permissions).where(p.role_id == role_id))
        for resource, action in dict.fromkeys(permissions):
            await self._permissions.add(
                RolePermission(
                    id=0, role_id=role_id, resource=resource, action=action, created_at=now
                )
            )

    async def delete_role(self, role_id: int) -> bool:
        """Permission and assignment rows first: SQLite does not enforce the cascade."""
        for table in (t.admin_role_permissions, t.admin_role_assignments):
            await self.conn.execute(delete(table).where(table.c.role_id == role_id))
        query = delete(t.admin_roles).where(t.admin_roles.c.id == role_id)
        return (await self.conn.execute(query)).rowcount > 0
