"""kasagi.rooms and ``kasagi serve --app``: room type declarations, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

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
