"""Schemathesis over the admin API's document on SQLite and MariaDB, the second half of its
operations (the other half: `test_schemathesis_admin.py`, a file of its own so xdist runs
the halves side by side): no 5xx, no answer outside the documented schema."""

from __future__ import annotations

from tests.http import schemathesis_run
from tests.http.schemathesis_run import Server, check_api

# pytest fixture: a server per backend for this file
server = schemathesis_run.server


def test_no_server_errors_and_no_schema_violations(server: Server) -> None:
    check_api(server, "admin", part=(1, 2))
