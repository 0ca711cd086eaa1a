"""Room types: path rules with types and ranges, Python hooks, what hooks may do to their
room, failures, and the threading model (a slow hook stalls no other room)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kasagi
from kasagi import Reject, RoomType, Rule
from kasagi.testing import metric_value
from keys import SECRET, token
from wire import Wire

# Hooks run on hook threads, each call under the GIL: CI runs these under ThreadSanitizer
# too.
pytestmark = pytest.mark.tsan


@pytest.fixture
def serve() -> Iterator[Callable[..., kasagi.Server]]:
    """Returns ``serve(*room_types, **settings)``: a started server with those room types."""
    servers: list[kasagi.Server] = []
    wires: list[Wire] = []

    def make(*types: type[RoomType], **settings: Any) -> kasagi.Server:
        settings.setdefault("log_level", "warning")
        settings.setdefault("tick_rate", 0)
        server = kasagi.Server(**settings)
        for t in types:
            server.add_room_type(t)
        servers.append(server.start())
        return server

    yield make
    for w in wires:
        w.close()
    for s in servers:
        s.stop()


def update(w: Wire, room: str, patch: dict[str, Any], request_id: int, **extra: Any) -> dict:
    """Sends a STATE_UPDATE and returns its ACK or ERROR."""
    w.send({"type": "STATE_UPDATE", "roomId": room, "payload": patch, "requestId": request_id,
            **extra})
    while True:
        msg = w.recv()
        if msg["type"] in ("ACK", "ERROR") and msg.get("requestId") == request_id:
            return msg


def error(msg: dict) -> tuple[str, str]:
    assert msg["type"] == "ERROR", msg
    return msg["payload"]["code"], msg["payload"]["message"]


# ----------------------------------------------------------------------------------------
# Path rules: types and ranges, checked in C++


class Board(RoomType):
    rooms = "board-*"
    writable = (
        "/players/$self",
        Rule("/players/$self/x", "number", min=0, max=100),
        Rule("/players/$self/name", "string"),
        Rule("/players/$self/hp", ("int", "null"), min=0),
        Rule("/cells/*", "int", min=0, max=9),
    )


def test_rules_types_and_ranges(serve):
    server = serve(Board)
    w = Wire(server.url)
    w.join("board-1")
    assert update(w, "board-1", {"x": 50, "name": "ann", "free": [1, "a"]}, 1)["type"] == "ACK"
    assert update(w, "board-1", {"x": 12.5, "hp": 3}, 2)["type"] == "ACK"
    code, text = error(update(w, "board-1", {"x": 101}, 3))
    assert code == "FORBIDDEN" and "/x" in text and "at most 100" in text
    code, text = error(update(w, "board-1", {"x": "far"}, 4))
    assert code == "FORBIDDEN" and "must be number" in text
    code, text = error(update(w, "board-1", {"hp": 1.5}, 5))
    assert code == "FORBIDDEN" and "must be null or int" in text
    assert error(update(w, "board-1", {"hp": -1}, 6))[0] == "FORBIDDEN"
    assert update(w, "board-1", {"hp": None}, 7)["type"] == "ACK"  # null is allowed there
    assert error(update(w, "board-1", {"x": {"deep": 1}}, 8))[0] == "FORBIDDEN"  # a map
    assert update(w, "board-1", {"a": 3}, 9, path="/cells")["type"] == "ACK"
    assert error(update(w, "board-1", {"a": 10}, 10, path="/cells"))[0] == "FORBIDDEN"
    assert error(update(w, "board-1", {"x": 1}, 11, path="/other"))[0] == "FORBIDDEN"
    state = server.room_state("board-1")["state"]
    me = next(iter(state["players"].values()))
    assert me["x"] == 12.5 and me["name"] == "ann" and "hp" not in me
    assert state["cells"] == {"a": 3}
    # Rooms of no type keep the server's writable_paths.
    assert update(w, "other", {}, 12)["type"] == "ERROR"  # not joined
    w.join("other")
    assert update(w, "other", {"x": "anything"}, 13)["type"] == "ACK"
    w.close()


def test_invalid_rules_fail_at_registration():
    class BadType(RoomType):
        rooms = "x-*"
        writable = (Rule("/players/$self/x", "float"),)

    class BadPath(RoomType):
        rooms = "x-*"
        writable = ("players",)

    class NoRooms(RoomType):
        pass

    server = kasagi.Server()
    with pytest.raises(ValueError, match="unknown type 'float'"):
        server.add_room_type(BadType)
    with pytest.raises(ValueError, match="rooms"):
        server.add_room_type(NoRooms)
    with pytest.raises(TypeError):
        server.add_room_type(object)  # type: ignore[arg-type]
    server.add_room_type(BadPath)
    with pytest.raises(ValueError, match="JSON Pointer"):
        server.start()


# ----------------------------------------------------------------------------------------
# Hooks


class Game(RoomType):
    name = "game"
    rooms = ("game-*", "g:*")
    calls: list[tuple[str, ...]] = []

    def on_create(self, room):
        Game.calls.append(("create", room.id))
        room.set("/world", {"created": True, "npcs": {}})

    def on_join(self, room, player, attrs, claims):
        Game.calls.append(("join", room.id, player))
        if attrs.get("name") == "admin":
            raise Reject("the name admin is reserved")
        if attrs.get("banned"):
            return False
        return {**attrs, "hp": 10, "team": claims.get("team", "none")}

    def on_update(self, room, player, patch):
        if "x" in patch:  # a speed limit: at most 5 per update
            old = room.get(f"/players/{player}/x", 0)
            x = max(old - 5, min(old + 5, patch["x"]))
            return {**patch, "x": x}
        if patch.get("cheat"):
            raise Reject("no cheating")
        if patch.get("boom"):
            raise RuntimeError("boom in on_update")
        if "shout" in patch:
            room.broadcast("shout", {"from": player, "text": patch["shout"]})
            return {}
        if "whisper" in patch:
            room.send(patch["whisper"], "whisper", {"from": player})
            return {}
        if "kick" in patch:
            room.kick(patch["kick"], "bye")
            return {}
        if patch.get("kickme"):
            room.kick(player, "self")
            return None
        if "score" in patch:
            room.patch("/world", {"last": player})
        return None

    def on_leave(self, room, player, reason):
        Game.calls.append(("leave", room.id, player, reason))

    def on_dispose(self, room):
        Game.calls.append(("dispose", room.id))


def test_join_hook_accepts_rewrites_and_rejects(serve):
    server = serve(Game)
    a = Wire(server.url)
    full = a.join("game-1", name="ann")
    me = full["payload"]["playerId"]
    # on_create ran first; on_join's attributes are the entry
    assert full["payload"]["state"]["world"] == {"created": True, "npcs": {}}
    assert full["payload"]["state"]["players"][me] == {"name": "ann", "hp": 10, "team": "none"}
    b = Wire(server.url)
    b.send({"type": "JOIN_ROOM", "roomId": "game-1", "payload": {"name": "admin"}, "requestId": 5})
    err = b.expect("ERROR")
    assert err["payload"] == {"code": "FORBIDDEN", "message": "the name admin is reserved"}
    assert err["requestId"] == 5 and err["roomId"] == "game-1"
    b.send({"type": "JOIN_ROOM", "roomId": "game-1", "payload": {"banned": True}})
    assert b.expect("ERROR")["payload"]["code"] == "FORBIDDEN"
    # refused joins changed nothing; the refused connection may still join
    assert list(server.room_state("game-1")["state"]["players"]) == [me]
    assert b.join("game-1", name="bob")["payload"]["state"]["players"]
    a.close()
    b.close()


def test_join_hook_sees_claims(serve):
    server = serve(Game, jwt_secret=SECRET)
    w = Wire(server.url, additional_headers={"Authorization": f"Bearer {token(sub='eve', team='red')}"})
    full = w.join("g:x", name="eve")
    assert full["payload"]["playerId"] == "eve"
    assert full["payload"]["state"]["players"]["eve"]["team"] == "red"
    w.close()


def test_update_hook_corrects_rejects_and_survives_errors(serve, caplog):
    server = serve(Game)
    w, other = Wire(server.url), Wire(server.url)
    me = w.join("game-2", name="ann")["payload"]["playerId"]
    other.join("game-2", name="bob")
    assert update(w, "game-2", {"x": 3}, 1)["type"] == "ACK"
    assert update(w, "game-2", {"x": 50, "y": 1}, 2)["type"] == "ACK"  # clamped to 8
    delta = other.expect("DELTA_UPDATE", where=lambda m: m["payload"].get("players", {})
                         .get(me, {}).get("x") == 8)
    assert delta["payload"]["players"][me] == {"x": 8, "y": 1}
    assert error(update(w, "game-2", {"cheat": True}, 3)) == ("FORBIDDEN", "no cheating")
    with caplog.at_level(logging.ERROR, logger="kasagi.hooks"):
        code, text = error(update(w, "game-2", {"boom": 1}, 4))
        again = error(update(w, "game-2", {"boom": 2}, 40))  # the same failure: not logged
    assert code == "INTERNAL" and "on_update" in text and again[0] == "INTERNAL"
    metrics = server.metrics()
    assert "kasagi_hook_failures_total 2\n" in metrics
    assert "kasagi_hook_duration_seconds_count " in metrics
    logged = [r for r in caplog.records if r.name == "kasagi.hooks"]
    assert len(logged) == 1 and "RuntimeError: boom in on_update" in logged[0].getMessage()
    assert "Traceback" in logged[0].getMessage()
    # the room keeps running; nothing of the refused updates was applied
    assert update(w, "game-2", {"score": 1}, 5)["type"] == "ACK"
    state = server.room_state("game-2")["state"]
    assert state["players"][me] == {"name": "ann", "hp": 10, "team": "none", "x": 8, "y": 1,
                                    "score": 1}
    assert state["world"]["last"] == me
    w.close()
    other.close()


def test_events_kick_leave_and_dispose(serve):
    Game.calls.clear()
    server = serve(Game, room_empty_ttl=0.2)
    a, b = Wire(server.url, "msgpack"), Wire(server.url)
    pa = a.join("game-3", name="ann")["payload"]["playerId"]
    pb = b.join("game-3", name="bob")["payload"]["playerId"]
    assert update(a, "game-3", {"shout": "hi"}, 1)["type"] == "ACK"
    # The event leaves at once, before the writer's ACK (which update() waited for).
    for ev in (next(m for m in a.received if m["type"] == "ROOM_EVENT"), b.expect("ROOM_EVENT")):
        assert ev["roomId"] == "game-3"
        assert ev["payload"] == {"name": "shout", "data": {"from": pa, "text": "hi"}}
    assert update(a, "game-3", {"whisper": pb}, 2)["type"] == "ACK"
    assert b.expect("ROOM_EVENT")["payload"]["name"] == "whisper"
    assert not [m for m in a.quiet(0.2) if m["type"] == "ROOM_EVENT"]
    # a kicks b: b is told, a sees b leave, b's entry goes
    assert update(a, "game-3", {"kick": pb}, 3)["type"] == "ACK"
    left = b.expect("PLAYER_LEFT")
    assert left["payload"] == {"playerId": pb, "reason": "kicked", "message": "bye"}
    seen = next(m for m in a.received if m["type"] == "PLAYER_LEFT")  # before a's ACK
    assert seen["payload"] == {"playerId": pb, "reason": "kicked"}
    assert error(update(b, "game-3", {"y": 1}, 4))[0] == "NOT_IN_ROOM"
    assert list(server.room_state("game-3")["state"]["players"]) == [pa]
    # kicking oneself from on_update: no ACK, the PLAYER_LEFT says why
    a.send({"type": "STATE_UPDATE", "roomId": "game-3", "payload": {"kickme": True},
            "requestId": 5})
    assert a.expect("PLAYER_LEFT")["payload"]["message"] == "self"
    deadline = time.monotonic() + 5
    while ("dispose", "game-3") not in Game.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c for c in Game.calls if c[0] in ("create", "leave", "dispose")] == [
        ("create", "game-3"),
        ("leave", "game-3", pb, "kicked"),
        ("leave", "game-3", pa, "kicked"),
        ("dispose", "game-3"),
    ]
    a.close()
    b.close()


def test_leave_hook_reasons_left_and_timeout(serve):
    # "kicked" is above; a LEAVE_ROOM is "left", a grace period run out is "timeout".
    leaves: list[tuple[str, str]] = []

    class Farewell(RoomType):
        rooms = "bye-*"

        def on_leave(self, room, player, reason):
            leaves.append((player, reason))

    server = serve(Farewell, session_grace=0.3)
    stays, goes, drops = Wire(server.url), Wire(server.url), Wire(server.url)
    stays.join("bye-1")
    gone = goes.join("bye-1")["payload"]["playerId"]
    dropped = drops.join("bye-1")["payload"]["playerId"]
    goes.send({"type": "LEAVE_ROOM", "roomId": "bye-1", "requestId": 1})
    goes.expect("ACK")
    drops.close()  # no LEAVE_ROOM: the entry is kept for session_grace, then removed
    assert stays.expect("PLAYER_LEFT", where=lambda m: m["payload"]["playerId"] == dropped)[
        "payload"]["reason"] == "timeout"
    assert leaves == [(gone, "left"), (dropped, "timeout")]
    stays.close()
    goes.close()


def test_hooks_run_only_where_set(serve):
    # A type with rules only calls no Python at all; a type without on_update calls none
    # for updates. kasagi_hook_duration_seconds counts every hook call.
    joins: list[str] = []

    class RulesOnly(RoomType):
        rooms = "rules-*"

    class JoinOnly(RoomType):
        rooms = "joinonly-*"

        def on_join(self, room, player, attrs):
            joins.append(player)

    server = serve(RulesOnly, JoinOnly)

    def calls() -> float:
        return metric_value(server.metrics(), "kasagi_hook_duration_seconds_count")

    w = Wire(server.url)
    w.join("rules-1")
    for i in range(5):
        assert update(w, "rules-1", {"i": i}, i)["type"] == "ACK"
    w.send({"type": "LEAVE_ROOM", "roomId": "rules-1", "requestId": 9})
    w.expect("ACK")
    assert calls() == 0
    w.join("joinonly-1")
    for i in range(5):
        assert update(w, "joinonly-1", {"i": i}, 10 + i)["type"] == "ACK"
    w.send({"type": "LEAVE_ROOM", "roomId": "joinonly-1", "requestId": 19})
    w.expect("ACK")
    assert len(joins) == 1 and calls() == 1  # the join, no update, no leave
    w.close()


def test_room_type_in_join_payload(serve):
    server = serve(Game)
    w = Wire(server.url)
    w.send({"type": "JOIN_ROOM", "roomId": "game-4", "payload": {"roomType": "chess"}})
    err = w.expect("ERROR")
    assert err["payload"]["code"] == "FORBIDDEN" and "'game'" in err["payload"]["message"]
    full = w.join("game-4", roomType="game", name="ann")
    assert "roomType" not in full["payload"]["state"]["players"][full["payload"]["playerId"]]
    # a room of no type ignores it, as before
    assert w.join("plain", roomType="anything")
    w.close()


class Npcs(RoomType):
    rooms = "npc-*"

    def on_create(self, room):
        self.t = 0.0
        room.set("/npcs", {"n1": {"x": 0.0}})

    def on_tick(self, room, dt):
        assert 0 < dt < 1
        self.t += dt
        room.set("/npcs/n1/x", round(self.t, 3))


def test_tick_hook_moves_npcs(serve):
    server = serve(Npcs, tick_rate=20)
    w = Wire(server.url)
    full = w.join("npc-1")
    seen = [full["payload"]["state"]["npcs"]["n1"]["x"]]
    deadline = time.monotonic() + 3
    while len(seen) < 6 and time.monotonic() < deadline:
        d = w.expect("DELTA_UPDATE")
        if "npcs" in d["payload"]:
            seen.append(d["payload"]["npcs"]["n1"]["x"])
    assert len(seen) >= 6 and seen == sorted(seen) and seen[-1] > seen[0]
    w.close()


def _npc_positions(w: Wire, room: str, count: int) -> list[float]:
    full = w.join(room)
    seen = [full["payload"]["state"]["npcs"]["n1"]["x"]]
    deadline = time.monotonic() + 5
    while len(seen) < count and time.monotonic() < deadline:
        d = w.expect("DELTA_UPDATE")
        if "npcs" in d["payload"]:
            seen.append(d["payload"]["npcs"]["n1"]["x"])
    return seen


def test_tick_hook_runs_when_deltas_leave_at_once(serve):
    # tick_rate 0 sends every change at once; the simulation still gets 20 Hz.
    server = serve(Npcs, tick_rate=0)
    w = Wire(server.url)
    started = time.monotonic()
    seen = _npc_positions(w, "npc-2", 11)
    elapsed = time.monotonic() - started
    assert len(seen) == 11 and seen == sorted(seen) and seen[-1] > seen[0]
    assert elapsed > 0.3  # ten ticks at 20 Hz take 0.5 s: not a busy loop
    w.close()


def test_tick_hook_at_its_own_rate():
    class Fast(Npcs):
        rooms = "fast-*"
        tick_rate = 50.0

        def on_tick(self, room, dt):
            Fast.dts.append(dt)
            super().on_tick(room, dt)

    Fast.dts = []
    server = kasagi.Server(port=0, tick_rate=5, log_level="warning")
    server.add_room_type(Fast)
    with server:
        w = Wire(server.url)
        w.join("fast-1")
        time.sleep(1.0)
        w.close()
    # 50 calls a second, not the server's 5 (generous bounds: a loaded machine skips ticks)
    assert len(Fast.dts) > 15 and sum(Fast.dts) / len(Fast.dts) < 0.1


@pytest.mark.parametrize("rate", [0, -1, 5000, "fast"])
def test_invalid_tick_rate_fails_at_registration(rate):
    class Bad(RoomType):
        rooms = "bad-*"
        tick_rate = rate

        def on_tick(self, room, dt):
            pass

    server = kasagi.Server(port=0)
    with pytest.raises(ValueError, match="tick_rate"):
        server.add_room_type(Bad)


def test_room_is_usable_only_inside_its_hooks(serve):
    kept: list[kasagi.Room] = []

    class Keeper(RoomType):
        rooms = "keep-*"

        def on_create(self, room):
            kept.append(room)

    server = serve(Keeper)
    Wire(server.url).join("keep-1")
    with pytest.raises(RuntimeError, match="inside one of its hooks"):
        kept[0].set("/x", 1)


def test_failing_constructor_refuses_joins(serve, caplog):
    class Broken(RoomType):
        rooms = "broken-*"

        def __init__(self):
            raise ValueError("cannot build")

        def on_update(self, room, player, patch):
            return None

    server = serve(Broken)
    w = Wire(server.url)
    with caplog.at_level(logging.ERROR, logger="kasagi.hooks"):
        w.send({"type": "JOIN_ROOM", "roomId": "broken-1", "payload": {}})
        assert w.expect("ERROR")["payload"]["code"] == "INTERNAL"
    assert any("cannot build" in r.getMessage() for r in caplog.records)
    w.close()


# ----------------------------------------------------------------------------------------
# Threads: a slow hook stalls neither rooms without hooks nor other hooked rooms


class Slow(RoomType):
    rooms = "slow-*"
    started = threading.Event()
    finished = threading.Event()

    def on_update(self, room, player, patch):
        if patch.get("sleep"):
            Slow.started.set()
            time.sleep(patch["sleep"])
            Slow.finished.set()
        return None


def test_slow_hook_does_not_stall_other_rooms(serve):
    # Two hook threads, three hooked rooms: whichever threads they would be given, the two
    # rooms beside the sleeping one keep answering, as does a room without hooks.
    server = serve(Slow, hook_threads=2, threads=1)
    sleeper, plain = Wire(server.url), Wire(server.url)
    rooms = ["slow-b", "slow-c"]
    others = [Wire(server.url) for _ in rooms]
    sleeper.join("slow-a")
    for room, w in zip(rooms, others):
        w.join(room)
    plain.join("plain")  # the only I/O thread, shared with every connection
    Slow.started.clear()
    Slow.finished.clear()
    sleeper.send({"type": "STATE_UPDATE", "roomId": "slow-a", "payload": {"sleep": 3.0},
                  "requestId": 1})
    assert Slow.started.wait(5)
    for i in range(10):
        assert update(plain, "plain", {"i": i}, 10 + i)["type"] == "ACK"
        for room, w in zip(rooms, others):
            assert update(w, room, {"i": i}, 10 + i)["type"] == "ACK"
    assert not Slow.finished.is_set()  # all of it answered while the hook still slept
    assert sleeper.expect("ACK", timeout=10)["requestId"] == 1
    for w in (sleeper, plain, *others):
        w.close()


def test_unusable_hook_results_are_internal_errors(serve, caplog):
    class Odd(RoomType):
        rooms = "odd-*"

        def on_join(self, room, player, attrs):
            return attrs if attrs.get("ok") else "yes"  # not None, a bool or a dict

        def on_update(self, room, player, patch):
            if "nest" in patch:
                return {"n": {"a": {"b": {"c": 1}}}}
            return {"deep": patch["v"]} if "v" in patch else None

    server = serve(Odd, max_state_depth=4)
    w = Wire(server.url)
    with caplog.at_level(logging.ERROR, logger="kasagi.hooks"):
        w.send({"type": "JOIN_ROOM", "roomId": "odd-1", "payload": {}})
        assert w.expect("ERROR")["payload"]["code"] == "INTERNAL"
    assert any("returned 'str'" in r.getMessage() for r in caplog.records)
    w.join("odd-1", ok=True)
    first = update(w, "odd-1", {"v": 1}, 1)
    assert first["type"] == "ACK", first
    # a corrected patch deeper than max_state_depth cannot apply: INTERNAL, nothing changes;
    # logged once, counted every time
    with caplog.at_level(logging.ERROR, logger="kasagi.hooks"):
        for request_id in (2, 3):
            code, _ = error(update(w, "odd-1", {"nest": 1}, request_id))
            assert code == "INTERNAL"
    me = next(iter(server.room_state("odd-1")["state"]["players"].values()))
    assert me == {"ok": True, "deep": 1}
    cannot = [r for r in caplog.records if "cannot apply" in r.getMessage()]
    assert len(cannot) == 1 and "nesting deeper than 4" in cannot[0].getMessage()
    assert metric_value(server.metrics(), "kasagi_hook_failures_total") == 3
    w.close()


def test_unusable_results_are_logged_once_each(serve, caplog, capfd):
    # A hook that returns something unusable on every message must not flood the log:
    # each kind of failure is logged once, every one is counted and answered INTERNAL.
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text")

    class Sloppy(RoomType):
        name = "sloppy"
        rooms = "sloppy-*"

        def on_join(self, room, player, attrs):
            return ["not", "a", "dict"] if attrs.get("odd") else None

        def on_update(self, room, player, patch):
            if "nan" in patch:
                return {"x": float("nan")}  # a corrected patch JSON cannot carry
            if "text" in patch:
                return "corrected"  # not None, a bool or a dict
            if "why" in patch:
                raise Reject(Unprintable())  # fails in the native bridge, str(reason)
            if "lone" in patch:  # a lone surrogate, a different one each time: not UTF-8
                return {"x": chr(0xD800 + patch["lone"])}
            return None

    server = serve(Sloppy)
    w = Wire(server.url)
    with caplog.at_level(logging.ERROR, logger="kasagi.hooks"):
        for _ in range(3):
            w.send({"type": "JOIN_ROOM", "roomId": "sloppy-1", "payload": {"odd": True}})
            assert w.expect("ERROR")["payload"]["code"] == "INTERNAL"
        w.join("sloppy-1")
        for i in range(3):
            assert error(update(w, "sloppy-1", {"nan": 1}, 10 + i))[0] == "INTERNAL"
            assert error(update(w, "sloppy-1", {"text": 1}, 20 + i))[0] == "INTERNAL"
            assert error(update(w, "sloppy-1", {"why": 1}, 30 + i))[0] == "INTERNAL"
            assert error(update(w, "sloppy-1", {"lone": i}, 50 + i))[0] == "INTERNAL"
            assert update(w, "sloppy-1", {"y": i}, 40 + i)["type"] == "ACK"  # still serving
    logged = [r.getMessage() for r in caplog.records if r.name == "kasagi.hooks"]
    assert len(logged) == 5, logged
    join, nan, text, why, lone = logged
    assert "on_update" in lone and "no document can hold" in lone
    assert "sloppy-1" in join and "on_join returned 'list'" in join
    assert "on_update" in nan and "nan" in nan and "non-finite" in nan
    assert "on_update returned 'str'" in text
    assert "on_update failed in the hook bridge" in why and "no text" in why
    assert "failed" not in capfd.readouterr().err  # nothing per message on stderr either
    assert metric_value(server.metrics(), "kasagi_hook_failures_total") == 15
    me = next(iter(server.room_state("sloppy-1")["state"]["players"].values()))
    assert me == {"y": 2}
    w.close()


def test_decorated_functions_declare_a_room_type(serve):
    lobby = kasagi.room_type("lobby-*", name="lobby",
                             writable=("/players/$self", Rule("/players/$self/n", "int")))

    @lobby.on_join
    def greet(room, player, attrs, claims):
        return {**attrs, "greeted": True, "anonymous": claims == {}}

    @lobby.on_update
    def double(room, player, patch):
        return {"n": patch["n"] * 2} if "n" in patch else None

    server = serve(lobby)
    w = Wire(server.url)
    full = w.join("lobby-1", roomType="lobby")
    me = full["payload"]["playerId"]
    assert full["payload"]["state"]["players"][me] == {"greeted": True, "anonymous": True}
    assert update(w, "lobby-1", {"n": 4}, 1)["type"] == "ACK"
    assert error(update(w, "lobby-1", {"n": "x"}, 2))[0] == "FORBIDDEN"  # rules still apply
    assert server.room_state("lobby-1")["state"]["players"][me]["n"] == 8
    with pytest.raises(ValueError, match="twice"):
        lobby.on_update(double)
    w.close()
