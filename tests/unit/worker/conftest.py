"""Fixtures for the worker tests: a shop with a worker, time moved by hand."""

from __future__ import annotations

import pytest

from tests.unit.worker.world import World, new_world


@pytest.fixture
async def world() -> World:
    return await new_world()
