"""The end-to-end tests' forked processes (`tests.e2e.forked`) are killed when a test left
them running, and their fork server is stopped at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.forked import kill_forked, stop_fork_server


@pytest.fixture(scope="session", autouse=True)
def _fork_server() -> Iterator[None]:
    yield
    stop_fork_server()


@pytest.fixture(autouse=True)
def _no_forked_process_left() -> Iterator[None]:
    """A server a test forked and did not stop (it failed midway) is killed after the test:
    it would otherwise serve on through the next tests, and hold the run open at its end."""
    yield
    kill_forked()
