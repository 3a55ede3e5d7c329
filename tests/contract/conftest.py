"""Fixtures shared by the contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.image_server import ImageServer


@pytest.fixture
async def image_server() -> AsyncIterator[ImageServer]:
    served = ImageServer()
    app = web.Application()
    app.router.add_get("/images/{name}", served.serve_file)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    served.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield served
    finally:
        await server.close()
