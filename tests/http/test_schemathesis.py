"""Schemathesis over the user API's `/openapi.json` on SQLite and MariaDB (see
`tests.http.schemathesis_run`): no 5xx, no answer outside the documented schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http.schemathesis_run import BACKENDS, Server, check_api, serving


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serving(request.param, tmp_path_factory) as running:
        yield running


def test_no_server_errors_and_no_schema_violations(server: Server) -> None:
    check_api(server, "user")
