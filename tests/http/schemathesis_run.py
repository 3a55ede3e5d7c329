"""Schemathesis over `/openapi.json` (issue 8 §8), and over the admin API's document: no 5xx,
no response outside the documented schema, for schema-conforming and violating requests.
The runner and its servers; the tests are `test_schemathesis*.py` (the admin API's ~100
operations in two halves, one file each, so that xdist's `--dist loadfile` runs them on both
workers).

The real `build_user_app` and `build_admin_app` run over SQLite (the backend that overflowed on
big ids) and over an empty migrated MariaDB database (the one that refuses over-long strings
and raises duplicate keys), each in a server thread with the demo catalogue and a user who
has a VM; every request is signed with a fresh NIP-98 event whose `u` tag is the exact URL
sent, query string included (as a super admin for the admin API). The run is
bounded by a fixed number of examples per operation and mode, derandomised so a CI run is
repeatable; it takes well under two minutes on a small machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import pytest
import schemathesis

# imported here, at collection: schemathesis imports it lazily inside `from_url`, where pytest
# rewrites it in the middle of a running test, and CPython 3.11.7's parser failed there once
# with "AST constructor recursion depth mismatch" (an interpreter bug, seen in a full run)
import schemathesis.specs.openapi.schemas
from aiohttp import web
from aiohttp.test_utils import unused_port
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import ManagedCookiesSession

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from adapters.http.auth import AuthBinding
from adapters.http.routes_webhooks import WebhookSecrets
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.account.ssh_keys import add_ssh_key_by_owner
from app.admin.role_guard import SUPER_ADMIN_ROLE_ID
from app.billing.ordering import OrderTerms, order_vm
from domain.model import RoleAssignment
from tests.dbtest import MYSQL_HEAD, SqliteTemplate, drop_mysql_database
from tests.http.admin.adminapp import ROOT
from tests.http.apiapp import ALICE, SSH_PUBLIC_KEY, ApiApp, build_api_app
from tests.nostr_signing import NostrKey, auth_header, nip98_event

#: examples per operation and generation mode (~40 user and ~100 admin operations, 2 modes),
#: per backend: fewer on MariaDB, whose round trips are slower, to keep the run short.
MAX_EXAMPLES = {"sqlite": 12, "mysql": 6}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@attrs.define
class Server:
    """The user API serving in its own thread and event loop."""

    backend: str
    base_url: str
    admin_url: str
    api: ApiApp
    loop: asyncio.AbstractEventLoop
    stop: Callable[[], None]


async def _prepare(url: str, port: int, admin_port: int) -> tuple[ApiApp, list[web.AppRunner], Any]:
    """`url` is a database at head (a copy of this process's migrated template)."""
    engine = create_engine(url)
    api = build_api_app(
        store=SqlUnitOfWorkFactory(engine, AesGcmSecretBox(bytes(range(32)))),
        public_url=f"http://127.0.0.1:{port}",
    )
    await api.seed()
    await api.refresh_rates()
    assert api.demo is not None
    svc = api.services
    async with svc.uow_factory() as uow:
        user = await uow.users.get_or_create_by_pubkey(ALICE.pubkey, svc.clock.now())
        root = await uow.users.get_or_create_by_pubkey(ROOT.pubkey, svc.clock.now())
        await uow.roles.assign(
            RoleAssignment(
                id=0, user_id=root.id, role_id=SUPER_ADMIN_ROLE_ID, assigned_at=svc.clock.now()
            )
        )
        await uow.commit()
    key = await add_ssh_key_by_owner(
        svc.uow_factory, svc.clock, user.pubkey, "laptop", SSH_PUBLIC_KEY
    )
    assert key is not None
    await order_vm(
        svc.uow_factory,
        svc.clock,
        OrderTerms(user_id=user.id, image_id=api.demo.ubuntu, ssh_key_id=key.id, ref_code=None),
        template_id=api.demo.tiny,
    )
    secrets = WebhookSecrets(revolut="whsec-revolut", stripe="whsec-stripe")
    runners = []
    # one key signs every request and the fake clock stands still, so no event id ever
    # expires: with the per-client replay shares (D26) more examples would end in 429s
    unshared = AuthBinding(shares=None)
    for app, at in (
        (build_user_app(svc, webhook_secrets=secrets, auth_binding=unshared), port),
        (build_admin_app(svc), admin_port),
    ):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", at).start()
        runners.append(runner)
    return api, runners, engine


#: the `server` fixture's params: every run on SQLite and on MariaDB
BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@contextmanager
def serving(
    backend: str, tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate
) -> Iterator[Server]:
    """Both APIs on `backend` in a thread, for one test module (its `server` fixture). The
    database is a copy of this process's migrated head (`tests.dbtest`), not a migration
    of its own: the same tables and seed rows (`test_mysql_template.py`)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port, admin_port = unused_port(), unused_port()
    mysql_name: str | None = None
    if backend == "mysql":
        mysql_name, url = asyncio.run_coroutine_threadsafe(MYSQL_HEAD.copy(), loop).result(120)
    else:
        target = tmp_path_factory.mktemp("schemathesis") / "lnvps.db"
        url = asyncio.run_coroutine_threadsafe(sqlite_template.copy_to(target), loop).result(120)
    api, runners, engine = asyncio.run_coroutine_threadsafe(
        _prepare(url, port, admin_port), loop
    ).result(120)

    def stop() -> None:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        asyncio.run_coroutine_threadsafe(engine.dispose(), loop).result(30)
        if mysql_name is not None:
            asyncio.run_coroutine_threadsafe(drop_mysql_database(mysql_name), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    try:
        yield Server(
            backend, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", api, loop, stop
        )
    finally:
        stop()


@attrs.frozen
class Nip98Auth:
    """A `requests` auth hook: signs the prepared request's exact URL (query included), its
    method and body; a nonce tag keeps each event id unique (replay caches, D26)."""

    key: NostrKey
    api: ApiApp

    def __call__(self, prepared: Any) -> Any:
        body = prepared.body
        raw = body.encode() if isinstance(body, str) else body
        tags = [["u", prepared.url], ["method", prepared.method]]
        if raw:
            tags.append(["payload", hashlib.sha256(raw).hexdigest()])
        tags.append(["nonce", uuid.uuid4().hex])
        event = nip98_event(
            self.key, prepared.url, prepared.method, self.api.clock.now(), tags=tags
        )
        prepared.headers["Authorization"] = auth_header(event)
        return prepared


def _run_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    auth: Nip98Auth,
    failures: list[str],
    answers: set[tuple[str, int]],
    examples: int,
    session: ManagedCookiesSession,
) -> None:

    @settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, auth=auth, timeout=30)
        answers.add((operation.label, response.status_code))
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            found = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            what = "; ".join(f"{f.code} {f.title}: {f.message[:300]}" for f in found)
            failures.append(
                f"{mode.value} {operation.label} → {response.status_code} "
                f"{response.text[:200]!r} {response.request.url[:200]}: {what}"
            )

    try:
        run()
    except Unsatisfiable:
        # nothing in this operation can be made invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


def check_api(server: Server, which: str, part: tuple[int, int] = (0, 1)) -> None:
    """Every operation of the `which` API (`user` or `admin`) in both generation modes, or
    part `i` of `n` of them (`part=(i, n)`: every n-th operation by label, from the i-th)."""
    base_url = server.base_url if which == "user" else server.admin_url
    document = "/openapi.json" if which == "user" else "/api/admin/v1/openapi.json"
    auth = Nip98Auth(ALICE if which == "user" else ROOT, server.api)
    schema = schemathesis.openapi.from_url(base_url + document)
    failures: list[str] = []
    answers: set[tuple[str, int]] = set()
    results = list(schema.get_all_operations())
    broken = [str(r.err()) for r in results if isinstance(r, Err)]
    assert not broken, broken  # the document itself is valid
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) > 25
    # the NIP-98 hook works: signed requests reach the handlers (checked in every part)
    reached = (
        {("GET /api/v1/account", 200), ("GET /api/v1/vm", 200)}
        if which == "user"
        else {("GET /api/admin/v1/users", 200), ("GET /api/admin/v1/me/roles", 200)}
    )
    signed_in = {label for label, _ in reached}
    index, parts = part
    operations = [
        o
        for n, o in enumerate(sorted(operations, key=lambda o: str(o.label)))
        if n % parts == index or str(o.label) in signed_in
    ]
    assert {str(o.label) for o in operations} >= signed_in
    # one keep-alive session for every request (schemathesis drops its cookies after each
    # one, as its own per-request sessions do): a TCP connection per request cost ~5 % of
    # the run in connects, closes and proxy look-ups
    with ManagedCookiesSession() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run_operation(
                    operation,
                    mode,
                    base_url,
                    auth,
                    failures,
                    answers,
                    MAX_EXAMPLES[server.backend],
                    session,
                )
    assert reached <= answers
    assert not failures, "\n\n".join(_summary(failures)) + f"\n\n({len(failures)} failures)"


def _summary(failures: list[str]) -> list[str]:
    """The first failure of each operation, mode and answer status."""
    seen: dict[str, str] = {}
    for failure in failures:
        seen.setdefault(" ".join(failure.split(" ", 5)[:5]), failure)
    return list(seen.values())


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_template: SqliteTemplate,
) -> Iterator[Server]:
    """The server each test file checks, once per backend and file (a test file takes it
    as `server = schemathesis_run.server`)."""
    with serving(request.param, tmp_path_factory, _sqlite_template) as running:
        yield running
