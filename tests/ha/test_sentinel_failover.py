"""Kasagi instances on a Sentinel group (`kasagi serve --sentinel ... --durability
replicated`) under load while the Redis master fails: no ACKed update is lost, the writes in
flight at the failure are replayed on the new master, and the sync pause the clients saw is
reported next to Redis's own failover time.

Each test writes what it measured to artifacts/ (the scenario report plus the failover)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kasagi.testing import Failover, SentinelGroup, run_scenario

pytestmark = [pytest.mark.ha, pytest.mark.redis]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# A short lease so that rooms whose authority stalled on Redis move quickly; replicated
# durability: an ACK waits until a replica has the delta (WAIT 1).
ARGS = ("--durability", "replicated", "--lease-ttl", "1.5", "--tick-rate", "20")


def record(name: str, report: Any, failover: Failover | None) -> None:
    data = report.as_dict()
    data["redis_failover_s"] = failover.seconds if failover else None
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    print(report.summary())
    if failover is not None:
        print(f"redis failover {failover.seconds:.2f} s ({failover.old_master} -> "
              f"{failover.new_master}); longest sync pause seen by clients "
              f"{report.unavailability_s:.2f} s")


def assert_followed(instances: list[Any], failover: Failover) -> None:
    """Every instance moved its broker to the new master (redis.md, "Sentinel")."""
    for instance in instances:
        assert f"reconnected to {failover.new_master}" in instance.log_text(), (
            instance.log_tail(20)
        )


def metric_total(instances: list[Any], name: str) -> float:
    """The sum of one counter over the instances' /metrics."""
    return sum(instance.metric(name) for instance in instances)


def assert_no_acked_update_lost(report: Any) -> None:
    assert report.converged, report.summary()
    assert report.acked_lost == 0, report.summary()
    assert report.versions_backwards == 0, report.summary()
    assert report.updates_acked > 0, report.summary()
    assert report.recovery_s is not None, report.summary()  # every client wrote again


def test_master_sigkill_under_load(
    redis_sentinel_group: SentinelGroup, kasagi_instances: Any
) -> None:
    group = redis_sentinel_group
    instances = kasagi_instances(*group.kasagi_args(), *ARGS, count=2)
    failovers: list[Failover] = []

    def kill_master(load: Any) -> None:
        # Frozen for a moment first, so that writes are in flight when it dies.
        group.master().pause()
        time.sleep(0.3)
        failovers.append(group.kill_master())

    # Clients wait long enough for an ACK to outlast the failover.
    report = asyncio.run(
        run_scenario([i.url for i in instances], kill_master, clients=8, rooms=2, rate=10,
                     before=1.5, after=4.0, convergence_timeout=20.0, request_timeout=8.0)
    )
    record("sentinel_master_killed", report, failovers[0] if failovers else None)
    assert_no_acked_update_lost(report)
    assert_followed(instances, failovers[0])
    # The writes in flight at the kill were replayed on the new master (where the rooms'
    # leases may have expired meanwhile: then they take them again and repair their logs).
    assert metric_total(instances, "kasagi_redis_replayed_total") >= 1


def test_old_master_paused_then_resumed(
    redis_sentinel_group: SentinelGroup, kasagi_instances: Any
) -> None:
    group = redis_sentinel_group
    instances = kasagi_instances(*group.kasagi_args(), *ARGS, count=2)
    failovers: list[Failover] = []

    def pause_master(load: Any) -> None:
        # The instances' connections stay open on the stuck master: what they sent it
        # meanwhile runs when it resumes, still a master for a while (split brain).
        old = group.master()
        started = time.monotonic()
        old.pause()
        try:
            failovers.append(group.wait_new_master(old.address, started))
        finally:
            old.resume()

    report = asyncio.run(
        run_scenario([i.url for i in instances], pause_master, clients=8, rooms=2, rate=10,
                     before=1.5, after=4.0, convergence_timeout=20.0)
    )
    record("sentinel_master_paused", report, failovers[0] if failovers else None)
    assert_no_acked_update_lost(report)
    assert_followed(instances, failovers[0])
