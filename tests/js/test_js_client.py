"""The JavaScript client (clients/js): its unit tests, and its tests against a real server.

Both run node's test runner through npm (see conftest.py); a failure shows node's output.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest


def test_unit_tests(npm_run: Callable[..., str]) -> None:
    """Merge patch, room mirror, backoff, and the client against a fake socket."""
    if os.environ.get("KASAGI_SANITIZED"):
        pytest.skip("no native code involved: run by the normal build's suite")
    output = npm_run("test")
    assert "resumes with sessionToken, lastVersion and epoch" in output


def test_against_a_real_server(
    npm_run: Callable[..., str], server_factory: Callable[..., Any]
) -> None:
    """Join, update and ACK, two clients (one per encoding) converge, CONFLICT, and resume
    after a dropped socket with sessionToken and lastVersion."""
    server = server_factory(tick_rate=20.0, writable_paths=["/players/$self", "/board/*"])
    output = npm_run("test:integration", KASAGI_URL=server.url)
    assert "a dropped connection resumes the same player" in output
