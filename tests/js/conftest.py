"""Running the JavaScript client's tests (clients/js) from pytest.

``npm_run(script, **env)`` runs ``npm run <script>`` in clients/js and fails the pytest test,
with node's output, unless node's test runner passed at least one test and failed, skipped
or cancelled none. Without node and npm on the machine these tests are skipped; setup.sh
installs the package's dependencies (``npm ci``) when they are there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"


@pytest.fixture(scope="session")
def npm() -> str:
    """The npm executable; skips the test when node or npm is not installed."""
    path = shutil.which("npm")
    if path is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed: the JavaScript client is not tested")
    return path


@pytest.fixture
def npm_run(npm: str) -> Callable[..., str]:
    """Returns ``run(script, **env) -> output``: runs ``npm run <script>`` in clients/js with
    the extra environment variables and checks node's test summary (when it prints one)."""

    def run(script: str, timeout: float = 120, **env: str) -> str:
        # The sanitizer run preloads ASan for the Kasagi core; node and Chromium are not
        # instrumented and must not inherit it.
        inherited = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        result = subprocess.run(
            [npm, "run", "--silent", script],
            cwd=CLIENT_DIR,
            env={**inherited, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = f"npm run {script}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, output
        counts = {key: int(n) for key, n in re.findall(r"^ℹ (\w+) (\d+)$", result.stdout, re.M)}
        if counts:  # a test run, not a build
            assert counts["pass"] > 0, output
            assert counts["fail"] == counts["skipped"] == counts["cancelled"] == 0, output
        return result.stdout

    return run
