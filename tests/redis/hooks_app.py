"""A room type that counts where and how often its hooks run (tests/redis/test_hooks.py)."""

from __future__ import annotations

import os

from kasagi import RoomType


class Counted(RoomType):
    rooms = "counted-*"

    def on_create(self, room):
        room.patch("/hooks", {"created_in": {str(os.getpid()): True}, "joins": 0, "updates": 0})

    def on_join(self, room, player, attrs):
        room.set("/hooks/joins", room.get("/hooks/joins", 0) + 1)

    def on_update(self, room, player, patch):
        if "shout" in patch:
            room.broadcast("shout", {"from": player})
            return {}
        if "kick" in patch:
            room.kick(patch["kick"], "out")
            return {}
        room.set("/hooks/updates", room.get("/hooks/updates", 0) + 1)
        room.set("/hooks/updated_in", str(os.getpid()))
        return {**patch, "x": patch.get("x", 0) * 10}  # visibly the authority's correction


class Claimed(RoomType):
    """Writes what on_join saw of each player's token claims into the state."""

    rooms = "claimed-*"

    def on_join(self, room, player, attrs, claims):
        room.set(f"/seen/{player}", {"team": claims.get("team"), "sub": claims.get("sub"),
                                     "pid": os.getpid()})


class Noted(RoomType):
    """Appends "<pid> <hook> <room>" to the file named by $KASAGI_TEST_HOOK_NOTES for its
    lifecycle hooks, which a deposed authority runs where no client sees their effects."""

    rooms = "noted-*"

    def _note(self, hook, room):
        with open(os.environ["KASAGI_TEST_HOOK_NOTES"], "a") as notes:
            notes.write(f"{os.getpid()} {hook} {room.id}\n")

    def on_create(self, room):
        self._note("create", room)

    def on_dispose(self, room):
        self._note("dispose", room)
