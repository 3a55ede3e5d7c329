"""D22 end to end with SMTP configured: PATCH an address, the worker mails the link, following
it verifies the address, and only then is a VM order accepted."""

from __future__ import annotations

from urllib.parse import urlsplit

from adapters.notify.smtp import SmtpNotifier
from app.worker.context import WorkerDeps
from app.worker.jobs import QueuedNotifier, build_handlers
from app.worker.loop import drain
from tests.fake_smtp import FakeSmtp, parsed, smtp_server
from tests.http.apiapp import ALICE, ApiApp, ApiClient, api_client
from tests.http.vm_helpers import add_key, build

PUBLIC_URL = "https://api.lnvps.test"


async def run_worker(api: ApiApp, smtp: FakeSmtp) -> int:
    """What the worker process does with the queued jobs, delivering mail over SMTP."""
    deps = WorkerDeps(
        uow_factory=api.store,
        clock=api.clock,
        hosts=api.services.hosts,
        queue=api.queue,
        notifier=QueuedNotifier(api.queue),
        public_url=PUBLIC_URL,
    )
    delivery = SmtpNotifier(api.store, server="127.0.0.1", port=smtp.port, timeout_s=5)
    return await drain(api.queue, build_handlers(deps, delivery))


async def order_status(c: ApiClient) -> int:
    ssh = await add_key(c.api, ALICE)
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    status: int = (await c.call("POST", "/api/v1/vm", json=body)).status
    return status


async def test_the_mailed_link_verifies_the_address_and_unlocks_orders() -> None:
    api = build(require_verified_email=True, public_url=PUBLIC_URL)
    async with smtp_server() as smtp, api_client(api) as c:
        assert await order_status(c) == 422  # D22: no verified address yet
        body = {"contact_nip17": False, "contact_email": False, "email": "alice@example.com"}
        assert (await c.call("PATCH", "/api/v1/account", json=body)).status == 200
        await run_worker(api, smtp)

        [(rcpts, data)] = smtp.mails
        assert rcpts == ["alice@example.com"]
        mail = parsed(data)
        assert mail["To"] == "alice@example.com"
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        [link] = [word for word in text.split() if word.startswith(PUBLIC_URL)]
        parts = urlsplit(link)
        page = await c.call("GET", f"{parts.path}?{parts.query}", signed=False)
        assert "Email Verified" in await page.text()
        account = (await (await c.call("GET", "/api/v1/account")).json())["data"]
        assert account["email_verified"] is True
        assert await order_status(c) == 200


async def test_a_stale_job_mails_nothing_once_the_address_is_verified() -> None:
    api = build(require_verified_email=True, public_url=PUBLIC_URL)
    async with smtp_server() as smtp, api_client(api) as c:
        body = {"contact_nip17": False, "contact_email": False, "email": "alice@example.com"}
        await c.call("PATCH", "/api/v1/account", json=body)
        user_id = await c.user_id()
        async with api.store() as uow:
            user = await uow.users.get(user_id)
        assert user is not None
        path = f"/api/v1/account/verify-email?token={user.email_verify_token}"
        await c.call("GET", path, signed=False)
        assert await run_worker(api, smtp) == 1
        assert smtp.mails == []
