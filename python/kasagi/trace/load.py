"""Reading traces into pandas: :func:`load` and the :class:`Trace` it returns.

A trace is four tables, any of which may be empty:

- ``deltas`` (server ``delta`` records, or a Redis ``room:{id}:ops`` stream): room, version,
  base_version, tick, epoch, t, json_bytes, msgpack_bytes, paths, patch, updates
  (version - base_version: the state changes the delta carries), instance.
- ``states`` (server ``state`` records, or the Redis snapshot): room, version, tick, epoch,
  t, state, instance.
- ``received`` (client ``recv`` records): client, t, type, room, version, base_version,
  tick, epoch, request_id, bytes, payload.
- ``sent`` (client ``send`` records): client, t, type, room, version, request_id, bytes,
  payload.

``t`` columns are seconds since the Unix epoch (floats); :func:`kasagi.trace.bandwidth` and
the notebooks turn them into timestamps where a time axis helps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import urllib.parse
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from kasagi.trace.records import FORMAT, iter_records

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLES", "Trace", "load", "load_redis"]

#: The columns of each table, in order.
TABLES: dict[str, tuple[str, ...]] = {
    "deltas": ("room", "version", "base_version", "tick", "epoch", "t", "json_bytes",
               "msgpack_bytes", "paths", "patch", "updates", "instance"),
    "states": ("room", "version", "tick", "epoch", "t", "state", "instance"),
    "received": ("client", "t", "type", "room", "version", "base_version", "tick", "epoch",
                 "request_id", "bytes", "payload"),
    "sent": ("client", "t", "type", "room", "version", "request_id", "bytes", "payload"),
}

# Columns holding documents, patches or lists: JSON text in Parquet, whose columns need one
# type throughout.
_NESTED = {"paths", "patch", "state", "payload"}

Source = str | os.PathLike[str] | IO[bytes] | bytes


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is in the analysis extra
        raise ImportError(
            "kasagi.trace needs pandas: pip install 'kasagi[analysis]'"
        ) from None
    return pandas


@dataclasses.dataclass
class Trace:
    """The four tables of one or more traces (see the module docstring)."""

    deltas: pd.DataFrame
    states: pd.DataFrame
    received: pd.DataFrame
    sent: pd.DataFrame

    @classmethod
    def from_rows(cls, rows: dict[str, list[dict[str, Any]]]) -> Trace:
        """Builds a Trace from lists of row dicts per table (missing tables: empty)."""
        pd = _pandas()
        frames = {}
        for name, columns in TABLES.items():
            frame = pd.DataFrame(rows.get(name, []), columns=list(columns))
            sort = ["t"] if name in ("received", "sent") else ["room", "version", "t"]
            frames[name] = frame.sort_values(sort, kind="stable").reset_index(drop=True)
        return cls(**frames)

    @classmethod
    def concat(cls, traces: Iterable[Trace]) -> Trace:
        """One Trace holding the rows of several (a server's and its clients', say)."""
        pd = _pandas()
        traces = list(traces)
        rows: dict[str, list[dict[str, Any]]] = {}
        for name in TABLES:
            parts = [getattr(t, name) for t in traces if len(getattr(t, name))]
            rows[name] = pd.concat(parts).to_dict("records") if parts else []
        return cls.from_rows(rows)

    @property
    def rooms(self) -> list[str]:
        """Every room any table mentions, sorted."""
        names: set[str] = set()
        for name in TABLES:
            names.update(x for x in getattr(self, name)["room"].dropna().unique())
        return sorted(names)

    @property
    def clients(self) -> list[str]:
        """Every client that recorded, sorted."""
        names = set(self.received["client"].dropna()) | set(self.sent["client"].dropna())
        return sorted(names)

    def to_parquet(self, directory: str | os.PathLike[str]) -> pathlib.Path:
        """Writes the four tables as ``<table>.parquet`` files into ``directory`` (created if
        needed; needs pyarrow). Documents and patches are stored as JSON text. Returns the
        directory; :func:`load` reads it back."""
        out = pathlib.Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            frame = getattr(self, name).copy()
            for column in _NESTED & set(frame.columns):
                frame[column] = frame[column].map(lambda v: json.dumps(v, allow_nan=False))
            frame.to_parquet(out / f"{name}.parquet", index=False)
        return out


def _delta_row(r: dict[str, Any], instance: str | None) -> dict[str, Any]:
    size = r.get("bytes") or {}
    version, base = int(r["version"]), int(r["baseVersion"])
    return {
        "room": r["room"], "version": version, "base_version": base, "tick": r.get("tick"),
        "epoch": r.get("epoch"), "t": r["t"], "json_bytes": size.get("json"),
        "msgpack_bytes": size.get("msgpack"), "paths": list(r.get("paths") or []),
        "patch": r.get("patch") or {}, "updates": version - base, "instance": instance,
    }


def _message_row(r: dict[str, Any], client: str | None) -> dict[str, Any]:
    msg = r.get("msg") or {}
    return {
        "client": r.get("client", client), "t": r["t"], "type": msg.get("type"),
        "room": msg.get("roomId"), "version": msg.get("version"),
        "base_version": msg.get("baseVersion"), "tick": msg.get("tick"),
        "epoch": msg.get("epoch"), "request_id": msg.get("requestId"),
        "bytes": r.get("bytes"), "payload": msg.get("payload"),
    }


def _rows_of(records: Iterable[dict[str, Any]], rows: dict[str, list[dict[str, Any]]]) -> None:
    instance: str | None = None
    client: str | None = None
    for r in records:
        kind = r.get("kind")
        if kind == "header":
            if r.get("format") != FORMAT:
                raise ValueError(f"not a kasagi trace: format {r.get('format')!r}")
            instance, client = r.get("instance"), r.get("client")
        elif kind == "delta":
            rows["deltas"].append(_delta_row(r, instance))
        elif kind == "state":
            rows["states"].append({
                "room": r["room"], "version": int(r["version"]), "tick": r.get("tick"),
                "epoch": r.get("epoch"), "t": r["t"], "state": r.get("state") or {},
                "instance": instance,
            })
        elif kind == "recv":
            rows["received"].append(_message_row(r, client))
        elif kind == "send":  # from_rows keeps the sent table's columns only
            rows["sent"].append(_message_row(r, client))
        # Unknown kinds are skipped: later format versions may add some.


def _read_parquet(directory: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    pd = _pandas()
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        path = directory / f"{name}.parquet"
        if not path.exists():
            continue
        frame = pd.read_parquet(path)
        for column in _NESTED & set(frame.columns):
            frame[column] = frame[column].map(json.loads)
        rows[name] = frame.to_dict("records")
    return rows


def load(
    source: Source | Iterable[Source],
    *,
    room: str | None = None,
    key_prefix: str = "",
) -> Trace:
    """Reads traces into a :class:`Trace` of pandas DataFrames.

    Args:
        source: a trace file (server or client), a binary stream or bytes of one, a directory
            written by :meth:`Trace.to_parquet`, a Redis URL (``redis://host:port/db``, with
            ``room``: that room's snapshot and ``room:{id}:ops`` stream, read from that one
            plain Redis, see :func:`load_redis`), or a list of any of these (read into one
            Trace).
        room: with a Redis URL, the room to read.
        key_prefix: with a Redis URL, the servers' key_prefix.

    Raises:
        ValueError: a source is not a trace; a Redis URL without ``room``; a URL that is
            not ``redis://`` (TLS, Sentinel, Cluster: see :func:`load_redis`).
        OSError: a file cannot be read or Redis cannot be reached.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    sources = source if isinstance(source, (list, tuple)) else [source]
    for s in sources:  # all into the same rows: the tables are built once
        if isinstance(s, str) and "://" in s:  # any URL: a file name has no scheme
            address = _redis_address(s)  # a URL it cannot read says so before room= does
            if room is None:
                raise ValueError("load: a Redis URL needs room=")
            _redis_rows(address, room, key_prefix, rows)
        elif isinstance(s, (str, os.PathLike)) and pathlib.Path(s).is_dir():
            for name, table in _read_parquet(pathlib.Path(s)).items():
                rows[name].extend(table)
        else:
            _rows_of(iter_records(s), rows)  # type: ignore[arg-type]
    return Trace.from_rows(rows)


def load_redis(url: str, room: str, *, key_prefix: str = "") -> Trace:
    """Reads a room's Redis snapshot and delta log (``room:{id}:ops``) as a Trace: the
    snapshot is a ``states`` row, each log entry a ``deltas`` row (its time is the entry id's
    milliseconds; its JSON size is that of the patch alone, its MessagePack size that of the
    stored patch). A log that still starts at version 0 adds the new room's document as a
    ``states`` row at version 0, so every version can be replayed.

    It reads one plain Redis, the one ``url`` names: no TLS (``rediss://``), no Sentinel,
    no Cluster. With Sentinel, give the current master's address; with a Cluster, the
    master serving the room's slot (the error for another node names it).

    Raises:
        ValueError: the URL is not a ``redis://`` URL; it names a Sentinel, or a Cluster
            node that does not serve the room; Redis refused a command (a wrong password).
        OSError: Redis cannot be reached.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    _redis_rows(_redis_address(url), room, key_prefix, rows)
    return Trace.from_rows(rows)


def _redis_rows(address: tuple[str, int, str, str | None], room: str, key_prefix: str,
                rows: dict[str, list[dict[str, Any]]]) -> None:
    """Adds a room's Redis snapshot and log to ``rows`` (see :func:`load_redis`); `address`
    as :func:`_redis_address` returns it."""
    import msgpack  # type: ignore[import-untyped,unused-ignore]

    from kasagi.testing.resp import RedisError, redis_call

    host, port, db, password = address

    def call(*args: Any) -> Any:
        try:
            return redis_call(port, *args, host=host, password=password, db=db, raw=True)
        except RedisError as e:
            raise ValueError(_refused(f"{host}:{port}", room, str(e))) from None

    key = f"{key_prefix}room:{{{room}}}"
    fields = _pairs(call("HGETALL", f"{key}:snapshot") or [])
    if fields:
        rows["states"].append({
            "room": room, "version": int(fields["version"]), "tick": int(fields["tick"]),
            "epoch": fields["epoch"].decode(), "t": int(fields["ts"]) / 1000.0,
            "state": msgpack.unpackb(fields["data"], raw=False), "instance": None,
        })
    entries = [(entry_id, _pairs(flat))
               for entry_id, flat in call("XRANGE", f"{key}:ops", "-", "+") or []]
    if entries and entries[0][1].get("base") == b"0":  # the log starts at the beginning
        rows["states"].append({  # a new room's document (room/room.cpp)
            "room": room, "version": 0, "tick": 0, "epoch": None,
            "t": int(entries[0][0].split(b"-")[0]) / 1000.0, "state": {"players": {}},
            "instance": None,
        })
    for entry_id, e in entries:
        patch = msgpack.unpackb(e["data"], raw=False)
        rows["deltas"].append(_delta_row({
            "room": room, "version": int(e["version"]), "baseVersion": int(e["base"]),
            "tick": int(e["tick"]), "epoch": e["epoch"].decode(),
            "t": int(entry_id.split(b"-")[0]) / 1000.0,
            "bytes": {"json": len(json.dumps(patch, separators=(",", ":"))),
                      "msgpack": len(e["data"])},
            "paths": _leaf_paths(patch), "patch": patch,
        }, None))


def _redis_address(url: str) -> tuple[str, int, str, str | None]:
    """(host, port, db, password) of a ``redis://`` URL; ValueError for any other URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(
            f"load_redis: {parts.scheme}:// is not supported: traces are read from one plain "
            "Redis, redis://host:port/db (no TLS, Sentinel or Cluster; with Sentinel give the "
            "master's address, with a Cluster the master serving the room)")
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    db = (parts.path or "/0").lstrip("/") or "0"
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return host, port, db, password


def _refused(address: str, room: str, reply: str) -> str:
    """Why ``address`` refused a command with error ``reply``, for load_redis's ValueError."""
    if reply.startswith(("MOVED ", "ASK ")):  # "MOVED <slot> <host:port>"
        node = reply.split()[-1]
        return (f"load_redis: {address} is a Redis Cluster node that does not serve room "
                f"{room!r} ({reply}); load_redis reads one node: give redis://{node}/0")
    if "unknown command" in reply:
        return (f"load_redis: {address} does not serve data ({reply}): a Sentinel? load_redis "
                "reads one Redis: give the master's address")
    return f"load_redis: {address} refused a command: {reply}"


def _pairs(flat: list[bytes]) -> dict[str, bytes]:
    """A flat [name, value, ...] reply (a hash, a stream entry) as a dict."""
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _leaf_paths(patch: dict[str, Any], prefix: str = "") -> list[str]:
    """The JSON Pointers of the leaves a merge patch writes or deletes."""
    out: list[str] = []
    for key, value in patch.items():
        path = prefix + "/" + str(key).replace("~", "~0").replace("/", "~1")
        if isinstance(value, dict) and value:
            out.extend(_leaf_paths(value, path))
        else:
            out.append(path)
    return out
