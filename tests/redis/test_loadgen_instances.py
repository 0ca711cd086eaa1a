"""kasagi-loadgen with several --port: the members of every room are spread over instances
that share rooms through Redis (the mode behind bench/relay.py). A smoke test of the tool:
it checks counts and shapes, never timings.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kasagi.testing import RedisServer

pytestmark = pytest.mark.redis


def installed_loadgen() -> Path | None:
    """kasagi/bin/kasagi-loadgen of the installed package; None in builds without the tools
    (the sanitizer builds)."""
    import kasagi

    for folder in kasagi.__path__:
        path = Path(folder) / "bin" / "kasagi-loadgen"
        if path.is_file():
            return path
    return None


def test_clients_of_each_room_are_spread_over_the_instances(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    loadgen = installed_loadgen()
    if loadgen is None:
        pytest.skip("this build has no kasagi-loadgen")
    instances = kasagi_instances(*redis_server.kasagi_args(), "--tick-rate", "20",
                                 "--max-connections-per-ip", "0", "--join-rate-per-ip", "0",
                                 count=2)
    cmd = [str(loadgen), "--rooms", "3", "--clients-per-room", "4", "--rate", "10",
           "--duration", "2", "--warmup", "1"]
    for instance in instances:
        cmd += ["--port", str(instance.port), "--server-pid", str(instance.pid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])

    assert result["clients_joined"] == result["clients"] == 12
    assert result["ports"] == [i.port for i in instances]
    per_port = result["per_port"]
    assert [p["port"] for p in per_port] == result["ports"]
    assert [(p["clients"], p["clients_joined"]) for p in per_port] == [(6, 6), (6, 6)]
    # Every client got deltas, on the authority's instance and on the relaying one alike.
    assert result["clients_without_deltas"] == 0, done.stdout
    assert all(p["deliveries"] > 0 for p in per_port)
    assert sum(p["deliveries"] for p in per_port) == result["deliveries"]
    assert result["errors"] == 0 and result["disconnects"] == 0, done.stdout

    latency = result["latency_ms"]
    assert latency["samples"] > 0
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert len(result["server_cpu_seconds_each"]) == 2
    assert result["server_cpu_seconds"] == pytest.approx(sum(result["server_cpu_seconds_each"]))
