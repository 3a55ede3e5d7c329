"""A fake mempool.space `/api/v1/prices` endpoint served by a real local aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

PRICES_PATH = "/api/v1/prices"


class FakeMempool:
    """Answers with whatever `body`, `status` and `delay_s` are set to; counts requests."""

    def __init__(
        self, body: str = "{}", status: int = 200, delay_s: float = 0.0, pieces: int = 1
    ) -> None:
        self.body = body
        self.status = status
        self.delay_s = delay_s
        #: more than 1: the body is streamed (chunked) in that many writes, with pauses
        self.pieces = pieces
        self.requests = 0

    async def _prices(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.pieces <= 1:
            return web.Response(text=self.body, status=self.status, content_type="application/json")
        response = web.StreamResponse(status=self.status)
        response.content_type = "application/json"
        await response.prepare(request)
        data = self.body.encode()
        size = -(-len(data) // self.pieces)
        for start in range(0, len(data), size):
            await response.write(data[start : start + size])
            await asyncio.sleep(0.005)
        await response.write_eof()
        return response

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yields the prices URL."""
        app = web.Application()
        app.router.add_get(PRICES_PATH, self._prices)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url(PRICES_PATH))
        finally:
            await server.close()
