"""kasagi.rooms and ``kasagi serve --app``: room type declarations, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

import kasagi
from kasagi import RoomType, Rule
from kasagi.cli import load_app
from kasagi.rooms import HOOKS, room_types_of

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena" / "app.py"


class Plain(RoomType):
    rooms = "plain-*"


class Hooked(RoomType):
    name = "hooked"
    rooms = ("h-*", "x:*")
    writable = ("/players/$self", Rule("/players/$self/x", ("int", "null"), min=0, max=5))

    def on_update(self, room, player, patch):
        return None

    def on_tick(self, room, dt):
        pass


# --app may name a kasagi.room_type(...) builder, or a list of room types (builders too).
greeter = kasagi.room_type("greet-*", name="greeter")


@greeter.on_join
def _greet(room, player, attrs):
    return {**attrs, "greeted": True}


TYPES = [Plain, Hooked]


def test_hook_mask_names_only_the_hooks_defined():
    assert Plain.hook_mask() == 0
    assert Hooked.hook_mask() == HOOKS["on_update"] | HOOKS["on_tick"]


def test_declaration_to_core():
    assert Plain.type_name() == "Plain" and Hooked.type_name() == "hooked"
    assert Hooked.patterns() == ["h-*", "x:*"]
    assert Hooked.rules() == [("/players/$self", [], None, None),
                              ("/players/$self/x", ["int", "null"], 0, 5)]
    with pytest.raises(ValueError, match="unknown type"):
        Rule("/a", "float").to_core()

    class NoRooms(RoomType):
        pass

    with pytest.raises(ValueError, match="rooms"):
        NoRooms.patterns()


def test_load_app_by_file_and_by_module(monkeypatch):
    (arena,) = load_app(f"{ARENA}:Arena")
    assert arena.__name__ == "Arena" and arena.patterns() == ["arena-*"]
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert load_app("test_rooms:Hooked")[0].type_name() == "hooked"
    with pytest.raises(ValueError, match="MODULE:ATTR"):
        load_app("no_colon")
    with pytest.raises(ImportError):
        load_app("/nowhere/app.py:Arena")
    with pytest.raises(AttributeError):
        load_app(f"{ARENA}:Nope")
    with pytest.raises(TypeError):
        load_app(f"{ARENA}:SIZE")


def test_load_app_of_a_builder_and_of_a_list(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    (built,) = load_app("test_rooms:greeter")
    assert issubclass(built, RoomType) and built.type_name() == "greeter"
    assert built.hook_mask() == HOOKS["on_join"] and built.patterns() == ["greet-*"]
    assert load_app(f"{Path(__file__)}:TYPES")[1].type_name() == "hooked"
    assert [t.type_name() for t in load_app("test_rooms:TYPES")] == ["Plain", "hooked"]


def test_serve_app_with_a_builder_and_a_list(kasagi_instances):
    # kasagi serve --app FILE:greeter --app FILE:TYPES: all three types serve their rooms.
    here = Path(__file__)
    (serve,) = kasagi_instances("--app", f"{here}:greeter", "--app", f"{here}:TYPES")
    with kasagi.Client().connect(serve.url) as client:
        greeted = client.join("greet-1", name="ann")
        assert greeted.players[greeted.player_id] == {"name": "ann", "greeted": True}
        client.join("h-1")
        with pytest.raises(kasagi.KasagiError, match="at most 5"):  # Hooked's rules
            client.update("h-1", {"x": 9}, ack=True)
        with pytest.raises(kasagi.KasagiError) as refused:  # plain-1 is of type Plain
            client.join("plain-1", roomType="Other")
        assert refused.value.code == "FORBIDDEN"


def test_room_types_of():
    assert room_types_of(Plain) == [Plain]
    assert room_types_of([Plain, Hooked]) == [Plain, Hooked]
    for bad in ([], [Plain, 3], "Plain", {"a": Plain}):
        with pytest.raises(TypeError):
            room_types_of(bad)


def test_serve_with_a_wrong_app_exits_2(run_kasagi):
    done = run_kasagi("serve", "--port", "0", "--app", "no_such_module_here:Arena")
    assert done.returncode == 2
    assert "--app" in done.stderr and "no_such_module_here" in done.stderr
    done = run_kasagi("serve", "--port", "0", "--app", f"{ARENA}:SIZE")
    assert done.returncode == 2 and "RoomType" in done.stderr
