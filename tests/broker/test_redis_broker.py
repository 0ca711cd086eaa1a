"""What only the Redis broker has: its URL, its key layout in Redis, and its behaviour when
Redis goes away, comes back, stops answering or stops delivering (docs/redis.md)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest

from .helpers import Make, entry, metric, received, snapshot, until, wait_subscribed
from .proxy import Proxy
from .redis_process import RedisProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.tsan]
Start = Callable[..., RedisProcess]  # the redis_factory fixture


def test_malformed_url_is_rejected() -> None:
    from kasagi import _core

    for url in ["http://localhost", "redis://", "redis://h:port", "redis://h:0", "redis://h/x",
                "redis://[::1", "redis://:%zz@h"]:
        with pytest.raises(ValueError, match="invalid Redis URL"):
            _core.redis_broker(url)


def test_key_layout(redis_broker: Make, redis_server: RedisProcess, room: str) -> None:
    broker = redis_broker(redis_server.url, key_prefix="game1:")
    sub = broker.subscribe(room)
    wait_subscribed(broker, room, sub)
    assert broker.claim(room, "tok", 10_000)[0] == "ok"
    assert broker.append(room, "tok", entry(1), b"m1") == "ok"
    assert broker.save_snapshot(room, "tok", snapshot(1)) == "ok"
    key = f"game1:room:{{{room}}}:"
    with redis_server.client() as r:
        assert sorted(r.call("KEYS", "*")) == [
            (key + k).encode() for k in ("ops", "owner", "snapshot")
        ]
        assert r.call("GET", key + "owner") == b"tok"
        assert 0 < r.call("PTTL", key + "owner") <= 10_000
        fields = r.call("HGETALL", key + "snapshot")
        assert dict(zip(fields[::2], fields[1::2])) == {
            b"data": snapshot(1)["data"], b"version": b"1", b"tick": b"10", b"epoch": b"e1",
            b"ts": b"1700000000001", b"sessions": snapshot(1)["sessions"],
        }
        assert r.call("TYPE", key + "ops") == b"stream"
        [[_, fields]] = r.call("XRANGE", key + "ops", "-", "+")
        assert dict(zip(fields[::2], fields[1::2])) == {
            b"data": entry(1)["data"], b"version": b"1", b"base": b"0", b"tick": b"10",
            b"epoch": b"e1", b"sessions": entry(1)["sessions"],
        }
        channels = sorted(r.call("PUBSUB", "CHANNELS", "*"))
        assert channels[0].startswith(b"game1:kasagi:probe:")
        assert channels[1:] == [(key + "channel").encode()]


def test_password_and_database(redis_broker: Make, redis_factory: Start, room: str) -> None:
    server = redis_factory("--requirepass", "s3cret@x")
    broker = redis_broker(f"redis://:s3cret%40x@127.0.0.1:{server.port}/2")
    assert broker.claim(room, "A", 10_000) == ("ok", "A")
    with server.client() as r:
        r.call("AUTH", "s3cret@x")
        r.call("SELECT", "2")
        assert r.call("GET", f"room:{{{room}}}:owner") == b"A"
        r.call("ACL", "SETUSER", "kasagi", "on", ">pw:1", "~*", "&*", "+@all")
    # An ACL user.
    user = redis_broker(f"redis://kasagi:pw%3A1@127.0.0.1:{server.port}/2")
    assert user.claim(room, "B", 10_000) == ("fenced", "A")


@pytest.mark.slow
def test_wrong_password(redis_broker: Make, redis_factory: Start, room: str) -> None:
    server = redis_factory("--requirepass", "s3cret")
    broker = redis_broker(f"redis://:nope@127.0.0.1:{server.port}")
    assert broker.claim(room, "B", 10_000) == ("unavailable", "")


def test_commands_wait_for_the_first_connection(redis_broker: Make, redis_factory: Start,
                                                room: str) -> None:
    port = free_port()
    broker = redis_broker(f"redis://127.0.0.1:{port}")
    # Redis starts a moment after the broker: a claim made meanwhile waits for it.
    starter = threading.Timer(0.5, redis_factory, kwargs={"port": port})
    starter.start()
    start = time.monotonic()
    assert broker.claim(room, "A", 10_000) == ("ok", "A")
    assert time.monotonic() - start < 4
    # The broker may connect before redis_factory has seen the server answer: wait for it,
    # so that the server is in the fixture's list when the teardown kills them.
    starter.join()


@pytest.mark.slow
def test_commands_fail_when_redis_never_comes(redis_broker: Make, room: str) -> None:
    broker = redis_broker(f"redis://127.0.0.1:{free_port()}")
    start = time.monotonic()
    assert broker.claim(room, "A", 10_000) == ("unavailable", "")
    assert 4 < time.monotonic() - start < 7  # the first-connection wait (5 s)
    # After that window, commands fail at once.
    start = time.monotonic()
    assert broker.claim(room, "A", 10_000) == ("unavailable", "")
    assert time.monotonic() - start < 0.5


def test_outage_and_return(redis_broker: Make, redis_server: RedisProcess, room: str) -> None:
    a = redis_broker(redis_server.url, replay_timeout=0.5)
    b = redis_broker(redis_server.url)
    sub = b.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.claim(room, "A", 60_000)[0] == "ok"
    redis_server.kill()
    # Commands wait replay_timeout for the connection to come back...
    start = time.monotonic()
    assert a.append(room, "A", entry(1), b"lost") == "unavailable"
    assert 0.3 < time.monotonic() - start < 1.5
    # ...then complete unavailable, promptly, while Redis is gone.
    for _ in range(5):
        start = time.monotonic()
        assert a.append(room, "A", entry(1), b"lost") == "unavailable"
        assert a.claim(room, "A", 60_000) == ("unavailable", "")
        assert time.monotonic() - start < 1.0
    redis_server.start()  # same port, empty (nothing was saved)
    until(lambda: a.claim(room, "A", 60_000)[0] == "ok", 5, "commands work again")
    # The subscription is back, and its subscriber was told it may have missed messages.
    assert sub.get(5) == "gap"
    assert a.append(room, "A", entry(1), b"after") == "ok"
    assert received(sub, 1) == [b"after"]
    assert metric(a, "kasagi_redis_reconnects_total") == 1
    assert metric(b, "kasagi_redis_reconnects_total") == 1
    assert metric(b, "kasagi_redis_received_total") >= 1


def test_killed_subscriber_connection_is_reopened(redis_broker: Make, redis_server: RedisProcess,
                                                  room: str) -> None:
    broker = redis_broker(redis_server.url)
    sub = broker.subscribe(room)
    wait_subscribed(broker, room, sub)
    with redis_server.client() as r:
        assert r.call("CLIENT", "KILL", "TYPE", "pubsub") == 1
    assert sub.get(5) == "gap"
    wait_subscribed(broker, room, sub)


def test_probe_detects_a_deaf_subscriber_connection(redis_broker: Make, proxy: Proxy,
                                                    room: str) -> None:
    broker = redis_broker(proxy.url, probe_interval=0.1, probe_timeout=0.5)
    sub = broker.subscribe(room)
    wait_subscribed(broker, room, sub)
    # The connection stays open and subscribed on the server, but delivers nothing.
    assert proxy.deafen_subscribers() == 1
    start = time.monotonic()
    assert sub.get(3) == "gap"
    assert time.monotonic() - start < 1.5
    assert metric(broker, "kasagi_redis_probe_failures_total") == 1
    wait_subscribed(broker, room, sub)


def test_probe_detects_pubsub_on_another_server(redis_broker: Make, redis_factory: Start,
                                                redis_server: RedisProcess) -> None:
    other = redis_factory()
    proxy = Proxy(redis_server.port, subscriber_port=other.port)
    try:
        # Commands reach redis_server, SUBSCRIBE `other`: the probe's PUBLISH reaches nobody.
        broker = redis_broker(proxy.url, probe_interval=0.1)
        until(lambda: metric(broker, "kasagi_redis_probe_failures_total") >= 1, 3,
              "the probe noticed")
    finally:
        proxy.close()


def test_unanswered_commands_time_out(redis_broker: Make, redis_server: RedisProcess,
                                      room: str) -> None:
    broker = redis_broker(redis_server.url, command_timeout=0.3, replay_timeout=0)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    with redis_server.client() as r:
        r.call("CLIENT", "PAUSE", "1500", "ALL")
    start = time.monotonic()
    assert broker.claim(room, "A", 10_000) == ("unavailable", "")
    assert time.monotonic() - start < 1.0
    until(lambda: broker.claim(room, "A", 10_000)[0] == "ok", 5, "commands work again")


def test_timed_out_commands_are_replayed_on_the_next_connection(
    redis_broker: Make, redis_server: RedisProcess, room: str
) -> None:
    broker = redis_broker(redis_server.url, command_timeout=0.3)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    assert broker.append(room, "A", entry(1), b"m1") == "ok"
    with redis_server.client() as r:
        r.call("CLIENT", "PAUSE", "1500", "ALL")
    start = time.monotonic()
    # Cut off after 0.3 s, then sent again once the server answers new connections.
    assert broker.append(room, "A", entry(2), b"m2") == "ok"
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    assert 1.0 < time.monotonic() - start < 5.0
    with redis_server.client() as r:
        assert r.call("XLEN", f"room:{{{room}}}:ops") == 2
    assert metric(broker, "kasagi_redis_replayed_total") >= 1


def test_replayed_append_is_not_written_twice(redis_broker: Make, proxy: Proxy,
                                              redis_server: RedisProcess, room: str) -> None:
    broker = redis_broker(proxy.url)
    assert broker.claim(room, "A", 60_000)[0] == "ok"
    assert broker.append(room, "A", entry(1), b"m1") == "ok"
    # Redis runs the next append, but its reply never comes back: then the connection dies.
    assert proxy.deafen_commands() == 1
    threading.Timer(0.3, proxy.drop_connections).start()
    assert broker.append(room, "A", entry(2), b"m2") == "ok"  # replayed: found in the log
    assert broker.append(room, "A", entry(3), b"m3") == "ok"
    with redis_server.client() as r:
        ops = r.call("XRANGE", f"room:{{{room}}}:ops", "-", "+")
    versions = [int(dict(zip(f[::2], f[1::2], strict=True))[b"version"]) for _, f in ops]
    assert versions == [1, 2, 3]
    assert metric(broker, "kasagi_redis_replayed_total") == 1


def test_append_keeps_the_log_a_chain(redis_broker: Make, room: str,
                                      redis_server: RedisProcess) -> None:
    # Each entry is written only on top of its base: the log stays a chain from the snapshot
    # that a new authority can replay, whatever order the appends arrive in.
    broker = redis_broker(redis_server.url)
    assert broker.claim(room, "A", 60_000)[0] == "ok"
    assert broker.append(room, "A", entry(2), b"m") == "unavailable"  # its base 1 is missing
    for v in (1, 2):
        assert broker.append(room, "A", entry(v), b"m") == "ok"
    assert broker.append(room, "A", entry(2), b"m") == "ok"  # the same again: not written
    assert broker.append(room, "A", entry(4), b"m") == "unavailable"  # 3 did not run
    assert broker.append(room, "A", entry(3), b"m") == "ok"
    assert broker.append(room, "A", entry(5), b"m") == "unavailable"  # a hole, not written
    assert broker.append(room, "A", entry(4), b"m") == "ok"
    assert broker.append(room, "A", entry(5), b"m") == "ok"
    assert broker.append(room, "A", entry(4), b"m") == "ok"  # its replay, found
    # A snapshot newer than the log (a room repairing its log) is a base too, for an entry
    # that says it may follow one (the script reads the snapshot key only then).
    assert broker.save_snapshot(room, "A", snapshot(8)) == "ok"
    assert broker.append(room, "A", dict(entry(7), after_snapshot=True), b"m") == "unavailable"
    nine = dict(entry(9), base=8)
    assert broker.append(room, "A", nine, b"m") == "unavailable"
    assert broker.append(room, "A", dict(nine, after_snapshot=True), b"m") == "ok"
    assert [e["version"] for e in broker.load(room)["ops"]] == [9]  # the others: before 8
    with redis_server.client() as r:
        ops = r.call("XRANGE", f"room:{{{room}}}:ops", "-", "+")
    assert [int(dict(zip(f[::2], f[1::2]))[b"version"]) for _, f in ops] == [1, 2, 3, 4, 5, 9]


def test_unanswered_subscription_renews_the_connections(
    redis_broker: Make, redis_server: RedisProcess, room: str
) -> None:
    # No probe within the test: only the subscriber connection's own timeout can notice.
    broker = redis_broker(redis_server.url, command_timeout=0.5, probe_interval=30.0,
                          probe_timeout=60.0)
    assert broker.claim(room, "A", 10_000)[0] == "ok"  # connected
    redis_server.pause()
    try:
        sub = broker.subscribe(room)  # its SUBSCRIBE goes unanswered
        time.sleep(1.2)
    finally:
        redis_server.resume()
    # The connections were renewed: the subscription is back, with a gap.
    assert sub.get(5) == "gap"
    wait_subscribed(broker, room, sub)
    assert metric(broker, "kasagi_redis_reconnects_total") == 1


def test_commands_in_flight_complete_when_the_connection_drops(redis_broker: Make,
                                                               redis_server: RedisProcess,
                                                               room: str) -> None:
    broker = redis_broker(redis_server.url, replay_timeout=0)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    with redis_server.client() as r:
        r.call("CLIENT", "PAUSE", "5000", "ALL")  # the next command stays unanswered
    threading.Timer(0.3, redis_server.kill).start()
    start = time.monotonic()
    assert broker.claim(room, "A", 10_000) == ("unavailable", "")
    assert time.monotonic() - start < 1.5  # the kill, not command_timeout (2 s)


def test_flushed_scripts_are_loaded_again(redis_broker: Make, redis_server: RedisProcess,
                                          room: str) -> None:
    broker = redis_broker(redis_server.url)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    with redis_server.client() as r:
        r.call("SCRIPT", "FLUSH")
    # NOSCRIPT: the claim did not run; it is sent again once the scripts are loaded again.
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    assert metric(broker, "kasagi_redis_reconnects_total") == 1


def test_replicated_durability_without_a_replica(redis_broker: Make, redis_server: RedisProcess,
                                                 room: str) -> None:
    broker = redis_broker(redis_server.url, wait_replicas=1, wait_timeout=0.2)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    start = time.monotonic()
    assert broker.append(room, "A", entry(1), b"m") == "unavailable"
    assert time.monotonic() - start >= 0.2
    assert broker.append(room, "B", entry(2), b"m") == "fenced"


def test_replicated_durability_with_a_replica(redis_broker: Make, redis_factory: Start,
                                              redis_server: RedisProcess, room: str) -> None:
    replica = redis_factory("--replicaof", "127.0.0.1", str(redis_server.port))
    with replica.client() as r:
        until(lambda: b"master_link_status:up" in r.call("INFO", "replication"), 10,
              "the replica is in sync")
    broker = redis_broker(redis_server.url, wait_replicas=1, wait_timeout=2.0)
    assert broker.claim(room, "A", 10_000)[0] == "ok"
    assert broker.append(room, "A", entry(1), b"m") == "ok"
    with replica.client() as r:
        assert r.call("XLEN", f"room:{{{room}}}:ops") == 1


def test_writes_refused_for_want_of_replicas_wait_for_one(
    redis_broker: Make, redis_factory: Start, room: str
) -> None:
    # A master with min-replicas-to-write 1 and no replica yet (a Sentinel master just
    # promoted, before the others follow it) refuses writes with NOREPLICAS without running
    # them: they wait, in order, and complete once a replica is there.
    master = redis_factory("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
    broker = redis_broker(master.url, replay_timeout=20.0)
    with master.client() as r:
        with pytest.raises(Exception, match="NOREPLICAS"):
            r.call("SET", "k", "v")
    results: dict[str, object] = {}
    claimer = threading.Thread(target=lambda: results.update(
        claim=broker.claim(room, "A", 60_000, timeout=30.0)[0],
        appends=[broker.append(room, "A", entry(v), b"m", timeout=30.0) for v in (1, 2)]))
    claimer.start()
    time.sleep(0.5)  # refused and held a few times by now
    assert not results
    replica = redis_factory("--replicaof", "127.0.0.1", str(master.port))
    claimer.join(30.0)
    assert results == {"claim": "ok", "appends": ["ok", "ok"]}
    with master.client() as r:
        assert r.call("XLEN", f"room:{{{room}}}:ops") == 2
    assert replica.port != master.port


def test_a_held_write_goes_alone_until_the_server_takes_it(
    redis_broker: Make, redis_server: RedisProcess, proxy: Proxy, room: str
) -> None:
    # Writes refused for want of replicas wait; when they are sent again, a replica may
    # attach between two of them, and Redis would take the later ones of a pipeline but not
    # the first. So the first goes alone, and the others once it is taken. Staged with a
    # proxy that lets one command through and holds the rest while the config changes.
    broker = redis_broker(proxy.url, replay_timeout=20.0, probe_interval=60.0)
    assert broker.claim(room, "A", 60_000)[0] == "ok"
    assert broker.append(room, "A", entry(1), b"m") == "ok"
    with redis_server.client() as r:
        r.call("CONFIG", "SET", "min-replicas-to-write", "1")
    results: dict[str, list[str]] = {}
    first = threading.Thread(target=lambda: results.update(
        first=broker.append_all(room, "A", [entry(2)], b"m", timeout=30.0)))
    first.start()
    until(lambda: refusals(redis_server) >= 1, 5, "the write refused")
    rest = threading.Thread(target=lambda: results.update(
        rest=broker.append_all(room, "A", [entry(3), entry(4)], b"m", timeout=30.0)))
    rest.start()
    time.sleep(0.3)  # 3 and 4 wait behind 2 now
    refused = refusals(redis_server)
    proxy.pass_one_command()
    until(lambda: refusals(redis_server) > refused, 5, "the write refused again")
    with redis_server.client() as r:  # as if the replica came
        r.call("CONFIG", "SET", "min-replicas-to-write", "0")
    proxy.release_commands()
    first.join(30.0)
    rest.join(30.0)
    assert results == {"first": ["ok"], "rest": ["ok", "ok"]}
    assert [e["version"] for e in broker.load(room)["ops"]] == [1, 2, 3, 4]


def refusals(server: RedisProcess) -> int:
    """How many commands the server refused with NOREPLICAS so far."""
    with server.client() as r:
        info = r.call("INFO", "errorstats").decode()
    match = re.search(r"errorstat_NOREPLICAS:count=(\d+)", info)
    return int(match.group(1)) if match else 0
