"""Shared fixtures: servers in this process, and the ``kasagi`` command.

- ``server``: a started ``kasagi.Server`` on a free port (tick_rate 20), stopped afterwards.
- ``server_factory(**settings)``: starts more servers with any Config settings.
- ``run_kasagi(*args)``: runs ``python -m kasagi *args`` to completion (text output).

``kasagi serve`` as a subprocess, Redis servers, Sentinel groups and Clusters come from the
kasagi pytest plugin (kasagi.testing.pytest_plugin): ``kasagi_instances``,
``redis_server``, ``redis_sentinel_group``, ``redis_cluster``.

kasagi is imported inside the fixtures, so test modules that need no native core (pure
Python parts) still collect without it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Any]]:
    """Returns ``make(**settings) -> kasagi.Server`` (started, port 0 unless given); every
    server made is stopped at teardown."""
    import kasagi

    servers: list[kasagi.Server] = []

    def make(**settings: Any) -> kasagi.Server:
        settings.setdefault("log_level", "warning")
        server = kasagi.Server(**settings).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., Any]) -> Any:
    """A started kasagi.Server on a free port with tick_rate 20."""
    return server_factory(tick_rate=20.0)


@pytest.fixture
def run_kasagi() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Returns ``run(*args)``: runs ``python -m kasagi *args`` and returns the completed
    process (stdout and stderr as text)."""
    from kasagi.testing import child_env

    def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kasagi", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
        )

    return run
