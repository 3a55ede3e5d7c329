"""User-API account routes (api.md §6.1, §6.2): account GET/PATCH, e-mail verification, SSH keys."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from adapters.http.auth import VerifiedKey, authenticated, verified
from adapters.http.context import services
from adapters.http.envelope import (
    data_response,
    error_response,
    page_response,
    parse_page,
    read_json,
)
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_account import (
    ACCOUNT_PATCH_SCHEMA,
    ACCOUNT_SCHEMA,
    NEW_SSH_KEY_SCHEMA,
    SSH_KEY_SCHEMA,
    account_json,
    account_patch,
    ssh_key_json,
)
from adapters.http.views_credit import (
    CREDIT_BALANCES_SCHEMA,
    CREDIT_ENTRY_SCHEMA,
    balances_json,
    credit_entry_json,
)
from adapters.http.views_input import json_object, required_text
from adapters.http.views_schema import CURRENCY
from app.account.profile import VerifyOutcome
from app.billing.credit_balance import MAX_PAGE
from app.billing.errors import UserNotFound
from domain.model import User
from domain.money import Currency

log = logging.getLogger("lnvps.http")

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""
_PAGES = {
    VerifyOutcome.VERIFIED: ("Email Verified", "Your email address has been verified."),
    VerifyOutcome.INVALID: (
        "Invalid or Expired Link",
        "This verification link is invalid or has already been used.",
    ),
}


@authenticated
async def get_account(request: web.Request, user: User) -> web.StreamResponse:
    # the user row was read by the NIP-98 upsert of this request; the balance is one query
    balances = await services(request).account.balance_parts_of(user.id)
    return data_response({**account_json(user), "credit": balances_json(balances)})


@authenticated
async def get_account_credit(request: web.Request, user: User) -> web.StreamResponse:
    """The caller's credit ledger, newest first, optionally one currency's."""
    page = parse_page(request.query, max_limit=MAX_PAGE)
    code = request.query.get("currency")
    currency = None if code is None else Currency.parse(code).value
    found = await services(request).account.ledger_page(
        user.id,
        limit=page.limit,
        offset=page.offset,
        currency=currency,
    )
    return page_response([credit_entry_json(e) for e in found.items], found.total, page)


@authenticated
async def patch_account(request: web.Request, user: User) -> web.StreamResponse:
    svc = services(request)
    patch = account_patch(json_object(await read_json(request)))
    result = await svc.account.update_account(user.id, patch)
    if result.verify_link is not None and not svc.require_verified_email:
        # D22: without SMTP (dev) the link is only logged
        log.info("e-mail verification link for user %s: %s", user.id, result.verify_link)
    return data_response(None)


async def get_verify_email(request: web.Request) -> web.StreamResponse:
    """Always an HTML page with 200, except a missing `token` (400 `{"error"}`)."""
    token = request.query.get("token")
    if token is None:
        return error_response(400, "Failed to deserialize query string: missing field `token`")
    outcome = await services(request).account.verify_email(token)
    title, text = _PAGES[outcome]
    return web.Response(text=_PAGE.format(title=title, text=text), content_type="text/html")


@authenticated
async def get_ssh_keys(request: web.Request, user: User) -> web.StreamResponse:
    keys = await services(request).account.list_ssh_keys(user.id)
    return data_response([ssh_key_json(k) for k in keys])


@verified
async def post_ssh_key(request: web.Request, caller: VerifiedKey) -> web.StreamResponse:
    """Stored for the caller's key in one unit of work (issue 10); a key seen for the first
    time gets its user first, and every refusal comes after that, as on other routes."""
    svc = services(request)
    try:
        body = json_object(await read_json(request))
        name, key_data = required_text(body, "name"), required_text(body, "key_data")
        key = await svc.account.add_ssh_key_by_owner(caller.pubkey, name, key_data)
    except Exception:
        await caller.user()  # a new key's user is created first on every authenticated route
        raise
    if key is None:  # no user has this key yet: it gets its user, then the key
        await caller.user()
        key = await svc.account.add_ssh_key_by_owner(caller.pubkey, name, key_data)
        if key is None:  # the user was removed meanwhile
            raise UserNotFound("User not found")
    return data_response(ssh_key_json(key))


def _with_credit(schema: dict[str, Any]) -> dict[str, Any]:
    """AccountInfo plus `credit` (additive: older clients ignore it)."""
    properties = {**schema["properties"], "credit": CREDIT_BALANCES_SCHEMA}
    return {**schema, "properties": properties, "required": [*schema["required"], "credit"]}


def add_account_routes(table: RouteTable) -> None:
    """Register the account and SSH-key routes."""
    tags = ("account",)
    table.add(
        "GET",
        "/api/v1/account",
        get_account,
        summary="The caller's account (with its credit balance per currency)",
        response=_with_credit(ACCOUNT_SCHEMA),
        tags=tags,
    )
    table.add(
        "GET",
        "/api/v1/account/credit",
        get_account_credit,
        summary="The caller's credit ledger, newest first",
        response=CREDIT_ENTRY_SCHEMA,
        query=[QueryParam("currency", schema=CURRENCY)],
        paginated=True,
        tags=tags,
    )
    table.add(
        "PATCH",
        "/api/v1/account",
        patch_account,
        summary="Update the caller's account (absent = keep, null = clear)",
        request=ACCOUNT_PATCH_SCHEMA,
        response={"type": "null"},
        tags=tags,
    )
    table.add(
        "GET",
        "/api/v1/account/verify-email",
        get_verify_email,
        summary="Verify an e-mail address (HTML page)",
        query=[QueryParam("token", required=True)],
        response={"type": "string"},
        enveloped=False,
        content_type="text/html",
        tags=tags,
    )
    table.add(
        "GET",
        "/api/v1/ssh-key",
        get_ssh_keys,
        summary="The caller's SSH keys",
        response={"type": "array", "items": SSH_KEY_SCHEMA},
        tags=("ssh-key",),
    )
    table.add(
        "POST",
        "/api/v1/ssh-key",
        post_ssh_key,
        summary="Add an SSH public key",
        request=NEW_SSH_KEY_SCHEMA,
        response=SSH_KEY_SCHEMA,
        tags=("ssh-key",),
    )
