"""The `world` fixture: a running admin app next to the user app, roles seeded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.http.admin.adminapp import AdminWorld, admin_world


@pytest.fixture
async def world() -> AsyncIterator[AdminWorld]:
    async with admin_world() as w:
        yield w
