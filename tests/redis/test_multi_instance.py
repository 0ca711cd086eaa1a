"""Several ``kasagi serve`` instances sharing rooms through one real redis-server: clients
spread over them converge, and no ACKed update is lost when the authority is killed, when
Redis restarts, or when a paused authority comes back after losing its lease.

Each test writes what it measured (the scenario report) to artifacts/ for the record.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kasagi import AsyncClient, KasagiError
from kasagi.testing import KasagiInstance, RedisServer, run_scenario, wait_until

pytestmark = pytest.mark.redis

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FAST_LEASE = ("--lease-ttl", "1.0")


def record(name: str, report: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(report.as_dict(), indent=2, default=str))
    print(report.summary())


def owner_instance(redis: RedisServer, room: str) -> str | None:
    owner = redis.call("GET", f"room:{{{room}}}:owner")
    if owner is None:
        return None
    text = owner.decode() if isinstance(owner, bytes) else str(owner)
    return text.split("/")[0]


def instance_named(instances: list[KasagiInstance], instance_id: str) -> KasagiInstance:
    for instance in instances:
        health = instance.healthz()
        if health and health.get("instance") == instance_id:
            return instance
    raise AssertionError(f"no live instance is {instance_id}")


def assert_consistent(report: Any) -> None:
    assert report.converged, report.summary()
    assert report.acked_lost == 0, report.summary()
    assert report.versions_backwards == 0, report.summary()
    assert report.updates_acked > 0, report.summary()


@pytest.mark.tsan
@pytest.mark.parametrize("count", [2, 3])
def test_clients_on_several_instances_converge(
    redis_server: RedisServer, kasagi_instances: Any, count: int
) -> None:
    instances = kasagi_instances(*redis_server.kasagi_args(), count=count)
    report = asyncio.run(
        run_scenario([i.url for i in instances], clients=3 * count, rooms=2, rate=10,
                     before=2.0, after=0.0, encoding="msgpack")
    )
    record(f"multi_instance_{count}", report)
    assert_consistent(report)
    assert report.version_gaps == 0 and report.duplicates == 0, report.summary()
    assert report.updates_failed == 0, report.summary()
    assert len({owner_instance(redis_server, f"scenario-{r}") for r in range(2)} - {None}) >= 1


@pytest.mark.slow
def test_authority_killed_under_load_loses_no_acked_update(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    instances = kasagi_instances(*redis_server.kasagi_args(), *FAST_LEASE, count=3)

    def kill_authority(load: Any) -> None:
        victim = instance_named(instances, owner_instance(redis_server, "scenario-0") or "")
        victim.kill()

    report = asyncio.run(
        run_scenario([i.url for i in instances], kill_authority, clients=9, rooms=1, rate=10,
                     before=1.5, after=5.0, convergence_timeout=20.0)
    )
    record("authority_killed", report)
    assert_consistent(report)
    assert report.epochs >= 2, report.summary()  # a new authority took over
    assert report.recovery_s is not None, report.summary()


def test_room_recovers_from_redis_when_its_only_instance_restarts(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    (instance,) = kasagi_instances(*redis_server.kasagi_args())

    async def write_then_read() -> tuple[int, dict[str, Any], int, dict[str, Any]]:
        async with AsyncClient() as a:
            await a.connect(instance.url)
            await a.join("keep", playerName="Ann")
            for x in range(1, 31):
                await a.update("keep", {"x": x}, ack=True)  # returns once durable
            before = a.rooms["keep"]
            version, state = before.version, before.state
            instance.kill()
            instance.start()
            async with AsyncClient() as b:
                await b.connect(instance.url)
                await b.join("keep", playerName="Bob")
                after = b.rooms["keep"]
                return version, state, after.version, after.state

    version, state, version_after, state_after = asyncio.run(write_then_read())
    ann = next(p for p in state["players"].values() if p.get("playerName") == "Ann")
    recovered = [p for p in state_after["players"].values() if p.get("playerName") == "Ann"]
    assert recovered and recovered[0]["x"] == ann["x"] == 30
    assert version_after > version  # continues at the right version (+ Bob's join)


@pytest.mark.slow
def test_redis_restarted_under_load(redis_server: RedisServer, kasagi_instances: Any) -> None:
    instances = kasagi_instances(*redis_server.kasagi_args(), count=2)

    def restart_redis(load: Any) -> None:
        redis_server.node.kill()
        time.sleep(1.5)
        redis_server.node.start()

    report = asyncio.run(
        run_scenario([i.url for i in instances], restart_redis, clients=6, rooms=2, rate=10,
                     before=1.5, after=5.0, convergence_timeout=20.0, request_timeout=5.0)
    )
    record("redis_restarted", report)
    assert_consistent(report)


def test_local_play_continues_while_redis_is_down(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    (instance,) = kasagi_instances(*redis_server.kasagi_args())

    async def scenario() -> None:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(instance.url)
            await b.connect(instance.url)
            await a.join("local")
            await b.join("local")
            redis_server.node.kill()
            ack = asyncio.ensure_future(a.update("local", {"x": 1}, ack=True, timeout=30.0))
            # b sees the change although it cannot be made durable yet...
            await wait_for(lambda: a.rooms["local"].me.get("x") == 1
                           and b.rooms["local"].players[a.rooms["local"].player_id].get("x") == 1)
            assert not ack.done()  # ...and the ACK waits for Redis
            redis_server.node.start()
            await asyncio.wait_for(ack, 15.0)

    asyncio.run(scenario())


def test_two_instances_racing_for_empty_rooms_elect_one_authority(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    a_inst, b_inst = kasagi_instances(*redis_server.kasagi_args(), count=2)
    rooms = [f"race-{n}" for n in range(10)]

    async def scenario() -> None:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(a_inst.url)
            await b.connect(b_inst.url)
            for room in rooms:
                await asyncio.gather(a.join(room), b.join(room))
            for room in rooms:
                await wait_for(lambda: a.rooms[room].state == b.rooms[room].state
                               and len(a.rooms[room].state["players"]) == 2)
                assert a.rooms[room].epoch == b.rooms[room].epoch

    asyncio.run(scenario())
    owners = {room: owner_instance(redis_server, room) for room in rooms}
    ids = {a_inst.healthz()["instance"], b_inst.healthz()["instance"]}  # type: ignore[index]
    assert all(owner in ids for owner in owners.values()), owners


def test_deposed_authority_cannot_write(redis_server: RedisServer, kasagi_instances: Any) -> None:
    a_inst, b_inst = kasagi_instances(*redis_server.kasagi_args(), *FAST_LEASE, count=2)

    async def scenario() -> None:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(a_inst.url)
            await a.join("fence")
            await b.connect(b_inst.url)
            await b.join("fence")
            first_epoch = a.rooms["fence"].epoch
            assert owner_instance(redis_server, "fence") == a_inst.healthz()["instance"]  # type: ignore[index]
            a_inst.pause()  # past its lease: b's instance takes over
            await wait_for(lambda: b.rooms["fence"].epoch != first_epoch, timeout=10.0)
            a_inst.resume()
            # a's update reaches the deposed authority first: it must not be stored by it
            # (nor ACKed: it may be lost, which is allowed for an update never ACKed)
            await a.update("fence", {"late": True})
            await wait_for(lambda: a.rooms["fence"].epoch != first_epoch, timeout=15.0)
            await a.update("fence", {"after": True}, ack=True, timeout=10.0)
            await wait_for(lambda: a.rooms["fence"].state == b.rooms["fence"].state, timeout=10.0)

    asyncio.run(scenario())
    epochs = [entry[1] for entry in stream_entries(redis_server, "fence")]
    # once the new authority's epoch appears in the log, the old one never does again
    seen_new = False
    for epoch in epochs:
        if epoch != epochs[0]:
            seen_new = True
        elif seen_new:
            pytest.fail(f"the deposed authority wrote to the log after the takeover: {epochs}")
    assert seen_new, epochs


def stream_entries(redis: RedisServer, room: str) -> list[tuple[int, str]]:
    """(version, epoch) of each entry of room:{room}:ops, oldest first."""
    out = []
    for _id, fields in redis.call("XRANGE", f"room:{{{room}}}:ops", "-", "+"):
        text = [f.decode() if isinstance(f, bytes) else str(f) for f in fields]
        values = dict(zip(text[::2], text[1::2], strict=True))
        out.append((int(values["version"]), values["epoch"]))
    return out


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def test_each_instance_counts_the_members_connected_to_it(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    import kasagi

    a, b = kasagi_instances(*redis_server.kasagi_args(), count=2)
    clients = [kasagi.Client().connect(url) for url in [a.url] * 2 + [b.url] * 3]
    try:
        for client in clients:
            client.join("counted")
        wait_until(lambda: (a.healthz() or {}).get("members") == 2
                   and (b.healthz() or {}).get("members") == 3, 10,
                   "each instance counts its own members, authority or relay")
    finally:
        for client in clients:
            client.close()
    wait_until(lambda: (a.healthz() or {}).get("members") == 0
               and (b.healthz() or {}).get("members") == 0, 10, "and none once they left")


def test_broadcasts_reach_a_relays_members_once_per_room(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    # PLAYER_JOINED and PLAYER_LEFT reach every member, those on another instance too, but
    # not the member they are about; the authority publishes each once for all of a relay's
    # members, not once per member.
    a, b = kasagi_instances(*redis_server.kasagi_args(), count=2)
    room = "broadcast-1"

    async def play() -> int:
        owner, newcomer = AsyncClient(), AsyncClient()
        relayed = [AsyncClient() for _ in range(4)]
        try:
            await owner.connect(a.url)
            await owner.join(room)  # the first instance is the authority
            for client in relayed:
                await client.connect(b.url)
            last = relayed[-1]
            mark = last.mark()
            for client in relayed:
                await client.join(room)
            last_id = last.rooms[room].player_id
            for client in relayed[:-1]:  # everyone else hears of the last relayed join
                await client.wait_message("PLAYER_JOINED", room_id=room, timeout=5,
                                          predicate=lambda m: m["payload"]["playerId"] == last_id)
            await owner.wait_message("PLAYER_JOINED", room_id=room, timeout=5,
                                     predicate=lambda m: m["payload"]["playerId"] == last_id)
            version = await owner.update(room, {"x": 1}, ack=True)
            for client in relayed:
                await client.wait_version(room, version, timeout=5)
            assert not [m for m in list(last.messages)[mark:] if m["type"] == "PLAYER_JOINED"
                        and m["payload"]["playerId"] == last_id]  # not about itself

            before = a.metric("kasagi_redis_publish_total")
            await newcomer.connect(a.url)
            await newcomer.join(room)
            new_id = newcomer.rooms[room].player_id
            for client in relayed:
                await client.wait_message("PLAYER_JOINED", room_id=room, timeout=5,
                                          predicate=lambda m: m["payload"]["playerId"] == new_id)
            version = await newcomer.update(room, {"y": 1}, ack=True)
            for client in relayed:
                await client.wait_version(room, version, timeout=5)
            published = a.metric("kasagi_redis_publish_total") - before
            await newcomer.leave(room)
            for client in relayed:
                await client.wait_message("PLAYER_LEFT", room_id=room, timeout=5,
                                          predicate=lambda m: m["payload"]["playerId"] == new_id)
            return int(published)
        finally:
            for client in [owner, newcomer, *relayed]:
                await client.close()

    published = asyncio.run(play())
    # One broadcast, and the deltas of the join and of the update (appended and published in
    # one script each): four relayed members got it all without a publish each.
    assert published <= 3, published


def test_read_only_token_sets_no_attributes_through_a_relay(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    from keys import SECRET, token

    first, second = kasagi_instances(*redis_server.kasagi_args(), "--jwt-secret", SECRET,
                                     count=2)

    async def play() -> tuple[KasagiError, dict[str, Any]]:
        async with AsyncClient() as a, AsyncClient() as viewer:
            await a.connect(first.url, token=token(sub="ann"))
            await viewer.connect(second.url, token=token(sub="v", write=False))
            await a.join("watched", name="Ann")  # the first instance is the authority
            with pytest.raises(KasagiError) as refused:
                await viewer.join("watched", name="V")  # would go through the relay
            mirror = await viewer.join("watched")  # without attributes it may watch
            return refused.value, dict(mirror.state)

    refused, state = asyncio.run(play())
    assert refused.code == "FORBIDDEN" and "read-only" in refused.message
    assert state["players"] == {"ann": {"name": "Ann"}, "v": {}}
