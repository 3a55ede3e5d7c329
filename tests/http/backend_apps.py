"""The whole user API (and the admin API) over memory, SQLite or MariaDB storage, for tests.

Import `database`, `backend` and `c` into a test module to run its tests once per backend:
`c` is an `ApiClient` of every user route with the demo catalogue seeded in that storage, and
`admin` (where imported) an admin client over the same services with ROOT a super admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.app import USER_API_ROUTES
from tests.contract.storage_backends import Backend, backend, database
from tests.http.admin.adminapp import ROOT, seed_roles
from tests.http.apiapp import ApiClient, api_client, build_api_app

__all__ = ["ROOT", "admin", "backend", "c", "database"]


@pytest.fixture
async def c(backend: Backend) -> AsyncIterator[ApiClient]:
    """Every user route over the backend's (empty) storage, demo catalogue seeded."""
    api = build_api_app(*USER_API_ROUTES, store=backend.factory)
    async with api_client(api) as client:
        yield client


@pytest.fixture
async def admin(c: ApiClient) -> AsyncIterator[ApiClient]:
    """The admin API over the same services; ROOT holds super_admin."""
    await seed_roles(c.api)
    async with TestClient(TestServer(build_admin_app(c.api.services))) as client:
        yield ApiClient(client, c.api)
