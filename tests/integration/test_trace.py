"""kasagi.trace against a real server: what the server records (trace_file) and what clients
record (AsyncClient(trace=...)) load into pandas, and every analysis agrees with what the
clients actually saw."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import kasagi
from kasagi import trace
from kasagi.client import AsyncClient
from kasagi.testing import child_env

# The server's trace file is written by a thread of its own: CI runs these under TSan too.
pytestmark = pytest.mark.tsan

pytest.importorskip("pandas")

ROOM = "match-1"


async def _play(server: kasagi.Server, directory: pathlib.Path) -> dict[str, Any]:
    """Two clients (JSON and MessagePack) in ROOM and in an untraced room, each recording;
    returns their final mirrors of ROOM."""
    alice = AsyncClient(trace=directory / "alice.ktrace", name="alice")
    bob = AsyncClient(trace=directory / "bob.ktrace", name="bob")
    await alice.connect(server.url, encoding="json")
    await bob.connect(server.url, encoding="msgpack")
    await alice.join(ROOM, playerName="alice")
    await bob.join(ROOM, playerName="bob")
    await alice.join("lobby")
    for i in range(20):
        await alice.update(ROOM, {"x": i, "pos": {"y": i * 0.5}}, ack=True)
        await bob.update(ROOM, {"hp": 100 - i}, ack=True)
        await alice.update("lobby", {"i": i})
    await bob.resync(ROOM)  # one FULL_STATE after the first: a resync in the trace
    # The last update's version (its ACK's) is the room's last: the ACK can come before the
    # delta that carries it, so both mirrors wait for it.
    last = await bob.update(ROOM, {"done": True}, ack=True)
    await alice.wait_version(ROOM, last)
    await bob.wait_version(ROOM, last)
    assert alice.rooms[ROOM].version == bob.rooms[ROOM].version == last
    mirrors = {"alice": alice.rooms[ROOM], "bob": bob.rooms[ROOM]}
    await alice.close()
    await bob.close()
    return mirrors


@pytest.fixture
def recorded(
    make_server: Callable[..., kasagi.Server], tmp_path: pathlib.Path
) -> tuple[trace.Trace, dict[str, Any], pathlib.Path]:
    server = make_server(tick_rate=20.0, trace_file=str(tmp_path / "server.ktrace"),
                         trace_rooms=["match-*"])
    mirrors = asyncio.run(_play(server, tmp_path))
    metrics = server.metrics()
    server.stop()  # closes the server's trace: everything is on disk
    assert "kasagi_trace_records_total" in metrics
    files = [tmp_path / f"{name}.ktrace" for name in ("server", "alice", "bob")]
    return trace.load(files), mirrors, tmp_path


def test_server_records_every_delta_of_traced_rooms_only(recorded: Any) -> None:
    t, mirrors, _ = recorded
    assert set(t.deltas["room"]) == {ROOM} and set(t.states["room"]) == {ROOM}
    assert t.states.iloc[0]["version"] == 0 and t.states.iloc[0]["state"] == {"players": {}}
    versions = t.deltas["version"].tolist()
    assert t.deltas["base_version"].tolist() == [0, *versions[:-1]]  # gapless chain
    assert versions[-1] == mirrors["alice"].version
    assert (t.deltas["updates"] == t.deltas["version"] - t.deltas["base_version"]).all()
    assert t.deltas["epoch"].nunique() == 1 and t.deltas["instance"].notna().all()
    alice_id = mirrors["alice"].player_id
    changed = {p for paths in t.deltas["paths"] for p in paths}
    assert f"/players/{alice_id}/x" in changed and f"/players/{alice_id}/pos/y" in changed


def test_bytes_per_encoding_are_what_the_clients_received(recorded: Any) -> None:
    t, _, _ = recorded
    got = t.received[t.received["type"] == "DELTA_UPDATE"]
    sizes = t.deltas.set_index("version")
    for r in got[got["room"] == ROOM].itertuples():
        column = "json_bytes" if r.client == "alice" else "msgpack_bytes"
        assert r.bytes == sizes.loc[int(r.version), column]
    assert (t.deltas["msgpack_bytes"] < t.deltas["json_bytes"]).all()


def test_latency_joins_server_sends_with_client_receipts(recorded: Any) -> None:
    t, _, _ = recorded
    lat = trace.latency(t)
    delivered = t.received[(t.received["type"] == "DELTA_UPDATE") & (t.received["room"] == ROOM)]
    assert len(lat) == len(delivered) > 0
    assert (lat["latency_ms"] >= 0).all() and (lat["latency_ms"] < 10_000).all()
    p = trace.latency_percentiles(t)
    assert p["count"] == len(lat) and p["p50"] <= p["p99"] <= p["p99.9"]


def test_state_at_any_version_replays_the_recorded_deltas(recorded: Any) -> None:
    t, mirrors, _ = recorded
    assert trace.state_at(t, ROOM) == mirrors["alice"].state == mirrors["bob"].state
    middle = int(t.deltas.iloc[len(t.deltas) // 2]["version"])
    expected: dict[str, Any] = {"players": {}}
    for r in t.deltas[t.deltas["version"] <= middle].itertuples():
        expected = kasagi.merge_patch(expected, r.patch)
    assert trace.state_at(t, ROOM, middle) == expected
    with pytest.raises(KeyError):
        trace.state_at(t, "no-such-room")
    with pytest.raises(ValueError):
        trace.state_at(t, ROOM, int(t.deltas["version"].max()) + 1)


def test_convergence_gaps_resyncs_and_updates_per_tick(recorded: Any) -> None:
    t, mirrors, _ = recorded
    view = trace.convergence(t)
    room = view[view["room"] == ROOM]
    assert set(room["client"]) == {"alice", "bob"}
    assert room["converged"].all() and room["server_agrees"].all()
    assert json.loads(room.iloc[0]["state"]) == mirrors["alice"].state
    assert trace.gaps(t).empty
    again = trace.resyncs(t)
    assert again[["client", "room"]].values.tolist() == [["bob", ROOM]]
    ticks = trace.updates_per_tick(t)
    assert ticks["updates"].sum() == mirrors["alice"].version
    assert (ticks["paths"] >= 1).all()


def test_bandwidth_adds_up_to_the_bytes_received(recorded: Any) -> None:
    t, _, _ = recorded
    per_client = trace.bandwidth(t, by="client", freq="100ms")
    for client in ("alice", "bob"):
        total = t.received.loc[t.received["client"] == client, "bytes"].sum()
        assert per_client[client].sum() * 0.1 == pytest.approx(total)
    per_room = trace.bandwidth(t, by="room")
    assert set(per_room.columns) == {ROOM, "lobby"}
    with pytest.raises(ValueError):
        trace.bandwidth(t, by="tick")


def test_summary_and_the_command_line(recorded: Any) -> None:
    t, mirrors, directory = recorded
    figures = trace.summary(t)
    assert figures["rooms"] == 2 and figures["clients"] == 2
    assert figures["deltas"] == len(t.deltas) and figures["updates"] == mirrors["alice"].version
    assert figures["gaps"] == 0 and figures["resyncs"] == 1 and figures["converged"] is True
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    files = [str(directory / f"{n}.ktrace") for n in ("server", "alice", "bob")]
    run = subprocess.run([sys.executable, "-m", "kasagi", "trace", "summary", *files, "--json"],
                         capture_output=True, text=True, env=child_env(), timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads(json.dumps(figures))
    text = subprocess.run([sys.executable, "-m", "kasagi", "trace", "summary", files[0]],
                          capture_output=True, text=True, env=child_env(), timeout=60)
    assert text.returncode == 0 and "updates_per_delta" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "kasagi", "trace", "summary",
                          str(directory / "missing.ktrace")],
                         capture_output=True, text=True, env=child_env(), timeout=60)
    assert bad.returncode == 1 and "missing.ktrace" in bad.stderr


def test_parquet_round_trip(recorded: Any) -> None:
    pytest.importorskip("pyarrow")
    t, _, directory = recorded
    back = trace.load(t.to_parquet(directory / "parquet"))
    for name in trace.TABLES:
        a, b = getattr(t, name), getattr(back, name)
        assert a.shape == b.shape, name
    for name in ("deltas", "states"):  # no missing values, so no None/NaN ambiguity
        assert getattr(t, name).to_dict("records") == getattr(back, name).to_dict("records")
    assert trace.summary(back) == trace.summary(t)


def test_a_trace_file_that_cannot_be_opened_starts_nothing(tmp_path: pathlib.Path) -> None:
    server = kasagi.Server(port=0, trace_file=str(tmp_path / "no-such-dir" / "x.ktrace"),
                           log_level="off")
    with pytest.raises(RuntimeError, match="no-such-dir"):
        server.start()
    assert not server.running


def test_a_cut_off_recording_loads_up_to_the_cut(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cut.ktrace"
    writer = trace.TraceWriter(path, source="client", client="c")
    for v in range(1, 4):
        writer.write(kind="recv", client="c", bytes=10,
                     msg={"type": "DELTA_UPDATE", "roomId": "r", "version": v,
                          "baseVersion": v - 1, "payload": {"v": v}})
    writer.close()
    data = path.read_bytes()
    cut = trace.load(data[:-3])
    assert cut.received["version"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="not a kasagi trace"):
        trace.load(b"\x01\x02")
    with pytest.raises(ValueError, match="not a kasagi trace"):
        trace.load(b"\x81\xa4kind\xa6header")  # a header without the format
