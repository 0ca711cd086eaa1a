"""The Redis broker in Sentinel mode (cpp/broker/sentinel_discovery.*): it finds the master
through any reachable Sentinel, confirms it, and follows a failover (its subscriptions
resume with a gap, its writes go to the new master, and the writes in flight when the
master died are replayed there)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kasagi.testing import SentinelGroup
from broker.helpers import entry, metric, received, until, wait_subscribed

pytestmark = [pytest.mark.ha, pytest.mark.redis, pytest.mark.tsan]


@pytest.fixture
def sentinel_broker(redis_sentinel_group: SentinelGroup) -> Iterator[Any]:
    """Returns ``make(sentinels=None, **options)`` on the group's Sentinels."""
    from kasagi import _core

    group = redis_sentinel_group
    made: list[Any] = []

    def make(sentinels: str | None = None, **options: Any) -> Any:
        sentinels = sentinels or ",".join(n.address for n in group.sentinel_nodes)
        made.append(_core.sentinel_broker(sentinels, group.master_name, **options))
        return made[-1]

    yield make
    for broker in made:
        broker.shutdown()


def test_malformed_sentinel_list_is_rejected() -> None:
    from kasagi import _core

    for bad in ["", "host", "host:", "host:0", "host:x", ":26379", "[::1]26379", "a:1,,b:2"]:
        with pytest.raises(ValueError, match="sentinels"):
            _core.sentinel_broker(bad, "kasagi-master")
    with pytest.raises(ValueError, match="master_name"):
        _core.sentinel_broker("127.0.0.1:26379", "")


def test_discovers_the_master_through_any_reachable_sentinel(
    redis_sentinel_group: SentinelGroup, sentinel_broker: Any
) -> None:
    group = redis_sentinel_group
    # A dead address first: the other Sentinels answer.
    addresses = "127.0.0.1:1," + ",".join(n.address for n in group.sentinel_nodes)
    broker = sentinel_broker(addresses, wait_replicas=1)
    assert broker.claim("r", "tok", 10_000)[0] == "ok"
    assert broker.append("r", "tok", entry(1), b"m1") == "ok"  # WAIT 1 confirmed it
    master = group.master()
    assert master.call("GET", "room:{r}:owner") == "tok"
    for replica in group.replica_nodes():
        assert replica.call("XLEN", "room:{r}:ops") == 1


def test_unknown_master_name_fails_with_unavailable(
    redis_sentinel_group: SentinelGroup,
) -> None:
    from kasagi import _core

    sentinels = ",".join(n.address for n in redis_sentinel_group.sentinel_nodes)
    broker = _core.sentinel_broker(sentinels, "no-such-master", command_timeout=0.5)
    try:
        # Commands wait for the first connection (5 s), which never comes.
        assert broker.claim("r", "tok", 1000)[0] == "unavailable"
    finally:
        broker.shutdown()


def test_follows_a_failover(redis_sentinel_group: SentinelGroup, sentinel_broker: Any) -> None:
    group = redis_sentinel_group
    broker = sentinel_broker(wait_replicas=1)
    other = sentinel_broker()
    sub = other.subscribe("r")
    wait_subscribed(broker, "r", sub)
    assert broker.claim("r", "tok", 30_000)[0] == "ok"
    assert broker.append("r", "tok", entry(1), b"m1") == "ok"
    assert received(sub, 1) == [b"m1"]

    failover = group.failover()
    new_master = group.node_at(failover.new_master)
    assert new_master is not None
    # The subscriber resumes on the new master and is told that it may have missed messages.
    assert sub.get(15) == "gap"

    # The broker writes to the new master (once a replica follows it: WAIT 1), where the
    # ACKed entry is.
    def appended() -> bool:
        return bool(broker.append("r", "tok", entry(2), b"m2") == "ok")

    until(appended, 20, "an append on the new master")
    assert new_master.call("XLEN", "room:{r}:ops") >= 2
    wait_subscribed(broker, "r", sub)
    broker.publish("r", b"after")
    assert received(sub, 1) == [b"after"]


def test_follows_switch_master_without_polling(
    redis_sentinel_group: SentinelGroup, sentinel_broker: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    group = redis_sentinel_group
    # Polling and probing every 30 s: only +switch-master can tell this broker in time.
    slow = {"probe_interval": 30.0, "probe_timeout": 60.0}
    listener = sentinel_broker(**slow)
    sub = listener.subscribe("r")
    writer = sentinel_broker()
    wait_subscribed(writer, "r", sub)

    failover = group.failover()
    # The demoted master keeps its client connections: the listener learns of the switch
    # from the Sentinels' +switch-master, moves, and reports the gap.
    assert sub.get(10) == "gap"
    new_master = group.node_at(failover.new_master)
    assert new_master is not None
    wait_subscribed(writer, "r", sub)
    assert new_master.call("PUBSUB", "CHANNELS", "room:*") == ["room:{r}:channel"]
    assert f"a Sentinel announced {failover.new_master} as the master" in capfd.readouterr().err


def test_writes_in_flight_at_a_master_kill_complete_on_the_new_master(
    redis_sentinel_group: SentinelGroup, sentinel_broker: Any
) -> None:
    group = redis_sentinel_group
    # A window well above this group's failover (down-after 1 s plus the election), and a
    # WAIT long enough for the remaining replica to follow the new master (5 s was not, once,
    # on a 2-core machine busy compiling: the first replayed write came back unconfirmed).
    broker = sentinel_broker(wait_replicas=1, wait_timeout=20.0, replay_timeout=20.0)
    assert broker.claim("r", "tok", 60_000)[0] == "ok"
    assert broker.append("r", "tok", entry(1), b"m1") == "ok"

    # The master freezes: the next appends are written to it and never answered. Then it
    # is killed, and the Sentinels promote a replica.
    old = group.master()
    old.pause()
    results: dict[int, str] = {}

    def append(version: int) -> None:
        results[version] = broker.append("r", "tok", entry(version), b"m", timeout=60.0)

    threads = []
    for version in (2, 3, 4):
        threads.append(threading.Thread(target=append, args=(version,)))
        threads[-1].start()
        time.sleep(0.05)  # in this order
    time.sleep(0.2)
    failover = group.kill_master()
    for thread in threads:
        thread.join(60.0)

    # They completed on the new master, where the ACKed entry is too, each once.
    assert results == {2: "ok", 3: "ok", 4: "ok"}
    assert [e["version"] for e in broker.load("r")["ops"]] == [1, 2, 3, 4]
    new_master = group.node_at(failover.new_master)
    assert new_master is not None and new_master.call("XLEN", "room:{r}:ops") == 4
    assert metric(broker, "kasagi_redis_replayed_total") >= 3
