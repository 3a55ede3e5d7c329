"""The HTTP foundation in a real aiohttp app: auth + user upsert, error envelope, CORS, pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http.auth import Authenticator, authenticate_query, authenticated, setup_auth
from adapters.http.cors import setup_cors
from adapters.http.envelope import (
    MAX_JSON_DEPTH,
    PageParams,
    data_response,
    dumps,
    format_optional_time,
    format_time,
    page_response,
    parse_page,
    parse_time,
    read_json,
)
from adapters.http.errors import error_middleware
from adapters.http.nip98 import Nip98Error
from adapters.http.openapi import (
    QueryParam,
    RouteTable,
    documented_operations,
    served_operations,
)
from adapters.memory.clock import FakeClock
from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.errors import PaymentProviderRefused
from domain.errors import (
    DomainError,
    InvalidInput,
    NoExchangeRate,
    PaymentAlreadyCompleted,
    PricingUnavailable,
)
from domain.model import User
from tests.nostr_signing import NostrKey, auth_header, encode_event, nip98_event

NOW = datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC)
ALICE = NostrKey.from_seed(10)
BOB = NostrKey.from_seed(11)
ORIGIN = "https://lnvps.example"
SECRET = "mysql://root:hunter2@db/lnvps"


class VmNotFound(DomainError):
    kind = "not_found"


class OddKind(DomainError):
    kind = "teapot"


ERRORS: dict[str, DomainError] = {
    "bad_input": InvalidInput("intervals must be 1..120"),
    "not_found": VmNotFound("VM not found"),
    "conflict": PaymentAlreadyCompleted("payment already paid"),
    "unprocessable": PricingUnavailable("no disk price"),
    "unavailable": NoExchangeRate("no EUR rate"),
    "provider_refused": PaymentProviderRefused("Stripe refused the request"),
    "teapot": OddKind(SECRET),
}


@authenticated
async def account(request: web.Request, user: User) -> web.StreamResponse:
    return data_response({"id": user.id, "pubkey": user.pubkey.hex()})


@authenticated
async def echo(request: web.Request, user: User) -> web.StreamResponse:
    return data_response({"user": user.id, "body": await read_json(request)})


async def vm(request: web.Request) -> web.StreamResponse:
    return data_response({"id": int(request.match_info["id"])})


async def items(request: web.Request) -> web.StreamResponse:
    page = parse_page(request.query)
    everything = list(range(7))
    return page_response(everything[page.offset : page.offset + page.limit], 7, page)


async def fail(request: web.Request) -> web.StreamResponse:
    raise ERRORS[request.match_info["kind"]]


async def invoice(request: web.Request) -> web.StreamResponse:
    path = f"/api/v1/payment/{request.match_info['id']}/invoice"
    try:
        user = await authenticate_query(request, path)
    except Nip98Error as exc:  # the reference answers 200 plain text here (api.md §4.1)
        return web.Response(text=exc.text)
    return web.Response(text=f"invoice for user {user.id}", content_type="text/html")


async def crash(request: web.Request) -> web.StreamResponse:
    raise RuntimeError(f"cannot connect to {SECRET}")


def route_table() -> RouteTable:
    table = RouteTable()
    table.add("GET", "/api/v1/account", account, summary="Account", response={"type": "object"})
    table.add("POST", "/api/v1/echo", echo, summary="Echo", request={"type": "object"})
    table.add("GET", "/api/v1/vm/{id:\\d+}", vm, summary="A VM")
    table.add(
        "GET", "/api/v1/items", items, summary="Items", paginated=True, response={"type": "integer"}
    )
    table.add("GET", "/fail/{kind}", fail, summary="Domain error")
    table.add("GET", "/crash", crash, summary="Bug")
    table.add(
        "GET",
        "/api/v1/payment/{id}/invoice",
        invoice,
        summary="Invoice page",
        query=[QueryParam("auth", required=True)],
        enveloped=False,
        content_type="text/html",
    )
    table.add_openapi_route()
    return table


@attrs.frozen
class Harness:
    client: TestClient[web.Request, web.Application]
    store: MemoryUnitOfWorkFactory
    clock: FakeClock

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    def signed(
        self, path: str, method: str = "GET", key: NostrKey = ALICE, body: bytes | None = None
    ) -> dict[str, str]:
        event = nip98_event(key, self.url(path), method, self.clock.now(), body=body)
        return {"Authorization": auth_header(event)}

    async def users(self) -> list[User]:
        return list(self.store.db.tables.get("users", {}).values())


def build_app(store: MemoryUnitOfWorkFactory, clock: FakeClock) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    setup_cors(app)
    setup_auth(app, Authenticator(uow_factory=store, clock=clock))
    route_table().register(app)
    admin = web.Application()
    admin.router.add_get("/whoami", account)
    app.add_subapp("/api/admin/v1", admin)
    return app


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    store, clock = MemoryUnitOfWorkFactory(), FakeClock(NOW)
    async with TestClient(TestServer(build_app(store, clock))) as client:
        yield Harness(client, store, clock)


# --- authentication and the user upsert --------------------------------------------------------


async def test_first_authenticated_request_creates_the_user_and_the_second_reuses_it(
    h: Harness,
) -> None:
    assert await h.users() == []
    first = await h.client.get("/api/v1/account", headers=h.signed("/api/v1/account"))
    assert first.status == 200
    body = await first.json()
    assert body["data"]["pubkey"] == ALICE.pubkey_hex
    [user] = await h.users()
    assert (user.id, user.pubkey, user.created, user.contact_nip17) == (
        body["data"]["id"],
        ALICE.pubkey,
        NOW,
        True,
    )

    h.clock.advance(timedelta(minutes=5))
    second = await h.client.get("/api/v1/account", headers=h.signed("/api/v1/account"))
    assert (await second.json())["data"]["id"] == user.id
    assert await h.users() == [user]

    third = await h.client.get("/api/v1/account", headers=h.signed("/api/v1/account", key=BOB))
    assert (await third.json())["data"]["id"] != user.id
    assert len(await h.users()) == 2


async def test_u_tag_with_the_same_query_string_is_accepted(h: Harness) -> None:
    event = nip98_event(ALICE, h.url("/api/v1/account?x=1&y=2"), "GET", NOW)
    resp = await h.client.get(
        "/api/v1/account?x=1&y=2", headers={"Authorization": auth_header(event)}
    )
    assert resp.status == 200


async def test_missing_header_is_401_with_a_json_body(h: Harness) -> None:
    """D26/D19: no credentials is 401, not the reference's 403."""
    resp = await h.client.get("/api/v1/account")
    assert resp.status == 401
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": "Auth header not found"}
    assert await h.users() == []


@pytest.mark.parametrize(
    ("header", "status", "text"),
    [
        ("", 401, "Auth scheme must be Nostr"),
        ("Bearer x", 401, "Auth scheme must be Nostr"),
        ("Nostr %%%", 401, "Invalid auth: Invalid auth string"),
        ("Nostr bm90IGpzb24=", 401, "Invalid auth: Invalid nostr event"),
    ],
)
async def test_bad_headers_get_json_401(h: Harness, header: str, status: int, text: str) -> None:
    resp = await h.client.get("/api/v1/account", headers={"Authorization": header})
    assert resp.status == status
    assert await resp.json() == {"error": text}


async def test_a_signature_for_another_path_is_401(h: Harness) -> None:
    resp = await h.client.get("/api/v1/account", headers=h.signed("/api/v1/account/"))
    assert resp.status == 401
    assert await resp.json() == {"error": "Auth check failed: U tag does not match"}


async def test_the_fake_clock_decides_staleness(h: Harness) -> None:
    headers = h.signed("/api/v1/account")
    h.clock.advance(timedelta(seconds=600))
    assert (await h.client.get("/api/v1/account", headers=headers)).status == 200
    h.clock.advance(timedelta(seconds=1))
    resp = await h.client.get("/api/v1/account", headers=headers)
    assert await resp.json() == {"error": "Auth check failed: Created timestamp is out of range"}


async def test_head_needs_a_head_signed_event(h: Harness) -> None:
    resp = await h.client.head("/api/v1/account", headers=h.signed("/api/v1/account"))
    assert resp.status == 401
    ok = await h.client.head("/api/v1/account", headers=h.signed("/api/v1/account", "HEAD"))
    assert ok.status == 200


async def test_post_body_is_read_once_for_the_payload_tag_and_again_by_the_handler(
    h: Harness,
) -> None:
    body = b'{"ssh_key_id": 1}'
    headers = {**h.signed("/api/v1/echo", "POST", body=body), "Content-Type": "application/json"}
    resp = await h.client.post("/api/v1/echo", data=body, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["body"] == {"ssh_key_id": 1}


async def test_payload_tag_for_another_body_is_refused(h: Harness) -> None:
    headers = {
        **h.signed("/api/v1/echo", "POST", body=b'{"ssh_key_id": 1}'),
        "Content-Type": "application/json",
    }
    resp = await h.client.post("/api/v1/echo", data=b'{"ssh_key_id": 999}', headers=headers)
    assert resp.status == 401
    assert await resp.json() == {
        "error": "Auth check failed: Payload tag does not match request body"
    }
    assert await h.users() == []


async def test_auth_runs_before_the_body_is_judged(h: Harness) -> None:
    resp = await h.client.post(
        "/api/v1/echo", data=b"{not json", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 401


async def test_json_body_rules_415_and_400_after_auth(h: Harness) -> None:
    wrong_type = await h.client.post(
        "/api/v1/echo",
        data=b"{}",
        headers={**h.signed("/api/v1/echo", "POST"), "Content-Type": "text/plain"},
    )
    assert wrong_type.status == 415
    assert "error" in await wrong_type.json()
    h.clock.advance(timedelta(seconds=1))  # a fresh event per request, as real clients sign
    bad = await h.client.post(
        "/api/v1/echo",
        data=b"{oops",
        headers={**h.signed("/api/v1/echo", "POST"), "Content-Type": "application/json"},
    )
    assert bad.status == 400
    assert "error" in await bad.json()
    h.clock.advance(timedelta(seconds=1))
    charset = await h.client.post(
        "/api/v1/echo",
        data=b"[]",
        headers={
            **h.signed("/api/v1/echo", "POST"),
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    assert charset.status == 200


async def test_a_body_nested_past_the_bound_is_400_before_the_handler(h: Harness) -> None:
    """Found by r12: a body nested hundreds deep reached the handlers (json.loads takes ~1000
    levels), and later walks over it overflowed the stack. Past `MAX_JSON_DEPTH` levels
    (serde_json's limit) it is refused 400 with a clear reason; at the bound it is read."""
    answers = []
    for depth in (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 700, 5000):
        opening = "".join('{"a":' if level % 2 == 0 else "[" for level in range(depth))
        closing = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))
        body = (opening + "1" + closing).encode()
        h.clock.advance(timedelta(seconds=1))
        resp = await h.client.post(
            "/api/v1/echo",
            data=body,
            headers={
                **h.signed("/api/v1/echo", "POST", body=body),
                "Content-Type": "application/json",
            },
        )
        answers.append((resp.status, (await resp.json()).get("error")))
    deep = "Failed to parse the request body as JSON: nested more than 127 levels deep"
    assert answers == [
        (200, None),
        (400, deep),
        (400, deep),
        (400, "Failed to parse the request body as JSON"),  # past the parser's own stack
    ]


async def test_sub_applications_find_the_authenticator(h: Harness) -> None:
    resp = await h.client.get(
        "/api/admin/v1/whoami", headers=h.signed("/api/admin/v1/whoami", key=BOB)
    )
    assert resp.status == 200
    assert (await resp.json())["data"]["pubkey"] == BOB.pubkey_hex


async def test_query_variant_is_not_accepted_in_the_header_path(h: Harness) -> None:
    token = encode_event(nip98_event(ALICE, h.url("/api/v1/account"), "GET", NOW))
    resp = await h.client.get("/api/v1/account", params={"auth": token})
    assert resp.status == 401


async def test_query_variant_authenticates_the_invoice_link_with_the_server_built_path(
    h: Harness,
) -> None:
    path = "/api/v1/payment/ab12/invoice"
    token = encode_event(nip98_event(ALICE, h.url(path), "GET", NOW))
    ok = await h.client.get(path, params={"auth": token})
    assert (ok.status, await ok.text()) == (200, "invoice for user 1")
    missing = await h.client.get(path)
    assert await missing.text() == "Missing or invalid auth param"
    other = encode_event(nip98_event(ALICE, h.url("/api/v1/payment/cd34/invoice"), "GET", NOW))
    wrong = await h.client.get(path, params={"auth": other})
    assert await wrong.text() == "Invalid auth event"


async def test_sub_application_responses_mirror_the_origin_once(h: Harness) -> None:
    resp = await h.client.get("/api/admin/v1/whoami", headers={"Origin": ORIGIN})
    assert resp.status == 401
    assert resp.headers.getall("Access-Control-Allow-Origin") == [ORIGIN]


# --- the error middleware (D19) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("bad_input", 400),
        ("not_found", 404),
        ("conflict", 409),
        ("unprocessable", 422),
        ("unavailable", 503),
        ("provider_refused", 502),
    ],
)
async def test_domain_error_kinds_map_to_honest_statuses(
    h: Harness, kind: str, status: int
) -> None:
    resp = await h.client.get(f"/fail/{kind}")
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": ERRORS[kind].message}


async def test_a_bug_is_500_with_nothing_internal_in_the_body_but_logged(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="lnvps.http"):
        resp = await h.client.get("/crash")
    assert resp.status == 500
    text = await resp.text()
    assert "hunter2" not in text and "RuntimeError" not in text
    assert await resp.json() == {"error": "An internal error occurred"}
    assert "hunter2" in caplog.text


async def test_a_domain_error_of_unknown_kind_is_treated_as_a_bug(h: Harness) -> None:
    resp = await h.client.get("/fail/teapot")
    assert resp.status == 500
    assert "hunter2" not in await resp.text()


async def test_unknown_path_is_404_and_wrong_method_405_in_the_json_envelope(h: Harness) -> None:
    missing = await h.client.get("/api/v1/nothing")
    assert missing.status == 404 and missing.content_type == "application/json"
    assert await missing.json() == {"error": "Not Found"}
    wrong = await h.client.delete("/api/v1/account")
    assert wrong.status == 405 and wrong.content_type == "application/json"
    assert await wrong.json() == {"error": "Method Not Allowed"}
    assert "GET" in wrong.headers["Allow"]


async def test_non_numeric_id_does_not_match_the_numeric_route(h: Harness) -> None:
    assert (await h.client.get("/api/v1/vm/12")).status == 200
    assert (await h.client.get("/api/v1/vm/abc")).status == 404


# --- CORS (api.md §1: very_permissive, by default without credentials) -------------------------

PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.mark.parametrize("path", ["/api/v1/account", "/api/v1/nowhere", "/api/v1/vm/abc"])
async def test_preflight_mirrors_origin_method_and_headers_on_any_path(
    h: Harness, path: str
) -> None:
    resp = await h.client.options(path, headers=PREFLIGHT)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Credentials" not in resp.headers  # default: no credentials
    assert resp.headers["Access-Control-Allow-Methods"] == "PATCH"
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "Access-Control-Expose-Headers" not in resp.headers
    assert "origin" in resp.headers["Vary"]


async def test_actual_responses_and_errors_mirror_the_origin(h: Harness) -> None:
    for path in ["/api/v1/account", "/api/v1/vm/1", "/crash", "/nowhere"]:
        resp = await h.client.get(path, headers={"Origin": ORIGIN})
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN, path
        assert "Access-Control-Allow-Credentials" not in resp.headers, path


async def test_no_origin_no_allow_origin(h: Harness) -> None:
    resp = await h.client.get("/api/v1/vm/1")
    assert "Access-Control-Allow-Origin" not in resp.headers


# --- pagination envelope ------------------------------------------------------------------------


async def test_page_defaults_and_clamps_and_echoes_effective_values(h: Harness) -> None:
    assert await (await h.client.get("/api/v1/items")).json() == {
        "data": [0, 1, 2, 3, 4, 5, 6],
        "total": 7,
        "limit": 50,
        "offset": 0,
    }
    assert await (await h.client.get("/api/v1/items?limit=500&offset=5")).json() == {
        "data": [5, 6],
        "total": 7,
        "limit": 100,
        "offset": 5,
    }
    assert await (await h.client.get("/api/v1/items?limit=2&offset=1")).json() == {
        "data": [1, 2],
        "total": 7,
        "limit": 2,
        "offset": 1,
    }


@pytest.mark.parametrize("query", ["limit=abc", "offset=-1", "limit=1.5", "limit="])
async def test_non_numeric_page_params_are_400(h: Harness, query: str) -> None:
    resp = await h.client.get(f"/api/v1/items?{query}")
    assert resp.status == 400
    assert "error" in await resp.json()


# --- OpenAPI from the route table ---------------------------------------------------------------


async def test_every_served_route_is_documented_and_every_documented_route_is_served(
    h: Harness,
) -> None:
    document = await (await h.client.get("/openapi.json")).json()
    app = build_app(MemoryUnitOfWorkFactory(), FakeClock(NOW))
    served = served_operations(app)
    assert ("GET", "/api/admin/v1/whoami") in served
    served.discard(("GET", "/api/admin/v1/whoami"))  # the admin sub-app is not in this table
    assert served == documented_operations(document)
    assert ("GET", "/api/v1/vm/{id}") in served
    assert ("GET", "/openapi.json") in served


def test_document_describes_auth_paths_and_envelopes() -> None:
    document = route_table().document(title="t", version="9")
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert paths["/api/v1/account"]["get"]["security"] == [{"nip98": []}]
    assert "security" not in paths["/api/v1/vm/{id}"]["get"]
    [param] = paths["/api/v1/vm/{id}"]["get"]["parameters"]
    assert param == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }
    page = paths["/api/v1/items"]["get"]
    assert {p["name"] for p in page["parameters"]} == {"limit", "offset"}
    body = page["responses"]["200"]["content"]["application/json"]["schema"]
    assert body["required"] == ["data", "total", "limit", "offset"]
    echo_op = paths["/api/v1/echo"]["post"]
    assert echo_op["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert "401" in echo_op["responses"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_route_table_refuses_an_auth_flag_the_handler_contradicts() -> None:
    table = RouteTable()
    with pytest.raises(ValueError, match="auth"):
        table.add("GET", "/x", account, summary="x", auth=False)
    with pytest.raises(ValueError, match="auth"):
        table.add("GET", "/y", vm, summary="y", auth=True)


def test_registration_keeps_order_so_static_segments_win() -> None:
    async def methods(request: web.Request) -> web.StreamResponse:
        return data_response("methods")

    async def by_id(request: web.Request) -> web.StreamResponse:
        return data_response(request.match_info["id"])

    table = RouteTable()
    table.add("GET", "/api/v1/payment/methods", methods, summary="m")
    table.add("GET", "/api/v1/payment/{id}", by_id, summary="p")
    app = web.Application()
    table.register(app)
    [first, second] = [r for r in app.router.resources()]
    assert first.canonical == "/api/v1/payment/methods"
    assert second.canonical == "/api/v1/payment/{id}"


# --- time and JSON helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC), "2026-06-17T10:00:00Z"),
        (datetime(2026, 6, 17, 10, 0, 0, 123000, tzinfo=UTC), "2026-06-17T10:00:00.123Z"),
        (datetime(2026, 6, 17, 10, 0, 5, 512301, tzinfo=UTC), "2026-06-17T10:00:05.512301Z"),
        (
            datetime(2026, 6, 17, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-06-17T10:00:00Z",
        ),
    ],
)
def test_format_time_is_utc_z_with_fraction_only_when_non_zero(when: datetime, text: str) -> None:
    assert format_time(when) == text
    assert parse_time(text) == when


@settings(max_examples=300)
@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])))
def test_format_time_writes_what_strftime_writes(when: datetime) -> None:
    """The isoformat fast path (issue 10) gives the strftime text it replaced, any year."""
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        return
    text, micros = utc.strftime("%Y-%m-%dT%H:%M:%S"), utc.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    assert format_time(when) == text + "Z"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    assert format_optional_time(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-17T12:30:00+02:30", datetime(2026, 6, 17, 10, 0, tzinfo=UTC)),
        ("2026-06-17t10:00:00z", datetime(2026, 6, 17, 10, 0, tzinfo=UTC)),
        ("2026-06-17T10:00:00.123456789Z", datetime(2026, 6, 17, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-06-16T23:00:00-11:00", datetime(2026, 6, 17, 10, 0, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_any_rfc3339_offset(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-06-17",
        "2026-06-17T10:00:00",
        "2026-02-30T00:00:00Z",
        "2026-06-17T10:00:00+24:00",
        "yesterday",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "0999-01-01T00:00:00Z",
    ],
)
def test_parse_time_refuses_other_shapes_as_bad_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_time(text)


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_parse_page_honours_a_custom_maximum_and_no_maximum() -> None:
    assert parse_page({"limit": "500"}, max_limit=None) == PageParams(limit=500, offset=0)
    assert parse_page({"limit": "+7"}, default_limit=10) == PageParams(limit=7, offset=0)
    assert parse_page({}, default_limit=10) == PageParams(limit=10, offset=0)
    with pytest.raises(InvalidInput):
        parse_page({"offset": str(2**64)})
