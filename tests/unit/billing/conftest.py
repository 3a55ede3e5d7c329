"""Fixtures for the billing use-case tests."""

from __future__ import annotations

import pytest

from tests.unit.billing.world import Shop, new_shop


@pytest.fixture
async def shop() -> Shop:
    return await new_shop()
