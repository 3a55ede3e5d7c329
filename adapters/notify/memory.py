"""A Notifier that records what it was asked to send, so tests can assert on it."""

from __future__ import annotations

import attrs

from ports.notify import NotificationError


@attrs.frozen
class Sent:
    """One notification; `user_id` None means it went to the admins."""

    user_id: int | None
    title: str
    message: str
    #: set when the notice was mailed to an address (`notify_address`), not to a user
    address: str | None = None


class RecordingNotifier:
    """Keeps every notification in `sent`; `failures` > 0 makes the next calls fail."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures = 0

    async def notify_user(self, user_id: int, title: str, message: str) -> None:
        self._maybe_fail()
        self.sent.append(Sent(user_id, title, message))

    async def notify_address(self, address: str, title: str, message: str) -> None:
        self._maybe_fail()
        self.sent.append(Sent(None, title, message, address))

    async def notify_admins(self, title: str, message: str) -> None:
        self._maybe_fail()
        self.sent.append(Sent(None, title, message))

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise NotificationError("recording notifier told to fail", transient=True)

    def to_user(self, user_id: int) -> list[Sent]:
        return [s for s in self.sent if s.user_id == user_id]

    def to_admins(self) -> list[Sent]:
        return [s for s in self.sent if s.user_id is None and s.address is None]

    def titled(self, title: str) -> list[Sent]:
        return [s for s in self.sent if s.title == title]
