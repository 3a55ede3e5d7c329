"""A local HTTP server of OS image files (what a distribution's mirror is to a host)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import attrs
from aiohttp import web
from aiohttp.test_utils import TestServer

from domain.enums import OsDistribution
from domain.model import OsImage

#: a small stand-in for an image: not a real disk, but bytes whose digest is checked
IMAGE_BYTES = b"QFI\xfb" + bytes(range(256)) * 300


@attrs.define
class ImageServer:
    """Serves `files` by name under `/images/`; `hits` counts the GETs of each name."""

    base_url: str = ""
    files: dict[str, bytes] = attrs.field(factory=dict)
    hits: dict[str, int] = attrs.field(factory=dict)

    def image(
        self,
        name: str = "debian-12.qcow2",
        data: bytes = IMAGE_BYTES,
        *,
        sha2: str | None = "sha256",
        image_id: int = 1,
    ) -> OsImage:
        """Publish `data` as `name`; an image row pointing at it with the digest asked for
        (`sha256`, `sha512`, an explicit hex digest, or None)."""
        self.files[name] = data
        digest = sha2
        if sha2 in ("sha256", "sha512"):
            digest = hashlib.new(sha2, data).hexdigest()
        return OsImage(
            id=image_id,
            distribution=OsDistribution.DEBIAN,
            flavour="server",
            version="12",
            enabled=True,
            release_date=datetime(2026, 1, 1, tzinfo=UTC),
            url=f"{self.base_url}/images/{name}",
            sha2=digest,
        )

    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        if name not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[name], content_type="application/octet-stream")


@asynccontextmanager
async def serve_images() -> AsyncIterator[ImageServer]:
    """An `ImageServer` on a free port of 127.0.0.1 for the duration of the block."""
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
