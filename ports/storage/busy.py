"""The one failure every storage backend reports when the database gave up on a lock."""

from __future__ import annotations

from ports.failures import RetryableError

#: what a user is told (503): nothing is wrong with the request, it may be sent again
BUSY_MESSAGE = "The service is busy; please retry"


class StorageBusy(RetryableError):
    """The database refused to wait any longer for a lock: a lock wait past its timeout
    (MariaDB 1205, SQLite busy) or a deadlock whose victim this transaction was (1213).

    Always transient: the unit of work must be given up (left, which rolls it back; MariaDB
    already rolled a deadlock victim back), and the same request or job, run again, may
    well succeed. Deliberately not a `DomainError`: callers catch those as refusals of the
    rules, which running again cannot change (a worker drops such a job and tells the
    admins), and a busy database is no such refusal.
    """

    def __init__(self, message: str = BUSY_MESSAGE) -> None:
        super().__init__(message, transient=True)
