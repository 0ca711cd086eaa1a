"""The arena's room type: what the server enforces and simulates in every ``arena-*`` room.

- Path rules (checked in C++, no Python call): a player writes only its own entry; ``x`` and
  ``y`` are numbers inside the arena, ``heading`` a number, ``score`` a non-negative int,
  ``name``/``color``/``tagged`` strings.
- ``on_join``: a name is at most 12 characters; the entry gets ``joined`` (the room's tick).
- ``on_update``: anti-cheat. A move faster than ``MAX_SPEED`` (since the last accepted one;
  the first move after joining is free: the spawn point) is cut back to the farthest
  legal point on the same line (the corrected patch is what the room applies and
  broadcasts), and a score may only grow by one per update. Each correction is counted in
  ``/stats/corrected``.
- ``on_tick``: server-side simulation. ``NPCS`` wanderers move every tick in ``/npcs``,
  until every player of the room has set ``done`` (the end of a round).
- ``on_leave``: forgets the player's last position.

Run it with the bots (``bots.py`` registers it on its embedded server), or serve it::

    kasagi serve --app examples/arena/app.py:Arena
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from kasagi import Reject, Room, RoomType, Rule

SIZE = 100.0  # the arena is SIZE x SIZE (bots.py uses the same)
MAX_SPEED = 30.0  # arena units per second; honest bots move at 20
SLACK = 5.0  # units of grace per update: updates that arrive bunched up (network jitter)
NPCS = 3
NPC_SPEED = 10.0


class Arena(RoomType):
    rooms = "arena-*"
    writable = (
        "/players/$self",
        Rule("/players/$self/x", "number", min=0, max=SIZE),
        Rule("/players/$self/y", "number", min=0, max=SIZE),
        Rule("/players/$self/heading", "number"),
        Rule("/players/$self/score", "int", min=0),
        Rule("/players/$self/name", "string"),
        Rule("/players/$self/color", "string"),
        Rule("/players/$self/tagged", "string"),
        Rule("/players/$self/done", "bool"),
    )

    def __init__(self) -> None:
        # Per room (one instance each): the last accepted position of each player, and when.
        self.last: dict[str, tuple[float, float, float]] = {}
        self.corrected = 0
        self.rng = random.Random(0)

    def on_create(self, room: Room) -> None:
        npcs = {}
        for i in range(NPCS):
            npcs[f"npc{i}"] = {"x": self.rng.uniform(0, SIZE), "y": self.rng.uniform(0, SIZE),
                               "heading": self.rng.uniform(0, 360)}
        room.set("/npcs", npcs)
        room.set("/stats", {"corrected": 0})

    def on_join(self, room: Room, player: str, attrs: dict[str, Any]) -> dict[str, Any]:
        name = attrs.get("name", player)
        if not isinstance(name, str) or len(name) > 12:
            raise Reject("name: a string of at most 12 characters")
        return {**attrs, "joined": room.tick}

    def on_update(self, room: Room, player: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        corrected = False
        if "score" in patch:
            old = room.get(f"/players/{player}/score", 0)
            if patch["score"] > old + 1:
                patch = {**patch, "score": old + 1}
                corrected = True
        if "x" in patch or "y" in patch:
            entry = room.get(f"/players/{player}", {})
            x, y = patch.get("x", entry.get("x")), patch.get("y", entry.get("y"))
            if x is not None and y is not None:
                prev = self.last.get(player)
                if prev is not None:
                    px, py, at = prev
                    reach = MAX_SPEED * (time.monotonic() - at) + SLACK
                    distance = math.hypot(x - px, y - py)
                    if distance > reach:  # too fast: stop at the edge of what was possible
                        x = round(px + (x - px) * reach / distance, 2)
                        y = round(py + (y - py) * reach / distance, 2)
                        patch = {**patch, "x": x, "y": y}
                        corrected = True
                self.last[player] = (x, y, time.monotonic())
        if corrected:
            self.corrected += 1
            room.set("/stats/corrected", self.corrected)
            return patch
        return None  # as sent

    def on_tick(self, room: Room, dt: float) -> None:
        players = room.players
        if players and all(p.get("done") for p in players.values()):
            return  # the round is over for everyone: the NPCs rest
        npcs = room.get("/npcs", {})
        for npc in npcs.values():
            npc["heading"] = (npc["heading"] + self.rng.uniform(-20, 20)) % 360
            npc["x"] += math.cos(math.radians(npc["heading"])) * NPC_SPEED * dt
            npc["y"] += math.sin(math.radians(npc["heading"])) * NPC_SPEED * dt
            if not 0 <= npc["x"] <= SIZE:
                npc["x"], npc["heading"] = min(max(npc["x"], 0.0), SIZE), (180 - npc["heading"]) % 360
            if not 0 <= npc["y"] <= SIZE:
                npc["y"], npc["heading"] = min(max(npc["y"], 0.0), SIZE), -npc["heading"] % 360
            npc["x"], npc["y"], npc["heading"] = (round(npc["x"], 2), round(npc["y"], 2),
                                                  round(npc["heading"], 1))
        room.set("/npcs", npcs)

    def on_leave(self, room: Room, player: str, reason: str) -> None:
        self.last.pop(player, None)
