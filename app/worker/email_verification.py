"""SendEmailVerification: mail a user the link that verifies their address (D22)."""

from __future__ import annotations

import logging

from app.account.profile import verify_link
from app.worker import messages
from app.worker.context import WorkerDeps
from ports.notify import AddressNotifier, Notifier

log = logging.getLogger("lnvps.worker.email")


async def send_email_verification(deps: WorkerDeps, sender: Notifier, user_id: int) -> None:
    """Mail the user's current address its current link, built from the stored token.

    The job carries only the user id: a job queued before the address changed again, or
    before it was verified, mails what is pending now (or nothing), never a spent token.
    """
    async with deps.uow_factory() as uow:
        user = await uow.users.get(user_id)
    if user is None or user.email_verified or not user.email or not user.email_verify_token:
        log.info("user %s has no address waiting for verification; nothing mailed", user_id)
        return
    if not isinstance(sender, AddressNotifier):
        log.error("the notifier cannot mail an address; verification for %s not sent", user_id)
        return
    link = verify_link(deps.public_url, user.email_verify_token)
    notice = messages.email_verification(link)
    await sender.notify_address(user.email, notice.title, notice.message)
