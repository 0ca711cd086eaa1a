"""Every error code from a bad input: a clear ERROR, no state change, others still served."""

from __future__ import annotations

import time

import msgpack
import pytest

from wire import Wire


@pytest.fixture
def room(make_server, connect):
    """A server with a room 'e' holding an observer; returns (server, observer, its full state)."""
    server = make_server(tick_rate=0)
    observer = connect(server)
    full = observer.join("e", who="observer")
    return server, observer, full


def assert_unchanged_and_serving(server, observer, full, connect):
    """The room is as it was, and a well-behaved client still gets its deltas."""
    state = server.room_state("e")
    assert state["version"] == full["version"]
    assert state["state"] == full["payload"]["state"]
    observer.send({"type": "STATE_UPDATE", "roomId": "e", "payload": {"alive": True},
                   "requestId": 777})
    assert observer.expect("ACK", where=lambda m: m.get("requestId") == 777)
    assert observer.expect("DELTA_UPDATE")["baseVersion"] == full["version"]


def error_of(w: Wire) -> dict:
    err = w.expect("ERROR")
    assert set(err["payload"]) == {"code", "message"} and err["payload"]["message"]
    return err


def test_malformed_json(room, connect):
    server, observer, full = room
    bad = connect(server, "json")
    for frame in ["{", "not json", "[1,2]", '{"type": 5}', "{\"type\":\"JOIN_ROOM\"", ""]:
        bad.send_raw(frame)
        assert error_of(bad)["payload"]["code"] == "BAD_MESSAGE", frame
    assert_unchanged_and_serving(server, observer, full, connect)


def test_malformed_msgpack(room, connect):
    server, observer, full = room
    bad = connect(server, "msgpack")
    frames = [b"\xc1", b"\x81\xa4type", msgpack.packb([1, 2]), msgpack.packb("x"),
              msgpack.packb({"type": "STATE_UPDATE", "roomId": "e", "payload": {"b": b"\x00"}}),
              msgpack.packb({1: 2})]
    for frame in frames:
        bad.send_raw(frame)
        assert error_of(bad)["payload"]["code"] == "BAD_MESSAGE", frame
    assert_unchanged_and_serving(server, observer, full, connect)


@pytest.mark.parametrize("msg, needle", [
    ({"type": "JOIN_ROOM"}, "roomId"),
    ({"type": "JOIN_ROOM", "roomId": 7}, "roomId"),
    ({"type": "JOIN_ROOM", "roomId": "bad room!"}, "roomId"),
    ({"type": "JOIN_ROOM", "roomId": "x" * 129}, "roomId"),
    ({"type": "STATE_UPDATE", "roomId": "e"}, "payload"),
    ({"type": "STATE_UPDATE", "roomId": "e", "payload": [1]}, "payload"),
    ({"type": "STATE_UPDATE", "roomId": "e", "payload": {}, "version": -1}, "version"),
    ({"type": "STATE_UPDATE", "roomId": "e", "payload": {}, "version": 1.5}, "version"),
    ({"type": "STATE_UPDATE", "roomId": "e", "payload": {}, "requestId": "1"}, "requestId"),
    ({"type": "STATE_UPDATE", "roomId": "e", "payload": {}, "path": 3}, "path"),
])
def test_wrong_field_types(room, connect, msg, needle):
    server, observer, full = room
    bad = connect(server)
    bad.send(msg)
    err = error_of(bad)
    assert err["payload"]["code"] == "BAD_MESSAGE"
    assert needle in err["payload"]["message"]
    assert_unchanged_and_serving(server, observer, full, connect)


def test_bad_message_echoes_request_and_room(room, connect):
    server, observer, full = room
    bad = connect(server)
    bad.send({"type": "STATE_UPDATE", "roomId": "e", "payload": 5, "requestId": 12})
    err = error_of(bad)
    assert err["requestId"] == 12 and err["roomId"] == "e"


def test_unknown_type(room, connect):
    server, observer, full = room
    bad = connect(server)
    bad.send({"type": "TELEPORT", "roomId": "e", "requestId": 3})
    err = error_of(bad)
    assert err["payload"]["code"] == "UNKNOWN_TYPE" and err["requestId"] == 3
    bad.send({"type": "DELTA_UPDATE", "roomId": "e", "payload": {"players": {}}})
    assert error_of(bad)["payload"]["code"] == "UNKNOWN_TYPE"
    assert_unchanged_and_serving(server, observer, full, connect)


def test_not_in_room(room, connect):
    server, observer, full = room
    stranger = connect(server)
    for t in ("STATE_UPDATE", "LEAVE_ROOM", "RESYNC"):
        stranger.send({"type": t, "roomId": "e", "payload": {"x": 1}, "requestId": 1})
        err = error_of(stranger)
        assert err["payload"]["code"] == "NOT_IN_ROOM" and err["roomId"] == "e"
    assert_unchanged_and_serving(server, observer, full, connect)


def test_forbidden_paths(room, connect):
    server, observer, full = room
    writer = connect(server)
    me = writer.join("e")["payload"]["playerId"]
    other = full["payload"]["playerId"]
    after_join = server.room_state("e")
    observer.expect("DELTA_UPDATE")
    for path, payload in [(f"/players/{other}", {"x": 1}), ("/shared", {"x": 1}),
                          ("/players", {me: None}), ("/", {"players": None}),
                          ("", {"anything": 1})]:
        writer.send({"type": "STATE_UPDATE", "roomId": "e", "path": path, "payload": payload})
        assert error_of(writer)["payload"]["code"] == "FORBIDDEN", path
    writer.send({"type": "STATE_UPDATE", "roomId": "e", "path": "players", "payload": {}})
    assert error_of(writer)["payload"]["code"] == "BAD_MESSAGE"
    assert server.room_state("e") == after_join
    full = {**full, "version": after_join["version"], "payload": {"state": after_join["state"]}}
    assert_unchanged_and_serving(server, observer, full, connect)


def test_too_large_message_is_refused(make_server, connect):
    server = make_server(tick_rate=0, max_message_bytes=1024, max_frame_bytes=4096)
    observer = connect(server)
    full = observer.join("e")
    big = connect(server)
    big.join("e")
    observer.expect("DELTA_UPDATE")
    big.send({"type": "STATE_UPDATE", "roomId": "e", "payload": {"blob": "x" * 2000}})
    assert error_of(big)["payload"]["code"] == "TOO_LARGE"
    big.send({"type": "PING"})  # the connection is still usable
    big.expect("PONG")
    state = server.room_state("e")
    assert all("blob" not in p for p in state["state"]["players"].values())
    # Over the hard limit the connection is closed with 1009; the others stay.
    big.send({"type": "STATE_UPDATE", "roomId": "e", "payload": {"blob": "x" * 5000}})
    code, _ = big.closed_with()
    assert code == 1009
    observer.send({"type": "PING"})
    observer.expect("PONG")


def test_rate_limited(make_server, connect):
    server = make_server(tick_rate=0, rate_limit=5, rate_burst=5)
    flooder = connect(server)
    flooder.join("e")
    for i in range(20):
        flooder.send({"type": "PING", "timestamp": i, "requestId": i})
    msgs = flooder.quiet(0.5)
    limited = [m for m in msgs if m["type"] == "ERROR"]
    assert limited and all(m["payload"]["code"] == "RATE_LIMITED" for m in limited)
    assert {m["requestId"] for m in limited} <= set(range(20))  # echoed, so ACKs don't hang
    assert sum(m["type"] == "PONG" for m in msgs) <= 6


def test_rate_limit_abuse_closes_the_connection(make_server, connect):
    server = make_server(tick_rate=0, rate_limit=20, rate_burst=5, rate_limit_close_after=1.0)
    flooder = connect(server)
    deadline = time.monotonic() + 4
    closed = None
    while time.monotonic() < deadline and closed is None:
        try:
            flooder.send({"type": "PING"})
            time.sleep(0.005)
        except Exception:
            closed = True
    code, reason = flooder.closed_with()
    assert code == 1008 and "rate" in reason


def test_room_full(make_server, connect):
    server = make_server(max_members_per_room=2)
    a, b, c = connect(server), connect(server), connect(server)
    a.join("small")
    b.join("small")
    c.send({"type": "JOIN_ROOM", "roomId": "small", "requestId": 4})
    err = error_of(c)
    assert err["payload"]["code"] == "ROOM_FULL" and err["requestId"] == 4
    assert len(server.room_state("small")["state"]["players"]) == 2
    # The refused join left nothing behind: c is not in the room.
    c.send({"type": "RESYNC", "roomId": "small"})
    assert error_of(c)["payload"]["code"] == "NOT_IN_ROOM"


def test_rooms_per_connection_and_server_room_limit(make_server, connect):
    server = make_server(max_rooms_per_connection=2, max_rooms=3)
    a = connect(server)
    a.join("r1")
    a.join("r2")
    a.send({"type": "JOIN_ROOM", "roomId": "r3"})
    assert error_of(a)["payload"]["code"] == "FORBIDDEN"
    b = connect(server)
    b.join("r3")
    b.send({"type": "JOIN_ROOM", "roomId": "r4"})
    assert error_of(b)["payload"]["code"] == "UNAVAILABLE"
    assert server.stats()["rooms"] == 3


def test_bad_join_attributes(room, connect):
    server, observer, full = room
    bad = connect(server)
    bad.send({"type": "JOIN_ROOM", "roomId": "e", "payload": {"sessionToken": 5}})
    assert error_of(bad)["payload"]["code"] == "BAD_MESSAGE"
    bad.send({"type": "JOIN_ROOM", "roomId": "e", "payload": {"lastVersion": "x"}})
    assert error_of(bad)["payload"]["code"] == "BAD_MESSAGE"
    assert_unchanged_and_serving(server, observer, full, connect)


def test_too_deep_documents_are_refused(room, connect):
    server, observer, full = room
    deep: dict = {"leaf": 1}
    for _ in range(40):
        deep = {"d": deep}
    bad = connect(server)
    bad.join("e")
    observer.expect("DELTA_UPDATE")
    before = server.room_state("e")
    bad.send({"type": "STATE_UPDATE", "roomId": "e", "payload": deep})
    assert error_of(bad)["payload"]["code"] == "BAD_MESSAGE"
    assert server.room_state("e") == before


def test_empty_maps_are_writes_too(room, connect):
    """{} creates or replaces a location: path rules must see it like any other value."""
    server, observer, full = room
    writer = connect(server)
    me = writer.join("e")["payload"]["playerId"]
    other = full["payload"]["playerId"]
    observer.expect("DELTA_UPDATE")
    before = server.room_state("e")
    for path, payload in [(f"/players/{other}", {"who": {}}), ("", {"evil": {}}),
                          ("/players", {"ghost": {}}), ("/evil", {})]:
        writer.send({"type": "STATE_UPDATE", "roomId": "e", "path": path, "payload": payload})
        assert error_of(writer)["payload"]["code"] == "FORBIDDEN", (path, payload)
    assert server.room_state("e") == before
    # Within its own entry a client may create an empty map, and {} alone is a no-op.
    writer.send({"type": "STATE_UPDATE", "roomId": "e", "payload": {"inv": {}}, "requestId": 1})
    assert writer.expect("ACK")["version"] == before["version"] + 1
    writer.send({"type": "STATE_UPDATE", "roomId": "e", "payload": {}, "requestId": 2})
    assert writer.expect("ACK")["version"] == before["version"] + 1
    assert server.room_state("e")["state"]["players"][me] == {"inv": {}}


def test_versions_older_than_the_conflict_window_conflict(make_server, connect):
    server = make_server(tick_rate=0, conflict_window=3)
    a = connect(server)
    full = a.join("w")
    for i in range(5):
        a.send({"type": "STATE_UPDATE", "roomId": "w", "payload": {"i": i}, "requestId": i})
        a.expect("ACK")
    # Its own field, but based on a version 5 behind with a window of 3: too old to decide.
    a.send({"type": "STATE_UPDATE", "roomId": "w", "payload": {"j": 1}, "requestId": 9,
            "version": full["version"]})
    err = error_of(a)
    assert err["payload"]["code"] == "CONFLICT" and err["requestId"] == 9
    a.send({"type": "STATE_UPDATE", "roomId": "w", "payload": {"j": 1}, "requestId": 10,
            "version": full["version"] + 4})
    assert a.expect("ACK")["requestId"] == 10
