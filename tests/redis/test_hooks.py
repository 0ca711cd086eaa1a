"""Room hooks with rooms shared through Redis: they run at the room's authority only, once
per message, whichever instance the client is connected to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kasagi import AsyncClient, KasagiError
from kasagi.testing import RedisServer

from .test_multi_instance import FAST_LEASE, wait_for

# Hooks with relays and leases, each call under the GIL on a hook thread: CI runs these
# under ThreadSanitizer too.
pytestmark = [pytest.mark.redis, pytest.mark.tsan]

APP = Path(__file__).with_name("hooks_app.py")


def test_hooks_run_only_at_the_authority(redis_server: RedisServer, kasagi_instances: Any) -> None:
    first, second = kasagi_instances(*redis_server.kasagi_args(), "--app", f"{APP}:Counted",
                                     count=2)

    async def play() -> dict[str, Any]:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(first.url)
            await b.connect(second.url)
            await a.join("counted-1")       # the first instance becomes the authority
            mirror = await b.join("counted-1")  # the second relays
            await b.update("counted-1", {"x": 1}, ack=True)
            version = await a.update("counted-1", {"x": 2}, ack=True)
            await b.wait_version("counted-1", version)
            state = dict(mirror.state)
            # Events and kicks reach members connected to a relay as well.
            await a.update("counted-1", {"shout": 1}, ack=True)
            event = await b.wait_message("ROOM_EVENT", timeout=5)
            assert event["payload"] == {"name": "shout", "data": {"from": a.rooms["counted-1"].player_id}}
            await a.update("counted-1", {"kick": mirror.player_id}, ack=True)
            left = await b.wait_message("PLAYER_LEFT", timeout=5)
            assert left["payload"] == {"playerId": mirror.player_id, "reason": "kicked",
                                       "message": "out"}
            return state

    state = asyncio.run(play())
    hooks = state["hooks"]
    assert hooks["joins"] == 2 and hooks["updates"] == 2  # once each, not once per instance
    assert list(hooks["created_in"]) == [hooks["updated_in"]]  # one process ran them all
    assert sorted(p["x"] for p in state["players"].values()) == [10, 20]


def test_a_new_authority_creates_its_hooks_on_the_recovered_state(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    first, second = kasagi_instances(*redis_server.kasagi_args(), *FAST_LEASE,
                                     "--app", f"{APP}:Counted", count=2)

    async def play() -> dict[str, Any]:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(first.url)
            await b.connect(second.url)
            await a.join("counted-2")           # the first instance is the authority
            mirror = await b.join("counted-2")  # the second relays
            await b.update("counted-2", {"x": 1}, ack=True)  # acked: durable in Redis
            first.kill()
            # The second instance takes the room over once the lease runs out; until then
            # its updates are refused (or time out) and are tried again.
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                try:
                    version = await b.update("counted-2", {"x": 2}, ack=True, timeout=2)
                    break
                except (KasagiError, asyncio.TimeoutError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            await b.wait_version("counted-2", version)
            return dict(mirror.state)

    state = asyncio.run(play())
    hooks = state["hooks"]
    # on_create ran again at the new authority, on the recovered document: it merged its
    # own pid into created_in, which still names the first instance
    assert set(hooks["created_in"]) == {str(first.pid), str(second.pid)}
    assert hooks["updated_in"] == str(second.pid)
    assert [p["x"] for p in state["players"].values() if "x" in p] == [20]


def test_a_deposed_authority_disposes_of_its_hooks(
    redis_server: RedisServer, kasagi_instances: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notes = tmp_path / "notes"
    notes.touch()
    monkeypatch.setenv("KASAGI_TEST_HOOK_NOTES", str(notes))  # the instances inherit it
    first, second = kasagi_instances(*redis_server.kasagi_args(), *FAST_LEASE,
                                     "--app", f"{APP}:Noted", count=2)

    def lines() -> list[str]:
        return notes.read_text().splitlines()

    async def play() -> None:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(first.url)
            await b.connect(second.url)
            await a.join("noted-1")             # the first instance is the authority
            mirror = await b.join("noted-1")
            epoch = mirror.epoch
            first.pause()                       # past its lease: the second takes over
            await b.wait_for(lambda: mirror.epoch != epoch or None, timeout=15)
            first.resume()                      # and finds it has lost the room
            await wait_for(lambda: f"{first.pid} dispose noted-1" in lines(), timeout=15)

    asyncio.run(play())
    assert lines()[:2] == [f"{first.pid} create noted-1", f"{second.pid} create noted-1"]
    assert f"{first.pid} dispose noted-1" in lines()


def test_joins_through_a_relay_carry_the_verified_claims(
    redis_server: RedisServer, kasagi_instances: Any
) -> None:
    from keys import SECRET, token

    first, second = kasagi_instances(*redis_server.kasagi_args(), "--app", f"{APP}:Claimed",
                                     "--jwt-secret", SECRET, count=2)

    async def play() -> dict[str, Any]:
        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(first.url, token=token(sub="ann", team="red"))
            await b.connect(second.url, token=token(sub="bob", team="blue"))
            await a.join("claimed-1")        # the first instance is the authority
            mirror = await b.join("claimed-1")  # bob's join comes through the relay
            assert mirror.player_id == "bob"    # his token's `sub`, not a random id
            await b.wait_for(lambda: len(mirror.state.get("seen", {})) == 2 or None)
            return dict(mirror.state)

    state = asyncio.run(play())
    seen = state["seen"]
    assert seen["ann"]["team"] == "red" and seen["bob"]["team"] == "blue"
    assert seen["bob"]["sub"] == "bob"
    assert seen["ann"]["pid"] == seen["bob"]["pid"]  # both at the authority
