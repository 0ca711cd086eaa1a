"""Arena: bots chase and tag each other around a 100x100 arena, kept in sync by Kasagi.

Each bot is one :class:`kasagi.AsyncClient` that joins a room (``arena-0``, ``arena-1``...)
and writes only its own player entry (``players.<playerId>``: x, y, heading, score) several
times a second. The server coalesces the changes of each tick into one DELTA_UPDATE per room,
and every bot's client keeps a mirror of the room current: the bots "see" each other only
through that mirror. At the end, every mirror must equal the server's state.

The rooms are of the room type ``Arena`` (app.py, beside this file): the server moves NPCs
every tick and cuts back moves that are too fast. ``--cheaters`` bots teleport and inflate
their score; at the end the program checks that the server corrected them (their positions
in the deltas never outran the speed limit) and that the NPCs moved.

    python examples/arena/bots.py                          # embedded server
    python examples/arena/bots.py --url ws://127.0.0.1:8080/sync --bots 20 --rooms 4

Exit status: 0 when every mirror converged (and the room type did its work), 1 when not,
130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import math
import random
import sys
from dataclasses import dataclass

import kasagi
from app import MAX_SPEED, SLACK, Arena  # the room type, beside this file
from kasagi.client import encode_frame

SIZE = 100.0  # the arena is SIZE x SIZE
SPEED = 20.0  # arena units per second
TAG_RANGE = 5.0  # a bot can tag another one this close
TAG_COOLDOWN = 2.0  # seconds between two tags by the same bot
NAMES = ["ada", "bob", "cyd", "dee", "eve", "fox", "gus", "hal", "ivy", "jo"]
COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0"]


@dataclass
class RoomStats:
    """What the bots of one room received, summed over them (for the status lines)."""

    deltas: int = 0
    bytes: int = 0


class Bot:
    """One player: its own client (one connection), where it is, and its room's mirror."""

    def __init__(self, index: int, room: str, cheater: bool = False) -> None:
        lap = index // len(NAMES)  # ada, bob, ... jo, then ada1, bob1, ...
        self.name = NAMES[index % len(NAMES)] + (str(lap) if lap else "")
        self.color = COLORS[index % len(COLORS)]
        self.room = room
        self.rng = random.Random(index)
        self.x, self.y = self.rng.uniform(0, SIZE), self.rng.uniform(0, SIZE)
        self.heading = self.rng.uniform(0, 360)  # degrees; 0 is +x, 90 is +y
        self.score = 0
        self.last_tag = -TAG_COOLDOWN
        self.cheater = cheater  # teleports and inflates its score; the server corrects it
        # A cheater's own positions as the room accepted them (in the deltas), and how many
        # moves it sent over how long: what the speed check at the end needs.
        self.trail: list[tuple[float, float]] = []
        self.moves, self.started, self.finished = 0, 0.0, 0.0
        self.client = kasagi.AsyncClient()
        self.mirror: kasagi.RoomMirror  # set by join()

    async def join(self, url: str, encoding: str, stats: RoomStats) -> None:
        await self.client.connect(url, encoding=encoding)

        def count(msg: dict) -> None:
            # The client counts messages, not bytes: re-encode each delta for its size (with
            # msgpack exactly the frame that came in; with JSON about the same).
            stats.deltas += 1
            stats.bytes += len(encode_frame(self.client.encoding, msg))
            if self.cheater and (room := self.client.rooms.get(self.room)) is not None:
                me = room.players.get(room.player_id, {})
                if "x" in me and (not self.trail or self.trail[-1] != (me["x"], me["y"])):
                    self.trail.append((me["x"], me["y"]))  # a position the room accepted

        self.client.on("DELTA_UPDATE", count)  # runs after the mirror has applied the delta
        # The join attributes become the first fields of this bot's player entry.
        self.mirror = await self.client.join(self.room, name=self.name, color=self.color)

    def nearest(self) -> tuple[float, dict]:
        """The closest other bot as this bot's mirror shows the room: (distance, its entry).
        The mirror is all a bot knows of the others, kept current by the client."""
        others = [p for pid, p in self.mirror.players.items()
                  if pid != self.mirror.player_id and "x" in p]  # not ourselves; has moved
        dist = lambda p: math.hypot(p["x"] - self.x, p["y"] - self.y)  # noqa: E731
        return min(((dist(p), p) for p in others), default=(math.inf, {}), key=lambda t: t[0])

    def move(self, dt: float) -> None:
        """Chases the nearest bot (turning at most 15 degrees a step, with some jitter),
        steps forward, and bounces off the walls."""
        _, target = self.nearest()
        if target:
            wanted = math.degrees(math.atan2(target["y"] - self.y, target["x"] - self.x))
            turn = (wanted - self.heading + 180) % 360 - 180  # shortest way round, -180..180
            self.heading += max(-15.0, min(15.0, turn))
        self.heading = (self.heading + self.rng.uniform(-10, 10)) % 360
        self.x += math.cos(math.radians(self.heading)) * SPEED * dt
        self.y += math.sin(math.radians(self.heading)) * SPEED * dt
        if not 0 <= self.x <= SIZE:  # left/right wall: reverse the x direction
            self.x, self.heading = min(max(self.x, 0.0), SIZE), (180 - self.heading) % 360
        if not 0 <= self.y <= SIZE:  # top/bottom wall: reverse the y direction
            self.y, self.heading = min(max(self.y, 0.0), SIZE), -self.heading % 360

    def tag(self, now: float) -> str | None:
        """Tags the nearest bot if it is within reach (at most once per cooldown), then runs
        the other way; returns its name. Only our own score changes: a bot may write nothing
        but its own player entry."""
        distance, other = self.nearest()
        if distance > TAG_RANGE or now - self.last_tag < TAG_COOLDOWN:
            return None
        self.score += 1
        self.last_tag = now
        self.heading = (self.heading + 180) % 360
        return str(other.get("name"))

    def patch(self) -> dict:
        if self.cheater:  # anywhere at once, and +5 a time: the room type cuts both back
            self.x, self.y = self.rng.uniform(0, SIZE), self.rng.uniform(0, SIZE)
            self.score += 5
        # Floats stay floats and ints stay ints on the wire, in both encodings.
        return {"x": round(self.x, 2), "y": round(self.y, 2),
                "heading": round(self.heading, 1), "score": self.score}

    async def play(self, seconds: float, rate: float) -> int:
        """Moves at ``rate`` updates/s for ``seconds``; returns the room version that holds
        this bot's last update."""
        loop = asyncio.get_running_loop()
        now = start = self.started = loop.time()
        while now < start + seconds:
            self.move(1 / rate)
            patch = self.patch()
            tagged = self.tag(now)
            if tagged is not None:
                patch["tagged"] = tagged
            await self.client.update(self.room, patch)  # fire and forget: no ACK awaited
            self.moves += 1
            now += 1 / rate  # a fixed schedule: no drift however long a send takes
            await asyncio.sleep(max(0.0, now - loop.time()))
        # The ACK of a last update means the server has applied everything this bot sent
        # (one connection's messages are applied in order), and names the version. `done`:
        # once every player of the room is done, the room type stops moving the NPCs, so
        # the room goes quiet and the mirrors can be compared with the server's state.
        version = await self.client.update(self.room, {**self.patch(), "done": True}, ack=True)
        self.moves += 1
        self.finished = loop.time()
        assert version is not None
        return version

    async def close(self) -> None:
        # Leave first: the others see PLAYER_LEFT at once. Closing alone would keep our
        # entry for the session grace period, in case we came back.
        with contextlib.suppress(Exception):
            await self.client.leave(self.room, timeout=2)
        await self.client.close()


async def report(bots: list[Bot], stats: dict[str, RoomStats]) -> None:
    """Prints one status line per room, once a second, until cancelled."""
    previous = {room: RoomStats() for room in stats}
    for second in itertools.count(1):
        await asyncio.sleep(1)
        for room, now in stats.items():
            members = [b for b in bots if b.room == room]
            mirror = members[0].mirror  # any member's mirror: they all show the same room
            deltas, size = now.deltas - previous[room].deltas, now.bytes - previous[room].bytes
            previous[room] = RoomStats(now.deltas, now.bytes)
            top = sorted(mirror.players.values(), key=lambda p: -p.get("score", 0))[:3]
            board = " ".join(f"{p.get('name')}:{p.get('score', 0)}" for p in top)
            corrected = mirror.state.get("stats", {}).get("corrected", "-")
            print(f"[{second:3d}s] {room}  players {len(mirror.players):2d}  v{mirror.version:<6}"
                  f" deltas/s {deltas:4d} ({deltas // len(members)}/bot)"
                  f"  {size / 1024:6.1f} KiB/s  top: {board}  corrected {corrected}", flush=True)


def speed_limit_held(bot: Bot) -> bool:
    """Whether a cheater's accepted positions kept to the speed limit. The room accepts a
    move of at most ``MAX_SPEED`` x (time since the previous accepted move) + ``SLACK``, so
    the path through all of them is at most ``MAX_SPEED`` x (first move to last ACK) +
    ``SLACK`` per move (0.01 more for the rounding of each), and the positions the deltas
    showed (some of them) make a path no longer than that. A teleporting cheater left
    alone covers about half the arena per move."""
    path = sum(math.dist(a, b) for a, b in itertools.pairwise(bot.trail))
    limit = MAX_SPEED * (bot.finished - bot.started) + (SLACK + 0.01) * bot.moves
    if len(bot.trail) < 2 or path > limit:
        print(f"{bot.room}: cheater {bot.name} moved {path:.0f} units through"
              f" {len(bot.trail)} accepted positions in {bot.finished - bot.started:.1f} s;"
              f" the speed limit allows {limit:.0f}", file=sys.stderr)
        return False
    return True


def check_room_type(bots: list[Bot], npcs_at_start: dict[str, dict]) -> bool:
    """Checks what the Arena room type did: NPCs moved, cheaters were corrected (no score
    above one point per update; their accepted positions no faster than the speed limit)."""
    ok = True
    for room in sorted({b.room for b in bots}):
        state = next(b for b in bots if b.room == room).mirror.state
        if "npcs" not in state:
            print(f"{room}: no NPCs: the server does not run the Arena room type "
                  "(kasagi serve --app examples/arena/app.py:Arena)", file=sys.stderr)
            return False
        if state["npcs"] == npcs_at_start[room]:
            print(f"{room}: the NPCs did not move", file=sys.stderr)
            ok = False
        cheaters = [b for b in bots if b.room == room and b.cheater]
        for b in cheaters:
            entry = state["players"].get(b.mirror.player_id, {})
            if entry.get("score", 0) >= b.score:
                print(f"{room}: cheater {b.name}'s score was not cut back", file=sys.stderr)
                ok = False
            ok = speed_limit_held(b) and ok
        if cheaters and not state.get("stats", {}).get("corrected"):
            print(f"{room}: no correction counted", file=sys.stderr)
            ok = False
    return ok


async def verify(bots: list[Bot], finals: list[int], server: kasagi.Server | None) -> bool:
    """Checks that every mirror of a room equals the server's state (embedded server) or,
    without access to the server, that the mirrors all agree at the same version."""
    ok = True
    for room in sorted({b.room for b in bots}):
        members = [b for b in bots if b.room == room]
        truth = server.room_state(room) if server is not None else None
        # No more changes are coming: the last version is the server's, or the highest
        # version any member's final update was acknowledged in.
        acked = [v for b, v in zip(bots, finals, strict=True) if b.room == room]
        target = truth["version"] if truth else max(acked)
        await asyncio.gather(*(b.client.wait_version(room, target) for b in members))
        expected = truth or {"version": target, "state": members[0].mirror.state}
        for b in members:
            if b.mirror.version != expected["version"] or b.mirror.state != expected["state"]:
                print(f"{room}: {b.name}'s mirror differs at version {b.mirror.version}"
                      f" (expected {expected['version']})", file=sys.stderr)
                ok = False
    return ok


async def run(args: argparse.Namespace, url: str, server: kasagi.Server | None) -> bool:
    stats = {f"arena-{r}": RoomStats() for r in range(args.rooms)}
    bots = [Bot(i, f"arena-{i % args.rooms}", cheater=i < args.cheaters) for i in range(args.bots)]
    try:
        await asyncio.gather(*(b.join(url, args.encoding, stats[b.room]) for b in bots))
        npcs = {b.room: copy.deepcopy(b.mirror.state.get("npcs")) for b in bots}
        print(f"{args.bots} bots ({args.cheaters} cheating) in {args.rooms} rooms on {url}"
              f" ({args.encoding}), {args.seconds:g} s at {args.rate:g} updates/s;"
              f" speed limit {MAX_SPEED:g}", flush=True)
        reporter = asyncio.create_task(report(bots, stats))
        finals = await asyncio.gather(*(b.play(args.seconds, args.rate) for b in bots))
        reporter.cancel()
        converged = await verify(bots, finals, server)
        return check_room_type(bots, npcs) and converged
    except (kasagi.KasagiError, ConnectionError, TimeoutError, OSError) as err:
        print(f"failed: {err!r}", file=sys.stderr)  # refused, unreachable, or no answer
        return False
    finally:  # also on Ctrl-C, which cancels this coroutine
        for b in bots:  # updates sent without ack=True are refused by ERROR messages
            if b.client.errors:
                first = b.client.errors[0].get("payload")
                print(f"{b.name}: {len(b.client.errors)} ERROR(s), first {first}", file=sys.stderr)
        await asyncio.gather(*(b.close() for b in bots), return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server (default: start one in this process)")
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--bots", type=int, default=8, help="in all, spread over the rooms")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="updates per second per bot")
    parser.add_argument("--encoding", choices=["json", "msgpack"], default="msgpack")
    parser.add_argument("--cheaters", type=int, default=1,
                        help="bots that teleport and inflate their score (the first ones)")
    args = parser.parse_args()
    if args.rooms < 1 or args.bots < args.rooms or args.rate <= 0 or args.seconds < 0:
        parser.error("need --rooms >= 1, --bots >= --rooms, --rate > 0, --seconds >= 0")
    try:
        if args.url:
            ok = asyncio.run(run(args, args.url, None))
        else:
            server = kasagi.Server(tick_rate=20, log_level="warning")
            server.add_room_type(Arena)  # what `kasagi serve --app app.py:Arena` does
            with server:
                ok = asyncio.run(run(args, server.url, server))
    except KeyboardInterrupt:  # asyncio.run cancelled run(), whose finally left the rooms
        print("interrupted", file=sys.stderr)
        return 130
    if ok:
        print("converged")
    return 0 if ok else 1  # what went wrong is on stderr


if __name__ == "__main__":
    sys.exit(main())
