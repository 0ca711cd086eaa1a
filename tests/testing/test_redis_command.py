"""``kasagi redis up|status|failover-test|down|clean`` as a user runs it: separate
processes, the state in a directory, the servers outliving each command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kasagi.testing import pid_alive


def pids_in(status: str) -> list[int]:
    """The PID column of a status table."""
    return [int(m) for m in re.findall(r"^\S+\s+\d+\s+(\d+)\s", status, re.MULTILINE)]


def test_standalone_up_status_down_up_clean(run_kasagi: Any, tmp_path: Path) -> None:
    state = tmp_path / "redis-state"

    def kasagi_redis(*args: str) -> str:
        done = run_kasagi("redis", *args, "--dir", str(state))
        assert done.returncode == 0, done.stderr
        return str(done.stdout)

    up = kasagi_redis("up")
    assert "standalone topology" in up and re.search(r"^redis\s+\d+\s+\d+\s+master", up, re.M)
    assert "kasagi serve --redis redis://127.0.0.1:" in up
    pids = pids_in(kasagi_redis("status"))
    assert len(pids) == 1 and pid_alive(pids[0])  # outlives the command

    again = run_kasagi("redis", "up", "--dir", str(state))
    assert again.returncode == 1 and "already up" in again.stderr
    other = run_kasagi("redis", "up", "--cluster", "--dir", str(state))
    assert other.returncode == 1 and "holds a standalone topology" in other.stderr
    no_failover = run_kasagi("redis", "failover-test", "--dir", str(state))
    assert no_failover.returncode == 1
    assert "needs a Sentinel group or a Cluster" in no_failover.stderr

    assert "stopped 1 node(s)" in kasagi_redis("down")
    assert not pid_alive(pids[0])
    assert re.search(r"^redis\s+\d+\s+-\s+down", kasagi_redis("status"), re.M)

    restarted = pids_in(kasagi_redis("up"))  # the same node again, on the same port
    assert restarted and pid_alive(restarted[0])
    assert "removed" in kasagi_redis("clean")
    assert not state.exists() and not pid_alive(restarted[0])

    missing = run_kasagi("redis", "status", "--dir", str(state))
    assert missing.returncode == 1 and "run `kasagi redis up` first" in missing.stderr


@pytest.mark.ha
@pytest.mark.slow
def test_sentinel_up_failover_test_clean(run_kasagi: Any, tmp_path: Path) -> None:
    state = tmp_path / "sentinel-state"
    up = run_kasagi("redis", "up", "--sentinel", "--down-after", "1000", "--dir", str(state))
    try:
        assert up.returncode == 0, up.stderr
        assert len(pids_in(up.stdout)) == 6
        assert re.search(r"^master\s+\d+\s+\d+\s+master\s+2 replicas", up.stdout, re.M)
        assert "--master-name kasagi-master" in up.stdout

        failover = run_kasagi("redis", "failover-test", "--dir", str(state))
        assert failover.returncode == 0, failover.stderr
        took = re.search(r"new master 127.0.0.1:\d+ after ([\d.]+) s", failover.stdout)
        assert took is not None, failover.stdout
        seconds = float(took.group(1))
        assert 1.0 <= seconds < 20
        assert "master restarted: now a replica" in failover.stdout

        status = run_kasagi("redis", "status", "--dir", str(state)).stdout
        assert re.search(r"^master\s+\d+\s+\d+\s+slave", status, re.M)
        pids = pids_in(status)
    finally:
        clean = run_kasagi("redis", "clean", "--dir", str(state))
    assert clean.returncode == 0, clean.stderr
    assert len(pids) == 6 and not any(pid_alive(p) for p in pids)
    assert not state.exists()
