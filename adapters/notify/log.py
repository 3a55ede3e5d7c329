"""A Notifier that writes each notification to the log (dev runs, no mail server)."""

from __future__ import annotations

import logging

log = logging.getLogger("lnvps.notify")


class LogNotifier:
    """Logs every notification as one structured record; holds no credentials to leak.

    Message bodies carry VM ids, dates, IPs and renew links, never secrets (messages.py
    builds them from records, not from settings), so they are logged whole: in dev mode the
    log is the only place a user-facing notice can be read.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger if logger is not None else log

    async def notify_user(self, user_id: int, title: str, message: str) -> None:
        self._log.info(
            "notify user %s: %s\n%s",
            user_id,
            title,
            message,
            extra={"notify_to": "user", "user_id": user_id, "notify_title": title},
        )

    async def notify_address(self, address: str, title: str, message: str) -> None:
        self._log.info(
            "notify %s: %s\n%s",
            address,
            title,
            message,
            extra={"notify_to": "address", "notify_title": title},
        )

    async def notify_admins(self, title: str, message: str) -> None:
        self._log.info(
            "notify admins: %s\n%s",
            title,
            message,
            extra={"notify_to": "admins", "notify_title": title},
        )
