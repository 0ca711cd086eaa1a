"""The examples run and check themselves: each one must exit 0 and say that it succeeded.

They run as users run them: a separate Python process (this interpreter, importing the same
kasagi package), against an embedded server, against ``python -m kasagi serve``, and (the
multi-instance example) against instances sharing Redis behind HAProxy.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import kasagi
from kasagi.testing import child_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs ``examples/<script> *args`` to completion; returns it with its text output."""
    env = child_env()  # the child imports the kasagi these tests import
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_converged(result: subprocess.CompletedProcess[str], rooms: int) -> None:
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    assert lines and lines[-1] == "converged", output
    for room in range(rooms):  # a status line per room, once a second
        assert any(line.startswith("[") and f"arena-{room} " in line for line in lines), output
    assert result.stderr == "", output


def test_arena_bots_with_an_embedded_server() -> None:
    result = run_example("arena/bots.py", "--seconds", "2", "--bots", "4", "--rooms", "2")
    assert_converged(result, rooms=2)


def test_arena_bots_against_kasagi_serve(kasagi_instances) -> None:
    # python -m kasagi serve --port <free> --app .../app.py:Arena, /healthz answered 200
    (serve,) = kasagi_instances("--app", f"{EXAMPLES / 'arena' / 'app.py'}:Arena")
    result = run_example(
        "arena/bots.py", "--url", serve.url, "--seconds", "2", "--bots", "4", "--rooms", "2",
        "--encoding", "json",
    )
    assert_converged(result, rooms=2)
    code, log = serve.terminate()  # SIGTERM: drains, then exits 0
    assert code == 0, log


@pytest.mark.redis
@pytest.mark.parametrize("balance", ["room", "roundrobin"])
def test_multi_instance_behind_haproxy(balance: str) -> None:
    """Redis, three ``kasagi serve --redis`` instances and HAProxy: the bots converge with
    nothing ACKed lost in both modes; hashing on the room keeps each room on one instance,
    round robin spreads a room's clients (6 connections over 3 instances: 2 each, so each
    room of 3 clients reaches at least 2)."""
    result = run_example(
        "multi_instance/run.py", "--balance", balance, "--seconds", "3", "--rooms", "2",
        "--clients", "6", timeout=100,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    assert "ACKed updates lost: 0" in result.stdout, output
    last = result.stdout.splitlines()[-1]
    if balance == "room":
        assert last == "OK: converged, 0 ACKed updates lost, every room on one instance", output
    else:
        spread = re.fullmatch(r"OK: converged, 0 ACKed updates lost, rooms on (\d) to (\d) "
                              r"instances", last)
        assert spread and int(spread[1]) >= 2, output


def test_launch_production_reads_toml_and_environment_and_drains_on_sigterm(tmp_path: Path) -> None:
    import asyncio
    import re
    import signal
    import time

    settings = tmp_path / "kasagi.toml"
    settings.write_text('host = "127.0.0.1"\nport = 0\ntick_rate = 10\ndrain_timeout = 3\n')
    env = child_env()
    env.update(KASAGI_CONFIG=str(settings), KASAGI_TICK_RATE="25")  # the environment wins
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "launch_production.py"), "--status-every", "0.2"],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "ready:" in line:
                break
        match = re.search(r"ready: (ws://\S+) \(kasagi \S+, tick_rate 25 Hz", "".join(lines))
        assert match, "".join(lines)

        async def play() -> tuple[int | None, dict]:
            async with kasagi.AsyncClient() as client:
                await client.connect(match.group(1))
                room = await client.join("arena-1", name="ann")
                await client.update("arena-1", {"x": 1.0}, ack=True)
                state = dict(room.state)
                await asyncio.sleep(0.6)  # a few status lines, with the player counted
                process.send_signal(signal.SIGTERM)
                lost = await client.wait_for(lambda: client.disconnects or None, timeout=10)
                return lost[0][0], state

        code, state = asyncio.run(play())
        assert code == 1001  # going away: the drain told the client to reconnect elsewhere
        assert any(p.get("name") == "ann" for p in state["players"].values())
        assert "npcs" in state  # the arena's room type is registered
        assert process.wait(timeout=15) == 0
        rest = process.stderr.read()
        assert "status: 1 connections, 1 rooms, 1 members" in "".join(lines) + rest
        assert "SIGTERM: draining" in rest and "stopped" in rest
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()

    env["KASAGI_PORT"] = "not-a-port"
    bad = subprocess.run([sys.executable, str(EXAMPLES / "launch_production.py")],
                         capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 2 and "KASAGI_PORT" in bad.stderr
