"""Notifier adapters: SMTP over a tiny in-test SMTP server, the log notifier, the recorder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.notify.log import LogNotifier
from adapters.notify.smtp import SmtpNotifier
from domain.model import User
from domain.unreadable import Unreadable
from ports.notify import NotificationError
from tests.fake_smtp import FakeSmtp, smtp_server
from tests.unit.billing.world import START


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as fake:
        yield fake


async def _users() -> MemoryUnitOfWorkFactory:
    factory = MemoryUnitOfWorkFactory()
    async with factory() as uow:
        await uow.users.add(
            User(
                id=0,
                pubkey=b"a" * 32,
                created=START,
                email="a@example.com",
                email_verified=True,
                contact_email=True,
            )
        )
        await uow.users.add(User(id=0, pubkey=b"b" * 32, created=START, email="b@example.com"))
        await uow.commit()
    return factory


def _notifier(factory: MemoryUnitOfWorkFactory, port: int) -> SmtpNotifier:
    return SmtpNotifier(
        factory,
        server="127.0.0.1",
        port=port,
        sender="lnvps@example.com",
        admin_emails=["ops@example.com", " "],
        timeout_s=5,
    )


async def test_smtp_mails_users_who_opted_in_and_the_admins(smtp: FakeSmtp) -> None:
    notifier = _notifier(await _users(), smtp.port)

    await notifier.notify_user(1, "[VM1] Expired", "Your VM #1 has expired.")
    await notifier.notify_user(2, "[VM2] Expired", "not opted in")
    await notifier.notify_user(99, "[VM3] Expired", "unknown user")
    await notifier.notify_admins("", "admin body")

    assert [rcpts for rcpts, _ in smtp.mails] == [["a@example.com"], ["ops@example.com"]]
    assert "Subject: [VM1] Expired" in smtp.mails[0][1]
    assert "Your VM #1 has expired." in smtp.mails[0][1]
    assert "Subject: Notification" in smtp.mails[1][1]


async def test_smtp_mails_no_notice_to_an_unverified_address(smtp: FakeSmtp) -> None:
    """D22: an address nobody proved is theirs gets the verification mail and nothing else."""
    factory = MemoryUnitOfWorkFactory()
    async with factory() as uow:
        user = await uow.users.add(
            User(
                id=0,
                pubkey=b"c" * 32,
                created=START,
                email="victim@example.com",
                contact_email=True,
            )
        )
        await uow.commit()
    notifier = _notifier(factory, smtp.port)
    await notifier.notify_user(user.id, "[VM1] Expired", "Your VM #1 has expired.")
    assert smtp.mails == []
    await notifier.notify_address("victim@example.com", "Verify", "the link")
    assert [rcpts for rcpts, _ in smtp.mails] == [["victim@example.com"]]


async def test_smtp_tells_the_operator_about_an_address_that_cannot_be_decrypted(
    smtp: FakeSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealed with a lost key, the address is no address: the notice is not mailed (nor
    retried: nothing transient), the operator is told, and the admins still get theirs."""
    factory = MemoryUnitOfWorkFactory()
    async with factory() as uow:
        user = await uow.users.add(
            User(
                id=0,
                pubkey=b"d" * 32,
                created=START,
                email=Unreadable("ENC:sealed-with-a-lost-key"),
                email_verified=True,
                contact_email=True,
            )
        )
        await uow.commit()
    notifier = _notifier(factory, smtp.port)
    with caplog.at_level(logging.ERROR, logger="lnvps.notify.smtp"):
        await notifier.notify_user(user.id, "[VM1] Expired", "Your VM #1 has expired.")
        await notifier.notify_admins("[admin]", "body")
    assert [rcpts for rcpts, _ in smtp.mails] == [["ops@example.com"]]
    [told] = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert f"user {user.id}" in told and "[VM1] Expired" in told


async def test_smtp_permanent_refusal_is_dropped(smtp: FakeSmtp) -> None:
    smtp.rcpt_code = 550
    await _notifier(await _users(), smtp.port).notify_user(1, "t", "m")
    assert smtp.mails == []


async def test_smtp_temporary_failure_is_a_transient_error(smtp: FakeSmtp) -> None:
    smtp.rcpt_code = 451
    with pytest.raises(NotificationError) as err:
        await _notifier(await _users(), smtp.port).notify_user(1, "t", "m")
    assert err.value.transient


async def test_smtp_server_down_is_a_transient_error_without_credentials() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    notifier = SmtpNotifier(
        await _users(), server="127.0.0.1", port=port, password="hunter2", timeout_s=2
    )
    await notifier.notify_admins("t", "m")  # no admin address: dropped, no connection
    with pytest.raises(NotificationError) as err:
        await notifier.notify_user(1, "t", "m")
    assert err.value.transient and "hunter2" not in str(err.value)


async def test_log_notifier_writes_one_record_per_notice(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lnvps.notify")
    await LogNotifier().notify_user(3, "[VM3] Created", "body")
    await LogNotifier().notify_admins("[VM3] Created", "body")
    assert [getattr(r, "notify_to", None) for r in caplog.records] == ["user", "admins"]
