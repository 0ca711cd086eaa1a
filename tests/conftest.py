"""Shared fixtures: servers in this process, and ``kasagi serve`` as a subprocess.

- ``server``: a started ``kasagi.Server`` on a free port (tick_rate 20), stopped afterwards.
- ``server_factory(**settings)``: starts more servers with any Config settings.
- ``serve_process(*args)``: runs ``python -m kasagi serve`` on a free port and returns once
  ``/healthz`` answers; the process gets SIGTERM (then SIGKILL) at teardown.
- ``run_kasagi(*args)``: runs ``python -m kasagi *args`` to completion (text output).

kasagi is imported inside the fixtures, so test modules that need no native core (pure
Python parts) still collect without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
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


def free_port() -> int:
    """Returns a TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0
) -> None:
    """Waits until ``GET /healthz`` on ``port`` answers 200.

    Raises:
        RuntimeError: ``proc`` exited first, or nothing answered within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"kasagi serve exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class ServeProcess:
    """A running ``kasagi serve``: its process (stderr piped), port and URLs."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 15.0) -> tuple[int, str]:
        """Sends SIGTERM and waits; returns (exit status, everything written to stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> tuple[int, str]:
        """Waits for the process to exit; returns (exit status, all it wrote to stderr)."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode(errors="replace")


@pytest.fixture
def serve_process() -> Iterator[Callable[..., ServeProcess]]:
    """Returns ``start(*args) -> ServeProcess``: runs ``python -m kasagi serve --host
    127.0.0.1 --port <free> *args`` and waits for /healthz. Leftover processes get SIGTERM,
    then SIGKILL, at teardown."""
    started: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        port = free_port()
        cmd = [sys.executable, "-m", "kasagi", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()
        )
        serve = ServeProcess(proc, port)
        started.append(serve)
        try:
            wait_healthy(port, proc)
        except RuntimeError as err:
            serve.proc.kill()
            _, stderr = serve.proc.communicate()
            raise RuntimeError(f"{err}\n{stderr.decode(errors='replace')}") from None
        return serve

    yield start
    for serve in started:
        if serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGTERM)
            try:
                serve.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                serve.proc.kill()
                serve.proc.communicate()
        else:
            serve.proc.communicate()


@pytest.fixture
def run_kasagi() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Returns ``run(*args)``: runs ``python -m kasagi *args`` and returns the completed
    process (stdout and stderr as text)."""

    def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kasagi", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
        )

    return run


def child_env() -> dict[str, str]:
    """The environment for a child Python process: it imports the same kasagi package as the
    tests (an installed one or a source tree on PYTHONPATH)."""
    import kasagi

    env = dict(os.environ)
    parent = str(Path(kasagi.__file__).absolute().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env
