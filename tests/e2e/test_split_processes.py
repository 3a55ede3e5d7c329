"""An API process and a worker process sharing Redis (queue, VM states) and the database:
a payment settled while only the API runs is completed once the worker starts, and the API
shows the state the worker cached."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.dbtest import sqlite_url_for
from tests.e2e.serve_process import running_server, running_worker
from tests.e2e.test_pulumi_walk import KEY, SSH_KEY, _poll
from tests.redistest import REDIS_URL, connect_redis


async def test_api_and_worker_processes_cooperate_over_redis(tmp_path: Path) -> None:
    client = await connect_redis()  # skips (or fails in CI) without Redis
    namespace = f"lnvps_e2e_{secrets.token_hex(4)}"
    redis_config = (
        f"redis:\n  url: {REDIS_URL}\n  stream: {namespace}_jobs\n  key-prefix: '{namespace}:'\n"
        "worker:\n  check-interval: 1\n"
    )
    try:
        db = sqlite_url_for(tmp_path / "split.db")
        async with running_server(tmp_path, db, redis_config, mode="api") as api:
            _, body = await api.call(
                "POST", "/api/v1/ssh-key", KEY, {"name": "k", "key_data": SSH_KEY}
            )
            key_id = body["data"]["id"]
            status, body = await api.call(
                "POST", "/api/v1/vm", KEY, {"template_id": 2, "image_id": 1, "ssh_key_id": key_id}
            )
            assert status == 200, body
            vm_id = body["data"]["id"]
            _, renew = await api.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
            payment_id = renew["data"]["id"]
            assert api.cli("dev", "pay", payment_id).returncode == 0

            async def unpaid_still() -> bool:
                _, p = await api.call("GET", f"/api/v1/payment/{payment_id}", KEY)
                return p["data"]["is_paid"] is False

            assert await unpaid_still()  # nobody listens for settlements in an API process
            async with running_worker(tmp_path):

                async def paid() -> bool:
                    _, p = await api.call("GET", f"/api/v1/payment/{payment_id}", KEY)
                    return bool(p["data"]["is_paid"])

                await _poll("the worker to complete the payment", paid)

                async def running() -> bool:
                    _, vm = await api.call("GET", f"/api/v1/vm/{vm_id}", KEY)
                    return bool(vm["data"]["status"]["state"] == "running")

                await _poll("the API to show the worker's state", running)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{namespace}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
