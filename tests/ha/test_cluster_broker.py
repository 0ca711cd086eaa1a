"""The Redis broker in Cluster mode (cpp/broker/cluster_broker.*): rooms routed to the
master of their slot, spread over every shard; a killed master's rooms resume on the
promoted replica; a room whose slot migrates to another master keeps working, its commands
following ASK and MOVED while the migration is under way; a slot that moves away and back
is subscribed again; a stuck node does not hold the slot map up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker.helpers import entry, metric, received, snapshot, until, wait_subscribed
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


def test_commands_follow_ask_and_moved_during_a_migration(
    redis_cluster: RedisCluster, cluster_broker: Any
) -> None:
    cluster = redis_cluster
    # No periodic map refresh within the test: only the redirections route `a` elsewhere.
    a, b = cluster_broker(probe_interval=60.0), cluster_broker()
    rooms = rooms_on_every_master(cluster)
    (source_address, room), (target_address, _) = list(rooms.items())[:2]
    source, target = cluster.node_at(source_address), cluster.node_at(target_address)
    sub = b.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.claim(room, "tok", 60_000)[0] == "ok"
    assert a.save_snapshot(room, "tok", snapshot(0)) == "ok"  # the room has all its keys
    assert a.append(room, "tok", entry(1), b"m1") == "ok"
    assert received(sub, 1) == [b"m1"]
    version = 1

    def work() -> None:
        """Every kind of command of the room, each of which must succeed."""
        nonlocal version
        version += 1
        assert a.claim(room, "tok", 60_000)[0] == "ok"
        assert a.append(room, "tok", entry(version), b"m%d" % version) == "ok"
        assert a.save_snapshot(room, "tok", snapshot(version - 1)) == "ok"
        assert a.load(room)["status"] == "ok"

    slot = start_migration(f"room:{{{room}}}:owner", source, target)
    work()  # migrating, its keys still on the source: served there
    assert received(sub, 1) == [b"m2"]
    move_keys(slot, source, target)
    for _ in range(3):
        work()  # the source answers ASK: each command goes to the target, after ASKING
    asks = metric(a, "kasagi_redis_redirects_total")
    assert asks >= 3 * 4
    finish_migration(cluster, slot, source, target)
    # What was written during the migration went to the target only.
    assert target.call("XLEN", f"room:{{{room}}}:ops") == version
    assert source.call("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    work()  # `a` still routes the room to the source, which answers MOVED
    assert metric(a, "kasagi_redis_redirects_total") > asks
    work()  # the map knows: no more redirections
    ops = target.call("XRANGE", f"room:{{{room}}}:ops", "-", "+")
    assert [int(dict(zip(f[::2], f[1::2], strict=True))["version"]) for _, f in ops] == list(
        range(1, version + 1))  # each once, in order
    # The subscription moved with the slot (the source dropped it): a gap, then messages.
    until(lambda: sub.get(0.5) == "gap", 10, "the subscription moved")
    wait_subscribed(a, room, sub)


def test_slot_that_moves_away_and_back_is_subscribed_again(
    redis_cluster: RedisCluster, cluster_broker: Any
) -> None:
    cluster = redis_cluster
    a, b = cluster_broker(), cluster_broker(probe_interval=0.3)
    rooms = rooms_on_every_master(cluster)
    (source_address, room), (target_address, _) = list(rooms.items())[:2]
    source, target = cluster.node_at(source_address), cluster.node_at(target_address)
    sub = b.subscribe(room)
    wait_subscribed(a, room, sub)
    key = f"room:{{{room}}}:owner"
    # No node answers CLUSTER SLOTS for a while: `b` reads no map between the two moves.
    for node in cluster.nodes.values():
        node.call("ACL", "SETUSER", "default", "-cluster|slots")
    try:
        migrate_slot(cluster, key, source, target)  # the source drops the subscription
        migrate_slot(cluster, key, target, source)
        time.sleep(1.0)  # refreshes fail meanwhile
    finally:
        for node in cluster.nodes.values():
            node.call("ACL", "SETUSER", "default", "+cluster|slots")
    # The next map has the room where it was subscribed: it is subscribed there again.
    assert sub.get(5) == "gap"
    wait_subscribed(a, room, sub)


def test_a_stuck_node_does_not_hold_up_the_slot_map(redis_cluster: RedisCluster) -> None:
    from kasagi import _core

    cluster = redis_cluster
    stuck, *others = cluster.master_nodes()
    room = next(r for r in rooms_on_every_master(cluster).values()
                if owner_of(cluster, r) is not stuck)
    seeds = ",".join(n.address for n in [stuck, *others])  # the stuck one first
    stuck.pause()  # briefly: well within the cluster's node timeout (no failover)
    broker = None
    try:
        start = time.monotonic()
        broker = _core.cluster_broker(seeds, command_timeout=5.0)
        assert broker.claim(room, "tok", 10_000)[0] == "ok"
        took = time.monotonic() - start
    finally:
        stuck.resume()
        if broker is not None:
            broker.shutdown()
    # Asked one at a time, the stuck node would have cost command_timeout (5 s).
    assert took < 2.0


def start_migration(key: str, source: RedisNode, target: RedisNode) -> int:
    """Marks the slot of ``key`` IMPORTING on ``target`` and MIGRATING on ``source``."""
    slot = int(source.call("CLUSTER", "KEYSLOT", key))
    target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.call("CLUSTER", "MYID"))
    source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.call("CLUSTER", "MYID"))
    return slot


def move_keys(slot: int, source: RedisNode, target: RedisNode) -> None:
    """MIGRATEs every key of ``slot`` from ``source`` to ``target``."""
    while keys := source.call("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)


def finish_migration(cluster: RedisCluster, slot: int, source: RedisNode,
                     target: RedisNode) -> None:
    """Gives ``slot`` to ``target``: SETSLOT NODE on it, the source, then the others."""
    target_id = target.call("CLUSTER", "MYID")
    target.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    source.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    for node in cluster.master_nodes():
        if node not in (source, target):
            node.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)


def migrate_slot(cluster: RedisCluster, key: str, source: RedisNode, target: RedisNode) -> None:
    """Moves the slot of ``key`` from ``source`` to ``target`` as redis-cli --cluster
    reshard does: IMPORTING/MIGRATING, MIGRATE of its keys, then SETSLOT NODE everywhere."""
    slot = start_migration(key, source, target)
    move_keys(slot, source, target)
    finish_migration(cluster, slot, source, target)
