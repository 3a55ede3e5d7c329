"""The end-to-end tests' fork server (`tests.e2e.forked`) is stopped at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.forked import stop_fork_server


@pytest.fixture(scope="session", autouse=True)
def _fork_server() -> Iterator[None]:
    yield
    stop_fork_server()
