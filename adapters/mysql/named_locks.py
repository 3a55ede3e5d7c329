"""MariaDB named locks (GET_LOCK) of one database: two databases on a server never share one."""

from __future__ import annotations


def of_this_database(name_param: str) -> str:
    """SQL for the lock name bound as `:name_param`, made this connection's database's own.

    `GET_LOCK` names are server-wide: two LNVPS databases on one server (or two test runs)
    would wait for each other's back-fill or schema upgrade, and a holder's `GET_LOCK(…, 0)`
    could silently fail to take a lock another database's run held. A digest of `DATABASE()`
    keeps the name within the 64 characters MariaDB and MySQL allow."""
    return f"CONCAT(:{name_param}, ':', SHA1(DATABASE()))"
