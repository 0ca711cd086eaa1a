"""The broker contract (cpp/broker/broker.hpp), checked against MemoryBroker and RedisBroker
alike through the blocking test surface kasagi._core.Broker."""

from __future__ import annotations

import time

import pytest

from .helpers import Make, entry, received, snapshot, wait_subscribed

pytestmark = pytest.mark.tsan  # each broker runs on a thread of its own


def test_claim_renew_and_fence(make_broker: Make, room: str) -> None:
    a, b = make_broker(), make_broker()
    assert a.claim(room, "A", 10_000) == ("ok", "A")
    assert b.claim(room, "B", 10_000) == ("fenced", "A")
    assert a.claim(room, "A", 10_000) == ("ok", "A")  # renewal


def test_lease_expiry_and_takeover(make_broker: Make, room: str) -> None:
    a, b = make_broker(), make_broker()
    assert a.claim(room, "A", 200) == ("ok", "A")
    assert a.append(room, "A", entry(1), b"m1") == "ok"
    time.sleep(0.35)
    assert b.claim(room, "B", 10_000) == ("ok", "B")
    # The deposed holder can no longer write; the new one can.
    assert a.append(room, "A", entry(2, "stale"), b"stale") == "fenced"
    assert a.save_snapshot(room, "A", snapshot(2, "stale")) == "fenced"
    assert a.claim(room, "A", 10_000) == ("fenced", "B")
    assert b.append(room, "B", entry(2, "e2"), b"m2") == "ok"
    assert b.save_snapshot(room, "B", snapshot(2, "e2")) == "ok"
    log = b.load(room)
    assert log["snapshot"]["epoch"] == "e2"
    assert log["ops"] == []


def test_release(make_broker: Make, room: str) -> None:
    a, b = make_broker(), make_broker()
    assert a.claim(room, "A", 10_000)[0] == "ok"
    b.release(room, "B")  # not the holder: no effect
    b.load(room)
    assert b.claim(room, "B", 10_000) == ("fenced", "A")
    a.release(room, "A")
    a.load(room)  # fire and forget: a later command of `a` comes after it
    assert b.claim(room, "B", 10_000) == ("ok", "B")


def test_writes_need_the_lease(make_broker: Make, room: str) -> None:
    a = make_broker()
    sub = a.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.append(room, "A", entry(1), b"m1") == "fenced"
    assert a.save_snapshot(room, "A", snapshot(1)) == "fenced"
    assert a.load(room) == {"status": "ok", "snapshot": None, "ops": []}
    assert sub.get(0.3) is None  # a fenced append publishes nothing


def test_load_returns_the_snapshot_and_the_entries_after_it(make_broker: Make, room: str) -> None:
    a, b = make_broker(), make_broker()
    assert a.claim(room, "A", 10_000)[0] == "ok"
    for v in range(1, 6):
        assert a.append(room, "A", entry(v), b"m%d" % v) == "ok"
    assert a.save_snapshot(room, "A", snapshot(3)) == "ok"
    assert a.append(room, "A", entry(6), b"m6") == "ok"
    log = b.load(room)
    assert log["status"] == "ok"
    assert log["snapshot"] == snapshot(3)
    assert log["ops"] == [entry(4), entry(5), entry(6)]


def test_load_without_snapshot_returns_the_whole_log(make_broker: Make, room: str) -> None:
    a = make_broker()
    assert a.claim(room, "A", 10_000)[0] == "ok"
    for v in range(1, 4):
        assert a.append(room, "A", entry(v), b"m") == "ok"
    assert a.load(room) == {"status": "ok", "snapshot": None, "ops": [entry(1), entry(2), entry(3)]}


def test_log_is_trimmed_to_ops_max_len(make_broker: Make, room: str) -> None:
    a = make_broker(ops_max_len=3)
    assert a.claim(room, "A", 10_000)[0] == "ok"
    for v in range(1, 9):
        assert a.append(room, "A", entry(v), b"m") == "ok"
    assert [e["version"] for e in a.load(room)["ops"]] == [6, 7, 8]


def test_appends_and_publishes_reach_subscribers_in_call_order(make_broker: Make, room: str) -> None:
    a = make_broker()
    sub = a.subscribe(room)
    wait_subscribed(a, room, sub)
    assert a.claim(room, "A", 10_000)[0] == "ok"
    # Fire-and-forget publishes interleaved with appends still arrive in call order.
    for v in range(1, 21):
        a.publish(room, b"p%d" % v)
        assert a.append(room, "A", entry(v), b"a%d" % v) == "ok"
        a.publish(room, b"q%d" % v)
    expected = [m for v in range(1, 21) for m in (b"p%d" % v, b"a%d" % v, b"q%d" % v)]
    assert received(sub, len(expected)) == expected
    assert sub.get(0.2) is None


def test_every_subscriber_of_every_instance_gets_the_messages(make_broker: Make, room: str) -> None:
    a, b = make_broker(), make_broker()
    sub_a, sub_b = a.subscribe(room), b.subscribe(room)
    wait_subscribed(a, room, sub_a, sub_b)
    assert a.claim(room, "A", 10_000)[0] == "ok"
    assert a.append(room, "A", entry(1), b"one") == "ok"
    b.publish(room, b"two")
    assert received(sub_a, 2) == [b"one", b"two"]
    assert received(sub_b, 2) == [b"one", b"two"]


def test_unsubscribe_and_subscribe_again(make_broker: Make, room: str) -> None:
    a = make_broker()
    first, other = a.subscribe(room), a.subscribe("other-" + room)
    wait_subscribed(a, room, first)
    first.close()
    again = a.subscribe(room)  # right after the unsubscribe: must not be lost
    wait_subscribed(a, room, again)
    a.publish(room, b"x")
    assert received(again, 1) == [b"x"]
    assert first.get(0.2) is None
    assert other.get(0.1) is None


def test_unknown_option_is_rejected(make_broker: Make) -> None:
    with pytest.raises(TypeError, match="nonsense"):
        make_broker(nonsense=1)
