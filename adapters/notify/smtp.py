"""A Notifier that sends e-mail over SMTP with aiosmtplib (lifecycle.md §12.1 delivery)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib
import attrs

from domain.unreadable import Unreadable
from ports.notify import NotificationError
from ports.storage import UnitOfWorkFactory

log = logging.getLogger("lnvps.notify.smtp")

#: subject used when a notification has no title (reference: "Notification").
DEFAULT_SUBJECT = "Notification"


def _addresses(emails: Sequence[str]) -> list[str]:
    return [a.strip() for a in emails if a.strip()]


@attrs.define(eq=False, repr=False)
class SmtpNotifier:
    """E-mails users who opted in (`contact_email` and a verified address) and the admins.

    With SMTP configured the e-mail gate is on (D22): an address nobody proved is theirs gets
    no notices, only the verification mail (`notify_address`).

    Permanent SMTP failures (5xx, refused recipients, bad credentials) are logged and
    dropped, as the reference does; transient ones (4xx, connection or timeout errors)
    raise a transient `NotificationError` so a queued notification job is retried. The
    password is handed to aiosmtplib only and never appears in a log line or an error.
    """

    _uow_factory: UnitOfWorkFactory
    _server: str = attrs.field(kw_only=True)
    _port: int = attrs.field(default=587, kw_only=True)
    _username: str | None = attrs.field(default=None, kw_only=True)
    _password: str | None = attrs.field(default=None, kw_only=True)
    _sender: str = attrs.field(default="lnvps@localhost", kw_only=True)
    _admins: list[str] = attrs.field(
        default=(), converter=_addresses, alias="admin_emails", kw_only=True
    )
    _timeout_s: float = attrs.field(default=30, kw_only=True)

    async def notify_user(self, user_id: int, title: str, message: str) -> None:
        async with self._uow_factory() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            log.warning("notification for unknown user %s dropped", user_id)
            return
        if isinstance(user.email, Unreadable):
            if user.contact_email:
                log.error(
                    "OPERATOR: user %s's e-mail address cannot be decrypted; notification %r"
                    " not mailed (the address must be set again)",
                    user_id,
                    title,
                )
            return
        address = user.email.strip()
        if not user.contact_email or not address:
            log.debug("user %s has no e-mail contact; notification not mailed", user_id)
            return
        if not user.email_verified:  # D22: an unverified address gets the verification only
            log.info("user %s's address is not verified; notification not mailed", user_id)
            return
        await self._send([address], title, message)

    async def notify_address(self, address: str, title: str, message: str) -> None:
        """The verification mail: to `address` alone, verified or not."""
        await self._send([address.strip()], title, message)

    async def notify_admins(self, title: str, message: str) -> None:
        if not self._admins:
            log.warning("no admin e-mail configured; admin notification %r dropped", title)
            return
        await self._send(self._admins, title, message)

    def _message(self, recipients: list[str], title: str, body: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = ", ".join(recipients)
        mail["Subject"] = title or DEFAULT_SUBJECT
        mail.set_content(body)
        return mail

    async def _send(self, recipients: list[str], title: str, body: str) -> None:
        try:
            await aiosmtplib.send(
                self._message(recipients, title, body),
                hostname=self._server,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._port == 465,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            if any(400 <= code < 500 for code in codes):
                raise NotificationError(f"SMTP {codes}", transient=True) from None
            log.error("SMTP refused recipients of %r: %s", title, codes)
        except aiosmtplib.SMTPResponseException as err:
            if 400 <= err.code < 500:
                raise NotificationError(f"SMTP {err.code}", transient=True) from None
            log.error("SMTP rejected %r permanently: %s %s", title, err.code, err.message)
        except (aiosmtplib.SMTPException, OSError) as err:
            reason = f"SMTP unavailable: {type(err).__name__}"
            raise NotificationError(reason, transient=True) from None
