"""Room types for bench/hooks.py, loaded by ``kasagi serve --app bench/hooks_app.py:...``.
They govern every room (``rooms = "*"``), so they apply to whatever ids the loadgen uses."""

from __future__ import annotations

from typing import Any

from kasagi import Room, RoomType, Rule


class Rules(RoomType):
    """Typed path rules only: checked in C++, no Python at all (rooms stay on I/O threads)."""

    rooms = "*"
    writable = ("/players/$self", Rule("/players/$self/x", "number"),
                Rule("/players/$self/t", "int", min=0))


class Trivial(RoomType):
    """The same rules and an on_update hook that accepts every patch as sent."""

    rooms = "*"
    writable = Rules.writable

    def on_update(self, room: Room, player: str, patch: dict[str, Any]) -> None:
        return None
