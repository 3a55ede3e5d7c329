"""Two API nodes on one database and one Redis: an admin change on one is served fresh by the
other at once (pub/sub invalidation), while a change behind the cache's back is not (cached)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.cache.redis_catalogue import RedisInvalidatedCache
from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from tests.http.admin.adminapp import ROOT, seed_roles
from tests.http.apiapp import ApiClient, api_client
from tests.http.vm_helpers import build
from tests.redistest import connect_redis


@pytest.fixture
async def two_caches() -> AsyncIterator[tuple[RedisInvalidatedCache, RedisInvalidatedCache]]:
    redis = await connect_redis()
    channel = f"lnvps-test:{secrets.token_hex(4)}:catalogue:invalidate"
    caches = (RedisInvalidatedCache(redis, channel), RedisInvalidatedCache(redis, channel))
    stop = asyncio.Event()
    listeners = [asyncio.create_task(c.listen(stop)) for c in caches]
    try:
        for cache in caches:
            await asyncio.wait_for(cache.subscribed.wait(), 5)
        yield caches
    finally:
        stop.set()
        await asyncio.gather(*listeners)
        await redis.aclose()


async def _image_ids(client: TestClient[Any, Any]) -> set[int]:
    resp = await client.get("/api/v1/image")
    assert resp.status == 200
    return {i["id"] for i in (await resp.json())["data"]}


async def test_an_admin_change_on_one_node_reaches_the_other_without_a_ttl(
    two_caches: tuple[RedisInvalidatedCache, RedisInvalidatedCache],
) -> None:
    node_a, node_b = two_caches
    api = build()
    await seed_roles(api)
    async with api_client(api) as seeded:
        demo = seeded.demo
        admin_app = build_admin_app(attrs.evolve(api.services, catalogue_cache=node_a))
        user_b = build_user_app(attrs.evolve(api.services, catalogue_cache=node_b))
        async with (
            TestClient(TestServer(admin_app)) as admin_raw,
            TestClient(TestServer(user_b)) as b,
        ):
            admin = ApiClient(admin_raw, api)
            assert await _image_ids(b) == {demo.ubuntu, demo.debian}

            # a change that bypasses the admin API is not seen: node B serves its cached copy
            async with api.store() as uow:
                debian = await uow.images.get(demo.debian)
                assert debian is not None
                await uow.images.update(attrs.evolve(debian, enabled=False))
                await uow.commit()
            assert await _image_ids(b) == {demo.ubuntu, demo.debian}

            # the same kind of change through node A's admin API clears node B at once
            path = f"/api/admin/v1/vm_os_images/{demo.ubuntu}"
            resp = await admin.call("PATCH", path, key=ROOT, json={"enabled": False})
            assert resp.status == 200, await resp.text()
            for _ in range(100):  # pub/sub delivery: milliseconds; the TTL is 300 s
                if await _image_ids(b) == set():
                    break
                await asyncio.sleep(0.02)
            assert await _image_ids(b) == set()


async def test_a_refused_admin_write_invalidates_nothing(
    two_caches: tuple[RedisInvalidatedCache, RedisInvalidatedCache],
) -> None:
    node_a, node_b = two_caches
    api = build()
    await seed_roles(api)
    async with api_client(api) as seeded:
        demo = seeded.demo
        admin_app = build_admin_app(attrs.evolve(api.services, catalogue_cache=node_a))
        user_b = build_user_app(attrs.evolve(api.services, catalogue_cache=node_b))
        async with (
            TestClient(TestServer(admin_app)) as admin_raw,
            TestClient(TestServer(user_b)) as b,
        ):
            admin = ApiClient(admin_raw, api)
            assert await _image_ids(b) == {demo.ubuntu, demo.debian}
            async with api.store() as uow:
                debian = await uow.images.get(demo.debian)
                assert debian is not None
                await uow.images.update(attrs.evolve(debian, enabled=False))
                await uow.commit()
            resp = await admin.call(
                "PATCH",
                f"/api/admin/v1/vm_os_images/{demo.ubuntu}",
                key=ROOT,
                json={"enabled": "no"},
            )
            assert resp.status == 400
            await asyncio.sleep(0.2)
            assert await _image_ids(b) == {demo.ubuntu, demo.debian}  # still the cached copy
