"""Fixtures of the reliability tests: the fault-injecting loopback server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.servers import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer`, stopped after the test."""
    srv = FaultServer().start()
    yield srv
    srv.stop()
