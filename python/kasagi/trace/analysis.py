"""Analyses of a :class:`~kasagi.trace.Trace`: latency, bandwidth, updates per tick, gaps
and resyncs, the state at any version, convergence across clients, and a summary.

Server records tell when a delta left its room; client records tell when each client
received it. Latency joins the two on (room, epoch, version), so it needs both, from one
machine or from machines whose clocks are synchronized (NTP keeps them within about a
millisecond on a LAN).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kasagi.mirror import merge_patch, merge_patch_in_place
from kasagi.trace.load import Trace, _pandas

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "bandwidth",
    "convergence",
    "format_summary",
    "gaps",
    "latency",
    "latency_percentiles",
    "resyncs",
    "state_at",
    "summary",
    "updates_per_tick",
]

_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _received(trace: Trace, kind: str) -> pd.DataFrame:
    frame = trace.received
    return frame[frame["type"] == kind]


def latency(trace: Trace) -> pd.DataFrame:
    """Server send to client receive, per delivered delta: client, room, version, sent_t,
    t (received), latency_ms. Needs server and client records (empty otherwise)."""
    pd = _pandas()
    sent = trace.deltas[["room", "epoch", "version", "t"]].rename(columns={"t": "sent_t"})
    sent = sent.drop_duplicates(["room", "epoch", "version"])
    got = _received(trace, "DELTA_UPDATE")[["client", "room", "epoch", "version", "t"]]
    if got.empty or sent.empty:
        columns = ["client", "room", "version", "sent_t", "t", "latency_ms"]
        return pd.DataFrame(columns=columns)
    got = got.astype({"version": "int64"})
    joined = got.merge(sent, on=["room", "epoch", "version"], how="inner")
    joined["latency_ms"] = (joined["t"] - joined["sent_t"]) * 1000.0
    return joined[["client", "room", "version", "sent_t", "t", "latency_ms"]].reset_index(
        drop=True
    )


def latency_percentiles(
    trace: Trace, percentiles: tuple[float, ...] = _PERCENTILES
) -> pd.Series:
    """Percentiles of :func:`latency` in milliseconds, indexed ``p50``, ``p90``, ``p99``,
    ``p99.9``, plus ``count``; NaN where there is no delivery to measure."""
    pd = _pandas()
    values = latency(trace)["latency_ms"].astype(float)
    index = [f"p{p:g}" for p in percentiles]
    data = [values.quantile(p / 100.0) if len(values) else float("nan") for p in percentiles]
    return pd.Series([*data, float(len(values))], index=[*index, "count"], name="latency_ms")


def bandwidth(trace: Trace, by: str = "client", freq: str = "1s") -> pd.DataFrame:
    """Bytes per second received, over time: one column per client (``by="client"``) or per
    room (``by="room"``), one row per ``freq`` interval (a pandas offset such as ``"1s"``),
    indexed by timestamp. Without client records, ``by="room"`` counts each delta's
    MessagePack size once (what one member receives)."""
    pd = _pandas()
    if by not in ("client", "room"):
        raise ValueError(f"bandwidth: by must be 'client' or 'room', not {by!r}")
    frame = trace.received[[by, "t", "bytes"]].dropna(subset=[by])
    if frame.empty and by == "room":
        frame = trace.deltas[["room", "t", "msgpack_bytes"]].rename(
            columns={"msgpack_bytes": "bytes"}
        )
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(time=pd.to_datetime(frame["t"], unit="s"))
    seconds = pd.Timedelta(freq).total_seconds()
    table = frame.pivot_table(
        index=pd.Grouper(key="time", freq=freq), columns=by, values="bytes", aggfunc="sum"
    )
    return table.fillna(0) / seconds


def updates_per_tick(trace: Trace) -> pd.DataFrame:
    """One row per delta: room, tick, version, updates (state changes it coalesces),
    paths (leaves it changes), msgpack_bytes, json_bytes. From server records, or from the
    deltas clients received (each counted once) when there are none."""
    pd = _pandas()
    deltas = trace.deltas
    if deltas.empty:
        got = _received(trace, "DELTA_UPDATE").drop_duplicates(["room", "epoch", "version"])
        rows = [
            {"room": r.room, "tick": r.tick, "version": int(r.version),
             "updates": int(r.version) - int(r.base_version),
             "paths": None, "msgpack_bytes": None, "json_bytes": None}
            for r in got.itertuples()
        ]
        return pd.DataFrame(rows, columns=["room", "tick", "version", "updates", "paths",
                                           "msgpack_bytes", "json_bytes"])
    out = deltas[["room", "tick", "version", "updates", "msgpack_bytes", "json_bytes"]].copy()
    out.insert(4, "paths", deltas["paths"].map(len))
    return out.reset_index(drop=True)


def _messages_by_client_room(trace: Trace) -> Any:
    kinds = ["FULL_STATE", "DELTA_UPDATE"]
    frame = trace.received[trace.received["type"].isin(kinds)]
    return frame.sort_values("t", kind="stable").groupby(["client", "room"], sort=True)


def gaps(trace: Trace) -> pd.DataFrame:
    """Deltas a client received that do not continue the version it had: client, room, t,
    expected (its version), base_version (the delta's). A correct server never sends one
    (the client resyncs when it sees one)."""
    pd = _pandas()
    rows = []
    for (client, room), frame in _messages_by_client_room(trace):
        have = None
        for r in frame.itertuples():
            if r.type == "FULL_STATE":
                have = int(r.version)
                continue
            if have is not None and int(r.base_version) != have:
                rows.append({"client": client, "room": room, "t": r.t, "expected": have,
                             "base_version": int(r.base_version)})
            have = int(r.version)
    return pd.DataFrame(rows, columns=["client", "room", "t", "expected", "base_version"])


def resyncs(trace: Trace) -> pd.DataFrame:
    """Every FULL_STATE a client received after its first in a room (a resync, a resume
    that could not replay deltas, a slow-consumer replacement): client, room, t, version."""
    pd = _pandas()
    full = _received(trace, "FULL_STATE").sort_values("t", kind="stable")
    later = full[full.duplicated(["client", "room"], keep="first")]
    return later[["client", "room", "t", "version"]].reset_index(drop=True)


def _history(trace: Trace, room: str) -> tuple[list[tuple[int, Any]], dict[int, tuple[int, Any]]]:
    """Starting points (version, state) and patches (base -> (version, patch)) of a room,
    from server records, or from client records when there are none."""
    starts: list[tuple[int, Any]] = []
    patches: dict[int, tuple[int, Any]] = {}
    states = trace.states[trace.states["room"] == room]
    deltas = trace.deltas[trace.deltas["room"] == room]
    if not states.empty or not deltas.empty:
        starts = [(int(r.version), r.state) for r in states.itertuples()]
        for r in deltas.sort_values("t", kind="stable").itertuples():
            patches[int(r.base_version)] = (int(r.version), r.patch)
    else:
        got = trace.received[trace.received["room"] == room].sort_values("t", kind="stable")
        for r in got.itertuples():
            if r.type == "FULL_STATE":
                starts.append((int(r.version), (r.payload or {}).get("state", {})))
            elif r.type == "DELTA_UPDATE":
                patches[int(r.base_version)] = (int(r.version), r.payload or {})
    return starts, patches


def state_at(trace: Trace, room: str, version: int | None = None) -> dict[str, Any]:
    """The room's document at ``version`` (default: the last version recorded), replayed
    from the closest recorded state at or before it through the recorded deltas.

    Raises:
        KeyError: the trace has nothing of the room.
        ValueError: no recorded path of deltas leads to ``version``, or ``version`` lies
            inside one delta (a tick's coalesced changes), so it never existed on the wire.
    """
    starts, patches = _history(trace, room)
    if not starts:
        raise KeyError(f"state_at: the trace holds no state of room {room!r}")
    if version is None:
        version = max([v for v, _ in starts] + [v for v, _ in patches.values()])
    below = [(v, s) for v, s in starts if v <= version]
    if not below:
        raise ValueError(f"state_at: room {room!r} has no recorded state at or before {version}")
    at, doc = max(below, key=lambda vs: vs[0])
    doc = merge_patch({}, doc)  # a copy the replay may change
    while at < version:
        step = patches.get(at)
        if step is None:
            raise ValueError(
                f"state_at: room {room!r}: no recorded delta from version {at} (towards {version})"
            )
        if step[0] > version:
            # A tick coalesced several versions into one delta: the ones inside it never
            # existed on the wire, so there is no document to give for them.
            raise ValueError(
                f"state_at: room {room!r}: version {version} lies inside the delta "
                f"{at}->{step[0]} (one tick's changes); ask for {at} or {step[0]}"
            )
        at, patch = step
        doc = merge_patch_in_place(doc, patch)
    return doc


def convergence(trace: Trace) -> pd.DataFrame:
    """Each client's final view of each room, replayed from what it received: room, client,
    version, state (JSON text, keys sorted), converged (every client of the room ended at
    the same version with the same state), server_agrees (the server's recorded state at
    that version is the same; None without server records)."""
    pd = _pandas()
    rows = []
    for (client, room), frame in _messages_by_client_room(trace):
        doc: Any = None
        version = None
        for r in frame.itertuples():
            if r.type == "FULL_STATE":
                doc, version = merge_patch({}, (r.payload or {}).get("state", {})), int(r.version)
            elif doc is not None and int(r.base_version) == version:
                doc, version = merge_patch_in_place(doc, r.payload or {}), int(r.version)
        if doc is not None:
            rows.append({"room": room, "client": client, "version": version,
                         "state": json.dumps(doc, sort_keys=True)})
    frame = pd.DataFrame(rows, columns=["room", "client", "version", "state"])
    frame["converged"] = frame.groupby("room")["state"].transform("nunique").eq(1) & frame.groupby(
        "room"
    )["version"].transform("nunique").eq(1)

    server_states: dict[tuple[str, int], str | None] = {}  # clients of a room share them

    def server_view(r: Any) -> bool | None:
        if trace.deltas.empty and trace.states.empty:
            return None
        key = (r.room, r.version)
        if key not in server_states:
            try:
                server_states[key] = json.dumps(state_at(trace, r.room, r.version), sort_keys=True)
            except (KeyError, ValueError):
                server_states[key] = None
        return server_states[key] == r.state

    frame["server_agrees"] = [server_view(r) for r in frame.itertuples()]
    return frame


def summary(trace: Trace) -> dict[str, Any]:
    """The key figures of a trace, as a dict (``kasagi trace summary`` prints them)."""
    ts = [frame["t"] for frame in (trace.deltas, trace.received, trace.sent) if len(frame)]
    start = min(float(t.min()) for t in ts) if ts else None
    end = max(float(t.max()) for t in ts) if ts else None
    figures: dict[str, Any] = {
        "rooms": len(trace.rooms),
        "clients": len(trace.clients),
        "duration_s": round(end - start, 3) if ts else 0.0,
        "deltas": len(trace.deltas),
    }
    if len(trace.deltas):
        d = trace.deltas
        figures.update({
            "updates": int(d["updates"].sum()),
            "updates_per_delta": round(float(d["updates"].mean()), 2),
            "msgpack_bytes_per_delta": round(float(d["msgpack_bytes"].mean()), 1),
            "json_bytes_per_delta": round(float(d["json_bytes"].mean()), 1),
        })
    if len(trace.received):
        figures.update({
            "messages_received": len(trace.received),
            "bytes_received": int(trace.received["bytes"].sum()),
            "gaps": len(gaps(trace)),
            "resyncs": len(resyncs(trace)),
        })
        p = latency_percentiles(trace)
        if p["count"]:
            figures.update({f"latency_{k}_ms": round(float(v), 3) for k, v in p.items()
                            if k != "count"})
        if len(trace.clients) > 1:
            view = convergence(trace)
            figures["converged"] = bool(view["converged"].all()) if len(view) else None
    return figures


def format_summary(figures: dict[str, Any]) -> str:
    """The figures of :func:`summary` as aligned ``name  value`` lines."""
    width = max((len(k) for k in figures), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in figures.items())
