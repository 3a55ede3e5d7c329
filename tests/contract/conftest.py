"""Fixtures shared by the contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.image_server import ImageServer, serve_images


@pytest.fixture
async def image_server() -> AsyncIterator[ImageServer]:
    """A local mirror of OS image files (see `ImageServer.image`)."""
    async with serve_images() as served:
        yield served
