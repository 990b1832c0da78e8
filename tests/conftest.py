"""Shared fixtures: the real-data folder, and a guard that keeps tests off the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves the loopback interface."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")):
            return real_connect(self, address)  # type: ignore[arg-type]
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)  # type: ignore[arg-type]
        raise RuntimeError(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the checkout (``../shared/data``); skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


def shared_path(*parts: str) -> Path:
    """Return a path under ``../shared/data``, skipping the test if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
