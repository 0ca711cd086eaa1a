"""The demo page (clients/js/demo) in headless Chromium, served by ``kasagi serve --static``.

Two pages join one board: a mouse move and arrow keys in one page show in the other; the
socket of one page is reset (through a TCP proxy in the node test) while the other moves,
and the page reconnects, resumes the same player and converges. The test writes a
screenshot to artifacts/demo-board.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "clients" / "js" / "dist" / "demo"
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    return path


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_demo_in_two_browser_pages(
    npm_run: Callable[..., str], kasagi_instances: Callable[..., Any], chromium: str
) -> None:
    npm_run("build")  # the SDK bundle and dist/demo, which the server is about to serve
    (serve,) = kasagi_instances("--static", str(DEMO_DIR), "--tick-rate", "20")
    screenshot = ARTIFACTS / "demo-board.png"
    screenshot.unlink(missing_ok=True)
    npm_run(
        "test:browser",
        KASAGI_HTTP_URL=serve.http_url,
        KASAGI_ARTIFACTS=str(ARTIFACTS),
        KASAGI_CHROMIUM=chromium,
        timeout=200,
    )
    assert screenshot.stat().st_size > 10_000
    code, log = serve.terminate()
    assert code == 0, log
