"""Admin deletes (api.md §9.11, §9.12): payment-method configs, subscriptions, line items."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import RouteTable, Schema
from adapters.http.routes_webhooks import WEBHOOK_SECRETS
from adapters.http.views_schema import STRING, obj
from adapters.http.vm_params import path_id
from domain.enums import AdminAction, AdminResource, PaymentMethod

SUCCESS: Schema = obj({"success": {"type": "boolean"}, "message": STRING})


def _done(message: str) -> web.StreamResponse:
    return data_response({"success": True, "message": message})


@require(AdminResource.PAYMENT_METHOD_CONFIG, AdminAction.DELETE)
async def remove_payment_method(request: web.Request, admin: Admin) -> web.StreamResponse:
    """409 while the config holds its method's only webhook secret and payments of the method
    could still be paid; its company's pending payments of the method are expired."""
    configured = request.config_dict.get(WEBHOOK_SECRETS)
    in_settings = [m for m in PaymentMethod if configured and configured.secret_for(m)]
    await services(request).admin.delete_payment_method(
        path_id(request), signed_by_settings=in_settings
    )
    return _done("Payment method configuration deleted successfully")


@require(AdminResource.SUBSCRIPTIONS, AdminAction.DELETE)
async def remove_subscription(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).admin.delete_subscription(path_id(request))
    return _done("Subscription deleted successfully")


@require(AdminResource.SUBSCRIPTION_LINE_ITEMS, AdminAction.DELETE)
async def remove_line_item(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    await svc.admin.delete_line_item(line_item_id=path_id(request), admin_id=admin.user.id)
    return _done("Subscription line item deleted successfully")


def add_admin_delete_routes(table: RouteTable) -> None:
    add(
        table,
        "DELETE",
        f"/payment_methods/{ID}",
        remove_payment_method,
        "Delete a payment-method config; its pending payments expire (409: only webhook secret)",
        response=SUCCESS,
    )
    add(
        table,
        "DELETE",
        f"/subscriptions/{ID}",
        remove_subscription,
        "Delete a subscription nothing depends on (no payments, VM or IP range)",
        response=SUCCESS,
    )
    add(
        table,
        "DELETE",
        f"/subscription_line_items/{ID}",
        remove_line_item,
        "Delete a line item with no VM or IP range, none of its payments pending",
        response=SUCCESS,
    )
