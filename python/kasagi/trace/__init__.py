"""Recorded deltas, loaded into pandas: what a room sent, what each client received, and
the figures that matter (docs/tracing.md).

Recording:

- Server: ``trace_file`` (``kasagi serve --trace FILE``, ``kasagi.Server(trace_file=...)``)
  records every delta of the rooms matching ``trace_rooms``: version, tick, epoch, time,
  bytes per encoding, changed paths, the patch.
- Client: ``AsyncClient(trace=FILE, name=...)`` (and :class:`~kasagi.Client`) records every
  message it receives and sends, with the time.
- Redis: a room's snapshot and ``room:{id}:ops`` stream read as a trace
  (``load("redis://host:6379/0", room="lobby")``).

Analysis::

    trace = kasagi.trace.load(["server.ktrace", "alice.ktrace", "bob.ktrace"])
    kasagi.trace.latency_percentiles(trace)   # p50, p90, p99, p99.9 in ms
    kasagi.trace.bandwidth(trace, by="client")
    kasagi.trace.updates_per_tick(trace)
    kasagi.trace.gaps(trace), kasagi.trace.resyncs(trace)
    kasagi.trace.state_at(trace, "lobby", version=120)
    kasagi.trace.convergence(trace)

``kasagi trace summary FILE...`` prints :func:`summary`. pandas (and pyarrow, for Parquet)
come with ``pip install 'kasagi[analysis]'``; recording needs neither.
"""

from __future__ import annotations

from kasagi.trace.analysis import (
    bandwidth,
    convergence,
    format_summary,
    gaps,
    latency,
    latency_percentiles,
    resyncs,
    state_at,
    summary,
    updates_per_tick,
)
from kasagi.trace.load import TABLES, Trace, load, load_redis
from kasagi.trace.records import FORMAT, FORMAT_VERSION, TraceWriter, iter_records

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TABLES",
    "Trace",
    "TraceWriter",
    "bandwidth",
    "convergence",
    "format_summary",
    "gaps",
    "iter_records",
    "latency",
    "latency_percentiles",
    "load",
    "load_redis",
    "resyncs",
    "state_at",
    "summary",
    "updates_per_tick",
]
