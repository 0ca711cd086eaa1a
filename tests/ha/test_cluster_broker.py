"""The Redis broker in Cluster mode (cpp/broker/cluster_broker.*): rooms routed to the
master of their slot, spread over every shard; a killed master's rooms resume on the
promoted replica; a room whose slot migrates to another master keeps working."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker.helpers import entry, received, until, wait_subscribed
from kasagi.testing import RedisCluster, RedisNode

pytestmark = [pytest.mark.ha, pytest.mark.redis, pytest.mark.tsan]


@pytest.fixture
def cluster_broker(redis_cluster: RedisCluster) -> Iterator[Any]:
    """Returns ``make(**options)`` on the cluster's nodes."""
    from kasagi import _core

    nodes = ",".join(n.address for n in redis_cluster.nodes.values())
    made: list[Any] = []

    def make(**options: Any) -> Any:
        made.append(_core.cluster_broker(nodes, **options))
        return made[-1]

    yield make
    for broker in made:
        broker.shutdown()


def owner_of(cluster: RedisCluster, room: str) -> RedisNode:
    """The master that serves the room's slot."""
    slot = int(cluster.master_nodes()[0].call("CLUSTER", "KEYSLOT", f"room:{{{room}}}:owner"))
    for start, end, master, *_ in cluster.master_nodes()[0].call("CLUSTER", "SLOTS"):
        if int(start) <= slot <= int(end):
            return cluster.node_at(f"{master[0]}:{master[1]}")
    raise AssertionError(f"slot {slot} has no master")


def rooms_on_every_master(cluster: RedisCluster) -> dict[str, str]:
    """One room per master: {master address: room}."""
    out: dict[str, str] = {}
    i = 0
    while len(out) < len(cluster.master_nodes()):
        room = f"room-{i}"
        out.setdefault(owner_of(cluster, room).address, room)
        i += 1
    return out


def test_malformed_node_list_is_rejected() -> None:
    from kasagi import _core

    for bad in ["", "host", "host:0", "a:1,,b:2"]:
        with pytest.raises(ValueError, match="cluster"):
            _core.cluster_broker(bad)


def test_rooms_on_every_shard(redis_cluster: RedisCluster, cluster_broker: Any) -> None:
    cluster = redis_cluster
    a, b = cluster_broker(), cluster_broker()
    rooms = rooms_on_every_master(cluster)
    subs = {room: b.subscribe(room) for room in rooms.values()}
    for master, room in rooms.items():
        wait_subscribed(a, room, subs[room])
        assert a.claim(room, "tok", 30_000)[0] == "ok"
        assert a.append(room, "tok", entry(1), b"m1") == "ok"
        assert received(subs[room], 1) == [b"m1"]
        # The room's keys and its (sharded) channel are on its own master.
        node = cluster.node_at(master)
        assert node.call("GET", f"room:{{{room}}}:owner") == "tok"
        assert node.call("PUBSUB", "SHARDCHANNELS", "room:*") == [f"room:{{{room}}}:channel"]
        assert node.call("PUBSUB", "CHANNELS", "room:*") == []  # no classic subscription
        assert b.load(room)["ops"][0]["version"] == 1


def test_killed_master_rooms_resume_on_the_promoted_replica(
    redis_cluster: RedisCluster, cluster_broker: Any
) -> None:
    cluster = redis_cluster
    a, b = cluster_broker(wait_replicas=1), cluster_broker()
    master, room = next(iter(rooms_on_every_master(cluster).items()))
    sub = b.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.claim(room, "tok", 60_000)[0] == "ok"
    assert a.append(room, "tok", entry(1), b"m1") == "ok"  # on a replica too (WAIT 1)
    assert received(sub, 1) == [b"m1"]

    old = cluster.node_at(master)
    failover = cluster.kill_master(old)
    old.restart()  # back as a replica of the promoted one: WAIT 1 can be satisfied again
    assert owner_of(cluster, room).address == failover.new_master

    def appended() -> bool:
        return bool(a.append(room, "tok", entry(2), b"m2") == "ok")

    until(appended, 30, "an append on the promoted replica")
    log = a.load(room)
    assert [e["version"] for e in log["ops"]][:2] == [1, 2]  # the ACKed entry survived
    assert sub.get(15) == "gap"  # its subscription moved
    wait_subscribed(a, room, sub)


def test_room_keeps_working_when_its_slot_migrates(
    redis_cluster: RedisCluster, cluster_broker: Any
) -> None:
    cluster = redis_cluster
    a, b = cluster_broker(), cluster_broker()
    rooms = rooms_on_every_master(cluster)
    (source_address, room), (target_address, _) = list(rooms.items())[:2]
    sub = b.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.claim(room, "tok", 60_000)[0] == "ok"
    assert a.append(room, "tok", entry(1), b"m1") == "ok"
    assert received(sub, 1) == [b"m1"]

    migrate_slot(cluster, f"room:{{{room}}}:owner", cluster.node_at(source_address),
                 cluster.node_at(target_address))
    assert owner_of(cluster, room).address == target_address

    # The server dropped the subscription (sunsubscribe): it moves to the new master, and
    # the subscriber is told that it may have missed messages.
    assert sub.get(10) == "gap"
    channel = f"room:{{{room}}}:channel"
    assert cluster.node_at(target_address).call("PUBSUB", "SHARDCHANNELS", channel) == [channel]

    def appended() -> bool:
        return bool(a.append(room, "tok", entry(2), b"m2") == "ok")

    until(appended, 15, "an append after the migration")
    assert cluster.node_at(target_address).call("XLEN", f"room:{{{room}}}:ops") == 2
    assert received(sub, 1) == [b"m2"]


def migrate_slot(cluster: RedisCluster, key: str, source: RedisNode, target: RedisNode) -> None:
    """Moves the slot of ``key`` from ``source`` to ``target`` as redis-cli --cluster
    reshard does: IMPORTING/MIGRATING, MIGRATE of its keys, then SETSLOT NODE everywhere."""
    slot = int(source.call("CLUSTER", "KEYSLOT", key))
    source_id = source.call("CLUSTER", "MYID")
    target_id = target.call("CLUSTER", "MYID")
    target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while keys := source.call("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    target.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    source.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    for node in cluster.master_nodes():
        if node not in (source, target):
            node.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
