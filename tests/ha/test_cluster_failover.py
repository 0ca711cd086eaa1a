"""Kasagi instances on a Redis Cluster (`kasagi serve --cluster ... --durability
replicated`) under load: rooms over every shard; a master SIGKILLed (and restarted, to be a
replica again) or a room's slot migrated to another master: no ACKed update is lost, and
while the migration is under way the room's commands follow ASK to the importing node, so
that no update fails and no log needs repairing.

Each test writes what it measured to artifacts/ (the scenario report plus the failover)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kasagi.testing import Failover, RedisCluster, run_scenario

from .test_cluster_broker import finish_migration, move_keys, owner_of, start_migration
from .test_sentinel_failover import ARGS, assert_no_acked_update_lost, metric_total, record

pytestmark = [pytest.mark.ha, pytest.mark.redis]

ROOMS = 6


def test_master_sigkill_under_load(redis_cluster: RedisCluster, kasagi_instances: Any) -> None:
    cluster = redis_cluster
    rooms = [f"scenario-{i}" for i in range(ROOMS)]
    owners = {owner_of(cluster, room).address for room in rooms}
    assert len(owners) == len(cluster.master_nodes())  # the rooms are on every shard
    victim = owner_of(cluster, rooms[0])
    instances = kasagi_instances(*cluster.kasagi_args(), *ARGS, count=2)
    failovers: list[Failover] = []

    def kill_master(load: Any) -> None:
        failovers.append(cluster.kill_master(victim))
        victim.restart()  # a replica again: the promoted master's WAIT 1 can succeed

    report = asyncio.run(
        run_scenario([i.url for i in instances], kill_master, clients=12, rooms=ROOMS,
                     rate=5, before=1.5, after=5.0, convergence_timeout=25.0)
    )
    record("cluster_master_killed", report, failovers[0] if failovers else None)
    assert_no_acked_update_lost(report)
    assert owner_of(cluster, rooms[0]).address == failovers[0].new_master


def test_slot_migration_under_load(redis_cluster: RedisCluster, kasagi_instances: Any) -> None:
    cluster = redis_cluster
    room = "scenario-0"
    source = owner_of(cluster, room)
    target = next(m for m in cluster.master_nodes() if m is not source)
    instances = kasagi_instances(*cluster.kasagi_args(), *ARGS, count=2)

    def migrate(load: Any) -> None:
        # As a reshard of many keys would: the slot stays half-migrated for a while, its
        # keys on the target while the source still owns it (the source answers ASK).
        slot = start_migration(f"room:{{{room}}}:owner", source, target)
        move_keys(slot, source, target)
        time.sleep(1.5)
        finish_migration(cluster, slot, source, target)

    report = asyncio.run(
        run_scenario([i.url for i in instances], migrate, clients=6, rooms=2, rate=10,
                     before=1.5, after=3.0, convergence_timeout=20.0)
    )
    record("cluster_slot_migrated", report, None)
    assert_no_acked_update_lost(report)
    assert owner_of(cluster, room) is target
    assert int(target.call("XLEN", f"room:{{{room}}}:ops")) > 0
    # Followed, not failed: every update ACKed, no room had to repair its log.
    assert report.updates_failed == 0, report.summary()
    assert metric_total(instances, "kasagi_redis_redirects_total") > 0
    assert metric_total(instances, "kasagi_log_repairs_total") == 0
