"""Convergence: many clients in several rooms send random updates; at the end every client's
mirror equals the server's state, and the versions each client saw have no gaps."""

from __future__ import annotations

import asyncio
import random

import pytest

import kasagi

# Connections and rooms on several I/O threads: CI runs these under ThreadSanitizer too.
pytestmark = pytest.mark.tsan

KEYS = ["x", "y", "hp", "name", "pos", "inv", "flag"]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 0:
        return rng.randint(-1000, 1000)
    if kind == 1:
        return rng.uniform(-1e3, 1e3)
    if kind == 2:
        return rng.choice(["a", "b", "", "ünï", "x" * 20])
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return [rng.randint(0, 9) for _ in range(rng.randrange(4))]
    if kind == 5:
        return None  # delete
    return {k: random_value(rng, depth + 1) for k in rng.sample(KEYS, rng.randrange(1, 4))}


def random_patch(rng: random.Random) -> dict:
    return {k: random_value(rng) for k in rng.sample(KEYS, rng.randrange(1, 4))}


async def run_clients(server: kasagi.Server, rooms: int, per_room: int, updates: int,
                      seed: int) -> list[kasagi.AsyncClient]:
    rng = random.Random(seed)
    clients: list[tuple[kasagi.AsyncClient, str]] = []
    for r in range(rooms):
        for c in range(per_room):
            client = kasagi.AsyncClient()
            await client.connect(server.url, encoding=("json", "msgpack")[(r + c) % 2])
            room = f"conv-{r}"
            await client.join(room, n=c)
            clients.append((client, room))

    async def play(client: kasagi.AsyncClient, room: str, crng: random.Random) -> None:
        for i in range(updates):
            patch = random_patch(crng)
            if crng.random() < 0.3:  # shared fields: concurrent writers, last writer wins
                await client.update(room, patch, path="/shared", ack=crng.random() < 0.5)
            else:
                await client.update(room, patch, ack=i % 5 == 0)
            await asyncio.sleep(crng.uniform(0, 0.01))

    await asyncio.gather(*(play(c, room, random.Random(rng.random())) for c, room in clients))
    for client, room in clients:
        final = server.room_state(room)
        await client.wait_version(room, final["version"], timeout=10)
    return [c for c, _ in clients]


@pytest.mark.parametrize("tick_rate, rooms, per_room, updates", [
    (20, 4, 8, 25),
    (0, 4, 8, 25),
    pytest.param(30, 10, 20, 100, marks=pytest.mark.slow),
])
def test_clients_converge_with_gapless_versions(make_server, tick_rate, rooms, per_room,
                                                updates):
    server = make_server(tick_rate=tick_rate, writable_paths=["/players/$self", "/shared"],
                         rate_limit=1000, rate_burst=1000,
                         # every client comes from 127.0.0.1 and joins at once
                         join_rate_per_ip=0, max_connections_per_ip=0)

    async def main() -> None:
        clients = await run_clients(server, rooms, per_room, updates, seed=tick_rate)
        try:
            for client in clients:
                for room, mirror in client.rooms.items():
                    truth = server.room_state(room)
                    assert mirror.version == truth["version"]
                    assert mirror.state == truth["state"], f"{room} diverged"
                    assert mirror.resyncs == 0 and not mirror.rejected, mirror.rejected
                    versions = list(mirror.versions)
                    assert versions == sorted(versions)  # never backwards
                assert not client.errors, list(client.errors)
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    asyncio.run(main())


def test_blocking_client_resumes_after_a_dropped_connection(make_server):
    server = make_server(tick_rate=20, session_grace=10)
    with kasagi.Client().connect(server.url, encoding="msgpack") as a, \
            kasagi.Client().connect(server.url) as b:
        mirror = a.join("resume", name="a")
        pid = mirror.player_id
        b.join("resume")
        a.drop_connection()
        for x in range(10):
            b.update("resume", {"x": x}, ack=True)
        final = server.room_state("resume")["version"]
        a.wait_version("resume", final, timeout=10)
        assert a.rooms["resume"].player_id == pid
        assert a.rooms["resume"].state == server.room_state("resume")["state"]
        assert a.reconnects == 1
        # The other member never saw the player leave.
        assert not [m for m in b.aio.messages if m["type"] == "PLAYER_LEFT"]
