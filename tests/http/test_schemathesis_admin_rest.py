"""Schemathesis over the admin API's document on SQLite and MariaDB, the second half of its
operations (the other half: `test_schemathesis_admin.py`, a file of its own so xdist runs
the halves side by side): no 5xx, no answer outside the documented schema."""

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
    check_api(server, "admin", part=(1, 2))
