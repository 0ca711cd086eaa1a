"""Fixtures for tests that run a real server in this process and talk to it over sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kasagi
from wire import Wire


@pytest.fixture
def make_server(server_factory: Callable[..., kasagi.Server]) -> Callable[..., kasagi.Server]:
    """Starts servers with the given settings (port 0); stops them all at the end."""
    return server_factory


@pytest.fixture(params=["json", "msgpack"])
def encoding(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def connect(encoding: str) -> Iterator[Callable[..., Wire]]:
    """Opens raw protocol connections in the test's encoding; closes them at the end."""
    opened: list[Wire] = []

    def open_(server: kasagi.Server, enc: str | None = None, **kw: Any) -> Wire:
        w = Wire(server.url, enc or encoding, **kw)
        opened.append(w)
        return w

    yield open_
    for w in opened:
        try:
            w.close()
        except Exception:
            pass
