"""Where handlers find the process's Services: one typed key on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from app.services import Services

SERVICES = web.AppKey("lnvps_services", Services)


def services(request: web.Request) -> Services:
    """The Services of the application serving `request` (sub-apps look up their parents)."""
    return request.config_dict[SERVICES]
