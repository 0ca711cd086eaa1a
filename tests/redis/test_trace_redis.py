"""A room's Redis log read as a trace: kasagi.trace.load("redis://...", room=...) gives the
snapshot and every logged delta, and replays them to the state the clients saw."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import kasagi
from kasagi import AsyncClient, trace
from kasagi.testing import RedisServer

pytestmark = pytest.mark.redis
pytest.importorskip("pandas")


@pytest.mark.parametrize("key_prefix", ["", "game1:"])
def test_the_ops_stream_loads_as_a_trace(
    redis_server: RedisServer, server_factory: Callable[..., kasagi.Server], key_prefix: str
) -> None:
    # snapshot_every 10: the log holds a snapshot and the entries on both sides of it.
    server = server_factory(redis=redis_server.url, key_prefix=key_prefix, tick_rate=0.0,
                            snapshot_every=10)

    async def play() -> Any:
        async with AsyncClient() as a:
            await a.connect(server.url, encoding="msgpack")
            await a.join("logged", playerName="ann")
            for i in range(25):
                await a.update("logged", {"x": i, "deep": {"i": i}}, ack=True)
            return a.rooms["logged"]

    mirror = asyncio.run(play())
    t = trace.load(redis_server.url, room="logged", key_prefix=key_prefix)
    # The new room's document at version 0 (the log is not trimmed yet) and the snapshot.
    assert t.states["version"].tolist()[0] == 0 and len(t.states) == 2
    snapshot = t.states.iloc[1]
    assert snapshot["version"] >= 10
    from_the_start = trace.Trace.from_rows({"states": [t.states.iloc[0].to_dict()],
                                            "deltas": t.deltas.to_dict("records")})
    assert trace.state_at(from_the_start, "logged", snapshot["version"]) == snapshot["state"]
    versions = t.deltas["version"].tolist()
    assert versions == list(range(1, mirror.version + 1))  # every delta, tick_rate 0
    assert (t.deltas["base_version"] == t.deltas["version"] - 1).all()
    assert (t.deltas["msgpack_bytes"] > 0).all() and t.deltas["epoch"].nunique() == 1
    assert trace.state_at(t, "logged") == mirror.state
    pid = mirror.player_id
    assert trace.state_at(t, "logged", 5)["players"][pid]["x"] == 3  # join is version 1
    assert f"/players/{pid}/deep/i" in t.deltas.iloc[-1]["paths"]
    empty = trace.load(redis_server.url, room="never-used", key_prefix=key_prefix)
    assert empty.deltas.empty and empty.states.empty
    with pytest.raises(ValueError, match="room="):
        trace.load(redis_server.url)


def test_only_one_plain_redis_is_read(redis_server: RedisServer) -> None:
    # No TLS, Sentinel or Cluster URLs: said plainly, before asking for room=.
    for url in ("rediss://127.0.0.1:6380/0", "redis+sentinel://127.0.0.1:26379/kasagi",
                "sentinel://127.0.0.1:26379"):
        with pytest.raises(ValueError, match="one plain Redis"):
            trace.load(url)
        with pytest.raises(ValueError, match="one plain Redis"):
            trace.load_redis(url, room="logged")
    # A command Redis refuses (here AUTH, with no password set) is a ValueError too, which
    # `kasagi trace summary` reports in one line.
    wrong = redis_server.url.replace("redis://", "redis://:wrong@")
    with pytest.raises(ValueError, match="refused a command"):
        trace.load(wrong, room="logged")
