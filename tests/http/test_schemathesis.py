"""Schemathesis over the user API's `/openapi.json` on SQLite and MariaDB (see
`tests.http.schemathesis_run`): no 5xx, no answer outside the documented schema."""

from __future__ import annotations

from tests.http import schemathesis_run
from tests.http.schemathesis_run import Server, check_api

# pytest fixture: a server per backend for this file
server = schemathesis_run.server


def test_no_server_errors_and_no_schema_violations(server: Server) -> None:
    check_api(server, "user")
